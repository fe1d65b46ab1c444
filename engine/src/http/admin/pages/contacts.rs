//! Find a contact (by e-mail, name, contact id or CRM person id) and its page: both sides'
//! current values field by field next to the base, the link, pending writes, its sync-log
//! history, and "Resync this contact".

use std::collections::BTreeSet;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use tandem_core::FieldValue;
use tandem_webhooks::{ApiError, ErrorCode};
use uuid::Uuid;

use crate::http::admin::api_error;
use crate::http::admin::layout::{error_page, render, Chrome};
use crate::http::admin::session::PageAdmin;
use crate::http::AppState;
use crate::store::contact_search::{self, ContactHit, PendingWrite};
use crate::store::contacts;
use crate::sync::{connections, links, synclog, SyncError};

/// How long the contact page waits for the CRM's current values.
const CRM_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct SearchQuery {
    #[serde(default)]
    q: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "admin/contacts.html")]
struct SearchPage<'a> {
    chrome: Chrome<'a>,
    q: &'a str,
    hits: &'a [ContactHit],
    searched: bool,
}

pub(super) async fn search(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Query(query): Query<SearchQuery>,
) -> Response {
    let q = query.q.as_deref().unwrap_or("").trim();
    let hits = match contact_search::search_contacts(&state.store, q, 50).await {
        Ok(hits) => hits,
        Err(e) => return error_page(&api_error(SyncError::from(e))),
    };
    render(
        StatusCode::OK,
        &SearchPage {
            chrome: Chrome::new("Find a contact", admin.csrf.as_deref(), None),
            q,
            hits: &hits,
            searched: !q.is_empty(),
        },
    )
}

/// One field, on each side.
struct FieldRow {
    key: String,
    app: String,
    base: String,
    crm: String,
    /// The CRM's value could be read and differs from the app's.
    differs: bool,
    /// What tandem sent and is not confirmed, or the CRM refused.
    note: String,
}

#[derive(askama::Template)]
#[template(path = "admin/contact.html")]
struct ContactPage<'a> {
    chrome: Chrome<'a>,
    contact: &'a contacts::LocalContact,
    link: Option<&'a links::Link>,
    /// The CRM's values could not be read: why.
    crm_error: Option<String>,
    fields: Vec<FieldRow>,
    writes: &'a [PendingWrite],
    log: &'a [synclog::Stored],
    /// Where "Resync this contact" posts.
    resync: Option<String>,
}

fn show(value: Option<&FieldValue>) -> String {
    match value {
        None => String::new(),
        Some(FieldValue::Text(text)) => text.clone(),
        Some(other) => serde_json::to_string(other).unwrap_or_default(),
    }
}

pub(super) async fn page(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Response {
    let db = &state.store;
    let contact = match contacts::load(db, id.into()).await {
        Ok(Some(contact)) => contact,
        Ok(None) => {
            return error_page(&ApiError::new(
                ErrorCode::NotFound,
                format!("no contact {id}"),
            ))
        }
        Err(e) => return error_page(&api_error(e)),
    };
    let link = match links::any_for_contact(db, id.into()).await {
        Ok(link) => link,
        Err(e) => return error_page(&api_error(e)),
    };
    let (remote, crm_error) = match &link {
        None => (None, None),
        Some(link) => match read_remote(&state, link).await {
            Ok(person) => (Some(person), None),
            Err(error) => (None, Some(error)),
        },
    };
    let writes = match contact_search::pending_writes(&state.store, id.into()).await {
        Ok(w) => w,
        Err(e) => return error_page(&api_error(SyncError::from(e))),
    };
    let log = match synclog::list(
        db,
        &synclog::Filter {
            contact_id: Some(id.into()),
            limit: 50,
            ..synclog::Filter::default()
        },
    )
    .await
    {
        Ok(log) => log,
        Err(e) => return error_page(&api_error(e)),
    };
    let base = link.as_ref().map(|l| &l.state.base.fields);
    let remote_fields = remote.as_ref().map(|p| &p.snapshot.fields);
    let keys: BTreeSet<_> = contact
        .fields
        .keys()
        .chain(base.into_iter().flat_map(|b| b.keys()))
        .chain(remote_fields.into_iter().flat_map(|r| r.keys()))
        .cloned()
        .collect();
    let fields = keys
        .into_iter()
        .map(|key| {
            let app = contact.fields.get(&key);
            let crm = remote_fields.and_then(|r| r.get(&key));
            let mut note = Vec::new();
            if let Some(link) = &link {
                if let Some(values) = link.state.uncertain.get(&key) {
                    note.push(format!(
                        "sent, not confirmed: {}",
                        values
                            .iter()
                            .map(|v| show(Some(v)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                if let Some(value) = link.state.refused.get(&key) {
                    note.push(format!("refused by the CRM: {}", show(Some(value))));
                }
            }
            FieldRow {
                key: key.to_string(),
                app: show(app),
                base: show(base.and_then(|b| b.get(&key))),
                crm: show(crm),
                differs: remote_fields.is_some() && app != crm,
                note: note.join("; "),
            }
        })
        .collect();
    let title = format!("Contact {id}");
    render(
        StatusCode::OK,
        &ContactPage {
            chrome: Chrome::new(&title, admin.csrf.as_deref(), None),
            resync: link
                .as_ref()
                .map(|l| format!("/admin/connections/{}/resync", l.connection_id)),
            contact: &contact,
            link: link.as_ref(),
            crm_error,
            fields,
            writes: &writes,
            log: &log,
        },
    )
}

/// The linked person as the CRM holds it now.
async fn read_remote(
    state: &AppState,
    link: &links::Link,
) -> Result<crate::crm::CrmPerson, String> {
    let engine = &state.engine;
    let conn = connections::load(engine, link.connection_id)
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(
        CRM_READ_TIMEOUT,
        engine
            .crm
            .get_person(&conn.session, &conn.map, link.person_id),
    )
    .await
    {
        Ok(Ok(person)) => Ok(person),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("the CRM did not answer in time".to_owned()),
    }
}
