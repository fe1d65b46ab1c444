//! Field mapping: the stored mappings, the form that maps a field (entity, direction, owner,
//! currency for a monetary field), creating a custom person or organization field in the CRM,
//! and the CRM's fields (Pipedrive's person and organization fields; Salesforce's Lead and
//! Contact fields from `describe`, with what field-level security lets the connecting user
//! write).

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use tandem_core::ConnectionId;

use super::{back, chosen_connection, csrf_ok, message_page, FormMap, Notice};
use crate::http::admin::api_error;
use crate::http::admin::layout::{error_page, render, Chrome};
use crate::http::admin::session::PageAdmin;
use crate::http::AppState;
use crate::sync::connections::fields::{self, LocalFieldInfo, Mapping, RemoteFieldInfo};

#[derive(askama::Template)]
#[template(path = "admin/fields.html")]
struct FieldsPage<'a> {
    chrome: Chrome<'a>,
    /// `/admin/connections/{id}`: where the forms post.
    base: String,
    mappings: Vec<MappingRow<'a>>,
    local: &'a [LocalFieldInfo],
    remote: &'a [RemoteFieldInfo],
    creatable_types: &'a [&'a str],
    /// "Pipedrive" or "Salesforce".
    crm_name: &'a str,
    /// Salesforce: tandem's external-id field (API name) and whether it is there and writable.
    external_id: Option<(String, Presence)>,
    /// Whether the CRM lists organization fields (Pipedrive).
    has_organizations: bool,
}

/// Whether a field tandem needs is in the CRM's catalog for the connecting user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Writable,
    ReadOnly,
    Missing,
}

struct MappingRow<'a> {
    mapping: &'a Mapping,
    /// The CRM field's name (its key when the CRM does not list it).
    remote_name: String,
}

pub(super) async fn page(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Query(q): Query<Notice>,
) -> Response {
    let chrome = Chrome::new("Field mapping", admin.csrf.as_deref(), q.notice.as_deref());
    let id = match chosen_connection(&state, q.connection).await {
        Ok(Some(id)) => id,
        Ok(None) => return message_page(chrome, "Connect a CRM first."),
        Err(e) => return error_page(&e),
    };
    let engine = &state.engine;
    let ((crm, remote), local, mappings) = match (
        fields::remote_catalog(engine, id).await,
        fields::local_fields(engine).await,
        fields::mappings(engine, id).await,
    ) {
        (Ok(r), Ok(l), Ok(m)) => (r, l, m),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return error_page(&api_error(e)),
    };
    let has_organizations = remote.iter().any(|f| f.entity == "organization");
    let external_id = crm.external_id_in_catalog().then(|| {
        let name = crm.external_id_field().0.to_owned();
        let presence = match remote.iter().find(|f| f.key.eq_ignore_ascii_case(&name)) {
            Some(f) if f.writable => Presence::Writable,
            Some(_) => Presence::ReadOnly,
            None => Presence::Missing,
        };
        (name, presence)
    });
    let name_of = |entity: &str, key: &str| {
        let key = match key {
            "emails" => "email",
            "phones" => "phone",
            k => k,
        };
        remote
            .iter()
            .find(|f| f.entity == entity && f.key == key)
            .map_or_else(|| key.to_owned(), |f| f.name.clone())
    };
    let mappings = mappings
        .iter()
        .map(|mapping| MappingRow {
            mapping,
            remote_name: name_of(&mapping.entity, &mapping.remote_field),
        })
        .collect();
    render(
        StatusCode::OK,
        &FieldsPage {
            chrome,
            base: format!("/admin/connections/{id}"),
            mappings,
            local: &local,
            remote: &remote,
            creatable_types: crm.creatable_field_types(),
            crm_name: crm.display_name(),
            external_id,
            has_organizations,
        },
    )
}

pub(super) async fn save_mapping(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
    Form(form): FormMap,
) -> Response {
    if let Err(r) = csrf_ok(&admin, &form) {
        return *r;
    }
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let request = fields::MappingRequest {
        local_field: get("local_field"),
        remote_field: get("remote_field"),
        entity: form.get("entity").cloned(),
        direction: Some(get("direction")),
        owner: Some(get("owner")),
        currency: form.get("currency").cloned(),
    };
    match fields::set_mapping(&state.engine, id, &request).await {
        Ok(m) => back(
            &format!("/admin/fields?connection={id}"),
            &format!("Mapping saved: {} → {}.", m.local_field, m.remote_field),
        ),
        Err(e) => error_page(&api_error(e)),
    }
}

pub(super) async fn remove_mapping(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
    Form(form): FormMap,
) -> Response {
    if let Err(r) = csrf_ok(&admin, &form) {
        return *r;
    }
    let local = form.get("local_field").cloned().unwrap_or_default();
    match fields::delete_mapping(&state.engine, id, &local).await {
        Ok(_) => back(
            &format!("/admin/fields?connection={id}"),
            &format!("Mapping of {local} removed."),
        ),
        Err(e) => error_page(&api_error(e)),
    }
}

pub(super) async fn create_field(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
    Form(form): FormMap,
) -> Response {
    if let Err(r) = csrf_ok(&admin, &form) {
        return *r;
    }
    let name = form.get("name").cloned().unwrap_or_default();
    let field_type = form
        .get("field_type")
        .cloned()
        .unwrap_or_else(|| "varchar".into());
    let entity = match fields::Entity::parse(form.get("entity").map(String::as_str)) {
        Ok(entity) => entity,
        Err(e) => return error_page(&api_error(e)),
    };
    match fields::create_remote_field_of(&state.engine, id, entity, &name, &field_type).await {
        Ok(f) => back(
            &format!("/admin/fields?connection={id}"),
            &format!("Field \"{}\" created: {}.", f.name, f.key),
        ),
        Err(e) => error_page(&api_error(e)),
    }
}
