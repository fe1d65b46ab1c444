//! Access and refresh tokens: issuing a session as the token endpoint answers it.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::shared::Shared;
use crate::state::{Grant, Session, State};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A random token of `n` URL-safe characters.
pub(crate) fn random_token(shared: &Shared, n: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = shared.rng.lock();
    (0..n)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// Issues a session (and, with `with_refresh`, a refresh token) and returns the token
/// response's JSON.
pub(crate) fn issue(
    shared: &Shared,
    st: &mut State,
    org: usize,
    user: &str,
    refresh: Option<String>,
    with_refresh: bool,
    now_ms: i64,
) -> Value {
    let org_id = st.orgs[org].org_id.clone();
    let access = format!("{}!{}", &org_id[..15], random_token(shared, 96));
    let refresh = if with_refresh {
        let r = format!("5Aep86{}", random_token(shared, 80));
        st.grants.insert(
            r.clone(),
            Grant {
                org,
                user: user.to_owned(),
                client_id: shared.config.client_id.clone(),
            },
        );
        Some(r)
    } else {
        refresh
    };
    st.sessions.insert(
        access.clone(),
        Session {
            org,
            user: user.to_owned(),
            expires_ms: now_ms + st.session_ttl_ms,
            refresh: refresh.clone(),
        },
    );
    let id = format!("{}/id/{}/{}", shared.login_url(org), org_id, user);
    let issued_at = now_ms.to_string();
    let signature = Hmac::<Sha256>::new_from_slice(shared.config.client_secret.as_bytes())
        .map(|mut mac| {
            mac.update(id.as_bytes());
            mac.update(issued_at.as_bytes());
            B64.encode(mac.finalize().into_bytes())
        })
        .unwrap_or_default();
    let mut body = json!({
        "access_token": access,
        "signature": signature,
        "scope": "refresh_token api",
        "instance_url": shared.urls.instance,
        "id": id,
        "token_type": "Bearer",
        "issued_at": issued_at,
    });
    if with_refresh {
        if let Some(r) = refresh {
            body["refresh_token"] = json!(r);
        }
    }
    body
}
