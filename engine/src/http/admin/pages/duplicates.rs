//! The duplicate report: groups of records that share an e-mail or an apId; merge persons
//! through Pipedrive's own merge, ignore a group or reopen it.

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use tandem_core::PersonId;
use tandem_webhooks::{ApiError, ErrorCode};
use uuid::Uuid;

use super::{back, csrf_ok, FormMap, Notice};
use crate::http::admin::api::active_connection;
use crate::http::admin::api_error;
use crate::http::admin::layout::{error_page, render, Chrome};
use crate::http::admin::session::PageAdmin;
use crate::http::AppState;
use crate::sync::inbound::duplicates::{self, Group};

#[derive(askama::Template)]
#[template(path = "admin/duplicates.html")]
struct DuplicatesPage<'a> {
    chrome: Chrome<'a>,
    /// The connection whose report this is (its forms name it).
    connection: String,
    /// Open groups.
    open: usize,
    rows: Vec<GroupRow<'a>>,
}

struct GroupRow<'a> {
    group: &'a Group,
    open: bool,
    /// The group's Pipedrive persons, the merge form's choices.
    persons: Vec<PersonId>,
    /// Open, with two persons or more: a merge form.
    mergeable: bool,
}

impl<'a> GroupRow<'a> {
    fn new(group: &'a Group) -> Self {
        let open = group.state == duplicates::state::OPEN;
        let persons: Vec<PersonId> = group.members.iter().filter_map(|m| m.person_id).collect();
        Self {
            group,
            open,
            mergeable: open && persons.len() >= 2,
            persons,
        }
    }
}

pub(super) async fn page(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Query(q): Query<Notice>,
) -> Response {
    let conn = match active_connection(&state, q.connection).await {
        Ok(conn) => conn,
        Err(e) => return error_page(&e),
    };
    let groups = match duplicates::list(&state.engine, &conn, true).await {
        Ok(g) => g,
        Err(e) => return error_page(&api_error(e)),
    };
    let rows: Vec<GroupRow<'_>> = groups.iter().map(GroupRow::new).collect();
    render(
        StatusCode::OK,
        &DuplicatesPage {
            chrome: Chrome::new(
                "Duplicate report",
                admin.csrf.as_deref(),
                q.notice.as_deref(),
            ),
            open: rows.iter().filter(|r| r.open).count(),
            connection: conn.id.to_string(),
            rows,
        },
    )
}

pub(super) async fn merge(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Form(form): FormMap,
) -> Response {
    if let Err(r) = csrf_ok(&admin, &form) {
        return *r;
    }
    let person = |key: &str| form.get(key).and_then(|v| PersonId::parse(v).ok());
    let (Some(survivor), Some(merged)) = (person("survivor_person_id"), person("merged_person_id"))
    else {
        return error_page(&ApiError::new(
            ErrorCode::ValidationFailed,
            "choose the person to keep and the person to merge in",
        ));
    };
    let wanted = match super::form_connection(&form) {
        Ok(wanted) => wanted,
        Err(e) => return error_page(&e),
    };
    let conn = match active_connection(&state, wanted).await {
        Ok(conn) => conn,
        Err(e) => return error_page(&e),
    };
    match duplicates::merge_persons(&state.engine, &conn, survivor, merged).await {
        Ok(_) => back(
            &super::page_of("/admin/duplicates", conn.id),
            &format!("Person #{merged} was merged into #{survivor}."),
        ),
        Err(e) => error_page(&api_error(e)),
    }
}

pub(super) async fn set_state(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Path((id, action)): Path<(Uuid, String)>,
    Form(form): FormMap,
) -> Response {
    if let Err(r) = csrf_ok(&admin, &form) {
        return *r;
    }
    let new_state = match action.as_str() {
        "ignore" => duplicates::state::IGNORED,
        "reopen" => duplicates::state::OPEN,
        other => {
            return error_page(&ApiError::new(
                ErrorCode::NotFound,
                format!("no action `{other}`"),
            ))
        }
    };
    match duplicates::set_state(&state.engine, id, new_state).await {
        Ok(true) => back(
            "/admin/duplicates",
            if new_state == duplicates::state::IGNORED {
                "Group ignored."
            } else {
                "Group reopened."
            },
        ),
        Ok(false) => error_page(&ApiError::new(
            ErrorCode::NotFound,
            format!("duplicate group {id} does not exist"),
        )),
        Err(e) => error_page(&api_error(e)),
    }
}
