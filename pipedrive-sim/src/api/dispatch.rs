//! The single entry point: every request comes through [`dispatch`], which routes it
//! ([`crate::ops::route`]), counts it, injects faults (latency, statuses, hang, reset, lost
//! answers), reads the body, authenticates the caller, charges rate limits and token costs,
//! checks OAuth scopes, and then calls the operation's handler in its resource module; the
//! changes a handler reports go to the webhook emitter.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::auth::{self, credential, Credential};
use super::limits::charge;
use super::request::{parse_query, Ctx};
use super::response::{
    bytes_response, envelope, injected_status, json_response, too_many, ApiErr, HResult, Out,
    ERROR_INFO,
};
use super::{
    activities, deals, fields, files, leads, legacy, notes, oauth, organizations, persons,
    pipelines, products, recents, reference, search, subscriptions, users,
};
use crate::faults::RequestAction;
use crate::ops::{route, Api, Op, Route};
use crate::shared::{ConnCtl, Shared};
use crate::webhooks;

/// The single entry point: every request comes through here.
pub(crate) async fn dispatch(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let mut lose_answer = false;
    let response = serve(&shared, req, &mut lose_answer).await;
    if lose_answer {
        // The request was carried out; its answer never comes (the client times out).
        shared.wait_shutdown().await;
        return injected_status(503);
    }
    response
}

async fn serve(shared: &Arc<Shared>, req: Request, lose_answer: &mut bool) -> Response {
    let (parts, body) = req.into_parts();
    let (api, route) = route(&parts.method, parts.uri.path(), shared.config.legacy_v1);
    let (op, path_id) = match route {
        Route::Op(op, id) => (op, id),
        Route::Gone(msg) => return envelope(StatusCode::GONE, msg, ERROR_INFO),
        Route::MethodNotAllowed => {
            return envelope(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                ERROR_INFO,
            )
        }
        Route::NotFound => {
            let msg = if api.is_some() {
                "Unknown method ."
            } else {
                "Not found"
            };
            return envelope(StatusCode::NOT_FOUND, msg, ERROR_INFO);
        }
    };
    let query = parse_query(parts.uri.query());
    let cred = credential(&parts.headers, &query);

    // Count the call.
    let faults = {
        let mut st = shared.state.lock();
        *st.counters.by_op.entry(op).or_default() += 1;
        let label = match &cred {
            Credential::Bearer(t) | Credential::ApiToken(t) => Some(t.clone()),
            _ => None,
        };
        if let Some(t) = label {
            *st.counters.by_token_op.entry((t.clone(), op)).or_default() += 1;
            *st.counters.by_token.entry(t).or_default() += 1;
        }
        st.faults.clone()
    };

    // Inject faults.
    if !faults.is_empty() {
        let (latency, action) = {
            let mut rng = shared.rng.lock();
            faults.decide_request(op, parts.method.as_str(), &mut *rng)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match action {
            Some(RequestAction::Status(s)) => return injected_status(s),
            Some(RequestAction::Hang) => {
                shared.wait_shutdown().await;
                return injected_status(503);
            }
            Some(RequestAction::LoseAnswer) => *lose_answer = true,
            Some(RequestAction::Reset) => {
                if let Some(ctl) = parts.extensions.get::<ConnCtl>() {
                    ctl.0.notify_one();
                }
                shared.wait_shutdown().await;
                return injected_status(503);
            }
            None => {}
        }
    }

    let body = match axum::body::to_bytes(body, 16 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return envelope(
                StatusCode::BAD_REQUEST,
                "Request body too large or unreadable",
                ERROR_INFO,
            )
        }
    };

    if op.is_oauth() {
        return oauth::handle(shared, op, &parts.headers, &query, &body);
    }

    // Authenticate.
    let now = shared.now();
    let caller = match auth::authenticate(shared, &cred, now) {
        Ok(caller) => caller,
        Err(refusal) => return refusal.into_response(),
    };

    // Rate limits, then scopes.
    let (allowed, headers) = {
        let mut st = shared.state.lock();
        let r = charge(&mut st, &caller, op, now, Instant::now());
        if r.0
            && caller.oauth
            && !op.scopes().is_empty()
            && !op.scopes().iter().any(|s| st.scopes.iter().any(|g| g == s))
        {
            drop(st);
            let mut resp = json_response(
                StatusCode::FORBIDDEN,
                &json!({"success": false, "error": "Scope and URL mismatch", "errorCode": 403, "error_info": ERROR_INFO}),
            );
            r.1.apply(&mut resp);
            return resp;
        }
        r
    };
    if !allowed {
        let mut r = too_many();
        headers.apply(&mut r);
        return r;
    }

    let ctx = Ctx {
        shared,
        caller,
        query,
        body,
        id: path_id,
        now,
        api: api.unwrap_or(Api::V2),
    };
    let result = match op {
        Op::GetPersons => persons::list(&ctx).map(|b| (StatusCode::OK, Out::Bytes(b), Vec::new())),
        Op::GetPerson => persons::get(&ctx).map(|b| (StatusCode::OK, Out::Bytes(b), Vec::new())),
        _ => handle(&ctx, op).map(|(s, v, e)| (s, Out::Json(v), e)),
    };
    let mut resp = match result {
        Ok((status, out, events)) => {
            if !events.is_empty() {
                webhooks::emit(shared, events);
            }
            match out {
                Out::Json(value) => json_response(status, &value),
                Out::Bytes(bytes) => bytes_response(status, bytes),
            }
        }
        Err(e) => e.into_response(),
    };
    headers.apply(&mut resp);
    resp
}

