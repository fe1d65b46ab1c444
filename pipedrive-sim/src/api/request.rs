//! A request as the resource handlers see it ([`Ctx`]): the caller, the path id, the query
//! (typed parameters: integers, booleans, times, `limit`, `ids`) and the body (JSON, or a form
//! for v1 POSTs), plus [`with_company`], which lends a handler the caller's company.

use axum::body::Bytes;
use serde_json::{Map, Value};

use super::auth::Caller;
use super::response::ApiErr;
use crate::model::parse_time;
use crate::ops::Api;
use crate::shared::Shared;
use crate::state::{Company, State as SimState};

/// The query string's pairs, in order.
pub(super) fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    q.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    })
    .unwrap_or_default()
}

/// A request as a handler sees it, once authenticated and charged.
pub(super) struct Ctx<'a> {
    pub(super) shared: &'a Shared,
    pub(super) caller: Caller,
    pub(super) query: Vec<(String, String)>,
    pub(super) body: Bytes,
    pub(super) id: Option<String>,
    pub(super) now: i64,
    #[allow(dead_code)]
    pub(super) api: Api,
}

impl Ctx<'_> {
    pub(super) fn q(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn q_int(&self, k: &str) -> Result<Option<i64>, ApiErr> {
        match self.q(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiErr::BadRequest(format!(
                    "Validation failed: {k}: Parameter '{k}' must be an integer"
                ))
            }),
        }
    }

    pub(super) fn q_bool(&self, k: &str) -> Result<Option<bool>, ApiErr> {
        match self.q(k) {
            None | Some("") => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(ApiErr::BadRequest(format!(
                "Validation failed: {k}: Parameter '{k}' must be a boolean"
            ))),
        }
    }

    pub(super) fn q_time(&self, k: &str) -> Result<Option<i64>, ApiErr> {
        match self.q(k) {
            None | Some("") => Ok(None),
            Some(v) => parse_time(v).map(Some).ok_or_else(|| {
                ApiErr::BadRequest(format!(
                    "Validation failed: {k}: must be an RFC 3339 date-time"
                ))
            }),
        }
    }

    pub(super) fn limit(&self) -> Result<usize, ApiErr> {
        match self.q_int("limit")? {
            None => Ok(100),
            Some(n) if (1..=500).contains(&n) => Ok(n as usize),
            Some(_) => Err(ApiErr::BadRequest(
                "Validation failed: limit: must be between 1 and 500".into(),
            )),
        }
    }

    pub(super) fn path_id(&self, what: &str) -> Result<i64, ApiErr> {
        self.id
            .as_deref()
            .and_then(|s| s.parse().ok())
            .filter(|n: &i64| *n > 0)
            .ok_or_else(|| {
                ApiErr::BadRequest(format!(
                    "Validation failed: id: {what} id must be a positive integer"
                ))
            })
    }

    pub(super) fn json_body(&self) -> Result<Map<String, Value>, ApiErr> {
        if self.body.is_empty() {
            return Ok(Map::new());
        }
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(ApiErr::BadRequest(
                "Request body must be a JSON object".into(),
            )),
            Err(e) => Err(ApiErr::BadRequest(format!(
                "Invalid JSON in request body: {e}"
            ))),
        }
    }

    /// v1 POST bodies may also be form-encoded.
    pub(super) fn json_or_form_body(&self) -> Result<Map<String, Value>, ApiErr> {
        if self.body.first().is_some_and(|b| *b == b'{') || self.body.is_empty() {
            return self.json_body();
        }
        Ok(url::form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect())
    }
}

pub(super) fn with_company<T>(
    ctx: &Ctx<'_>,
    f: impl FnOnce(&mut Company, &mut SimState) -> T,
) -> T {
    let mut guard = ctx.shared.state.lock();
    let st = &mut *guard;
    let mut company = st
        .companies
        .remove(&ctx.caller.company_id)
        .unwrap_or_else(|| {
            let users = st.current().users.clone();
            let mut rng = ctx.shared.rng.lock();
            Company::new(ctx.caller.company_id, "Company", users, ctx.now, &mut *rng)
        });
    let out = f(&mut company, st);
    st.companies.insert(ctx.caller.company_id, company);
    out
}

/// The `ids` filter: at most 100 comma-separated ids.
pub(super) fn ids_filter(ctx: &Ctx<'_>) -> Result<Option<Vec<i64>>, ApiErr> {
    match ctx.q("ids") {
        None | Some("") => Ok(None),
        Some(s) => {
            let ids = s
                .split(',')
                .map(|x| x.trim().parse::<i64>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    ApiErr::BadRequest(
                        "Validation failed: ids: must be a comma separated list of integers".into(),
                    )
                })?;
            if ids.len() > 100 {
                return Err(ApiErr::BadRequest(
                    "Validation failed: ids: a maximum of 100 ids is allowed".into(),
                ));
            }
            Ok(Some(ids))
        }
    }
}
