//! Users: `v1.getCurrentUser` (with the company's id, name and domain) and `v1.getUsers`.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::request::{with_company, Ctx};
use super::response::{ok_data, ApiErr, HResult};
use crate::model::v1_time;

/// `v1.getCurrentUser`.
pub(super) fn me(ctx: &Ctx<'_>) -> HResult {
    let user = ctx.caller.user_id;
    with_company(ctx, |c, st| {
        let u = c
            .users
            .iter()
            .find(|u| u.id == user)
            .cloned()
            .ok_or_else(|| ApiErr::NotFound("User not found".into()))?;
        let mut v = user_json(&u, user, c.created);
        let host = url::Url::parse(&st.api_domain)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let domain = if host.parse::<std::net::IpAddr>().is_ok() || host == "localhost" {
            "sim-company".to_owned()
        } else {
            host.split('.').next().unwrap_or("sim-company").to_owned()
        };
        if let Value::Object(m) = &mut v {
            m.insert("company_id".into(), json!(c.id));
            m.insert("company_name".into(), json!(c.name));
            m.insert("company_domain".into(), json!(domain));
            m.insert("company_country".into(), json!("GB"));
            m.insert("company_industry".into(), json!("Software"));
            m.insert(
                "language".into(),
                json!({"language_code": "en", "country_code": "US"}),
            );
        }
        Ok((StatusCode::OK, ok_data(v), vec![]))
    })
}

/// `v1.getUsers`.
pub(super) fn list(ctx: &Ctx<'_>) -> HResult {
    let user = ctx.caller.user_id;
    with_company(ctx, |c, _| {
        let data: Vec<Value> = c
            .users
            .iter()
            .map(|u| user_json(u, user, c.created))
            .collect();
        Ok((StatusCode::OK, ok_data(Value::Array(data)), vec![]))
    })
}

/// A user in v1 JSON, as `me` sees it (`v1.getUsers`, `v1.getRecents`).
pub(super) fn user_json(u: &crate::state::User, me: i64, created: i64) -> Value {
    json!({
        "id": u.id, "name": u.name, "default_currency": "EUR", "locale": "en_US", "lang": 1,
        "email": u.email, "phone": null, "activated": true, "last_login": v1_time(created + 86_400),
        "created": v1_time(created), "modified": v1_time(created), "has_created_company": u.is_admin,
        "access": [
            {"app": "sales", "admin": u.is_admin, "permission_set_id": "sim-sales-permission-set"},
            {"app": "global", "admin": u.is_admin, "permission_set_id": "sim-global-permission-set"}
        ],
        "active_flag": true, "timezone_name": "Europe/London", "timezone_offset": "+00:00",
        "role_id": 1, "icon_url": null, "is_you": u.id == me, "is_deleted": false,
        "is_admin": if u.is_admin { 1 } else { 0 },
    })
}