/// Calls the handler of an operation that answers JSON (every one but the two persons reads,
/// which `serve` calls itself).
fn handle(ctx: &Ctx<'_>, op: Op) -> HResult {
    match op {
        Op::AddPerson => persons::add(ctx),
        Op::UpdatePerson => persons::update(ctx),
        Op::DeletePerson => persons::delete(ctx),
        Op::SearchPersons => search::persons(ctx),
        Op::MergePersons => persons::merge(ctx),
        Op::GetDeals => deals::list(ctx),
        Op::GetDeal => deals::get(ctx),
        Op::AddDeal => deals::add(ctx),
        Op::UpdateDeal => deals::update(ctx),
        Op::DeleteDeal => deals::delete(ctx),
        Op::GetActivities => activities::list(ctx),
        Op::GetActivity => activities::get(ctx),
        Op::AddActivity => activities::add(ctx),
        Op::UpdateActivity => activities::update(ctx),
        Op::DeleteActivity => activities::delete(ctx),
        Op::GetPersonFields
        | Op::GetDealFields
        | Op::GetOrganizationFields
        | Op::GetProductFields
        | Op::GetActivityFields => fields::list(ctx, op),
        Op::GetPersonField | Op::GetDealField | Op::GetOrganizationField | Op::GetProductField => {
            fields::get(ctx, op)
        }
        Op::DeletePersonField => fields::delete(ctx),
        Op::AddPersonField | Op::AddPersonFieldV1 | Op::AddOrganizationField => {
            fields::add(ctx, op)
        }
        Op::GetStages => pipelines::stages(ctx),
        Op::GetStage => pipelines::stage(ctx),
        Op::GetPipelines => pipelines::pipelines(ctx),
        Op::GetPipeline => pipelines::pipeline(ctx),
        Op::GetCurrentUser => users::me(ctx),
        Op::GetUsers => users::list(ctx),
        Op::GetWebhooks => subscriptions::list(ctx),
        Op::AddWebhook => subscriptions::add(ctx),
        Op::DeleteWebhook => subscriptions::delete(ctx),
        Op::GetRecents => recents::list(ctx),
        Op::GetPersonFieldsV1
        | Op::GetDealFieldsV1
        | Op::GetOrganizationFieldsV1
        | Op::GetActivityFieldsV1
        | Op::GetProductFieldsV1
        | Op::GetNoteFieldsV1 => fields::list_v1(ctx, op),
        Op::GetOrganizations => organizations::list(ctx),
        Op::GetOrganization => organizations::get(ctx),
        Op::AddOrganization => organizations::add(ctx),
        Op::UpdateOrganization => organizations::update(ctx),
        Op::DeleteOrganization => organizations::delete(ctx),
        Op::SearchOrganization => organizations::search(ctx),
        Op::GetProducts => products::list(ctx),
        Op::GetProduct => products::get(ctx),
        Op::AddProduct => products::add(ctx),
        Op::UpdateProduct => products::update(ctx),
        Op::DeleteProduct => products::delete(ctx),
        Op::GetLeads => leads::list(ctx),
        Op::GetLead => leads::get(ctx),
        Op::AddLead => leads::add(ctx),
        Op::UpdateLead => leads::update(ctx),
        Op::DeleteLead => leads::delete(ctx),
        Op::GetLeadLabels => leads::labels(ctx),
        Op::GetNotes => notes::list(ctx),
        Op::GetNote => notes::get(ctx),
        Op::AddNote => notes::add(ctx),
        Op::UpdateNote => notes::update(ctx),
        Op::DeleteNote => notes::delete(ctx),
        Op::GetFiles => files::list(ctx),
        Op::GetFile => files::get(ctx),
        Op::DeleteFile => files::delete(ctx),
        Op::GetActivityTypes => reference::activity_types(ctx),
        Op::GetCurrencies => reference::currencies(ctx),
        Op::GetFilters => reference::filters(ctx),
        Op::GetDealsLegacy => legacy::deals(ctx),
        Op::GetDealLegacy => legacy::deal(ctx),
        Op::GetDealProductsLegacy => legacy::deal_products(ctx),
        Op::GetDealUpdatesLegacy => legacy::deal_updates(ctx),
        Op::GetPersonsLegacy => legacy::persons(ctx),
        Op::GetPersonLegacy => legacy::person(ctx),
        Op::GetOrganizationsLegacy => legacy::organizations(ctx),
        Op::GetOrganizationLegacy => legacy::organization(ctx),
        Op::GetActivitiesLegacy => legacy::activities(ctx),
        Op::GetActivityLegacy => legacy::activity(ctx),
        Op::GetProductsLegacy => legacy::products(ctx),
        Op::GetProductLegacy => legacy::product(ctx),
        Op::GetPersons | Op::GetPerson => Err(ApiErr::BadRequest("served by the fast path".into())),
        Op::OauthAuthorize | Op::OauthToken | Op::OauthRevoke => Err(ApiErr::BadRequest(
            "OAuth endpoints are served under /oauth".into(),
        )),
    }
}
