//! Salesforce over HTTP. Every call checks the connection's daily budget against the reserve
//! kept for other tools, reads `Sforce-Limit-Info` from every answer into that budget, sends
//! `Sforce-Call-Options: client=…` on every write, and returns decoded data or a classified
//! `CrmError`. Salesforce documents no per-second limit, so calls are counted, not paced.

use crate::clock::{Clock, SystemClock};
use chrono::{DateTime, Utc};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tandem_core::ConnectionId;

use dashmap::DashMap;
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tandem_core::CrmError;

use super::errors::{error_text, SalesforceError};
use super::ids::SfKeys;
use super::wire::{
    CollectionRequest, CompositeRequest, CompositeResponse, DeletedResult, Describe, QueryResult,
    Record, SaveResult, Subrequest, SubrequestResult, TokenResponse, UserInfo,
};
use super::SfConfig;
use crate::crm::limiter::{ConnectionBudget, Limiters};
use crate::crm::session::{Auth, Session};

/// Records per sObject Collections call (Salesforce's maximum).
pub const COLLECTION_MAX: usize = 200;

/// A describe and when it was read, per (connection, object).
type ReadDescribe = (DateTime<Utc>, Arc<Describe>);

/// How long a describe is kept before it is read again.
pub const DESCRIBE_TTL: chrono::Duration = chrono::Duration::minutes(15);

#[derive(Clone)]
pub struct SalesforceClient {
    http: reqwest::Client,
    limiters: Limiters,
    config: Arc<SfConfig>,
    keys: SfKeys,
    describes: Arc<DashMap<(ConnectionId, String), ReadDescribe>>,
    clock: Arc<dyn Clock>,
}

impl SalesforceClient {
    pub fn new(timeout: Duration, limiters: Limiters, config: SfConfig) -> Self {
        Self::with_http(crate::crm::http::client(timeout), limiters, config)
    }

    /// With a client built elsewhere (the engine's, whose resolver follows the egress policy).
    pub fn with_http(http: reqwest::Client, limiters: Limiters, config: SfConfig) -> Self {
        Self {
            http,
            limiters,
            config: Arc::new(config),
            keys: SfKeys::default(),
            describes: Arc::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The same client reading the time from `clock` (the engine's, or a test's).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// What time it is for this connector (the end of a `deleted` window, a close date).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    pub fn limiters(&self) -> &Limiters {
        &self.limiters
    }

    pub fn config(&self) -> &SfConfig {
        &self.config
    }

    /// Which Salesforce id each boundary id stands for.
    pub fn keys(&self) -> &SfKeys {
        &self.keys
    }

    pub fn budget(&self, session: &Session) -> Arc<ConnectionBudget> {
        let budget = self
            .limiters
            .budget(session.connection_id, session.seed_burst);
        budget.set_reserve(self.config.api_reserve);
        budget
    }

    fn base(&self, session: &Session) -> String {
        format!(
            "{}/services/data/{}",
            session.api_domain.trim_end_matches('/'),
            self.config.api_version
        )
    }

    fn authorized(&self, session: &Session, builder: RequestBuilder) -> RequestBuilder {
        match &session.auth {
            Auth::ApiToken(token) | Auth::Bearer(token) => builder.bearer_auth(token.expose()),
        }
    }

    fn request(&self, session: &Session, method: Method, path: &str) -> RequestBuilder {
        let url = format!("{}{path}", self.base(session));
        self.authorized(session, self.http.request(method, url))
    }

    /// Sends a request; a write carries `Sforce-Call-Options`.
    async fn execute(
        &self,
        session: &Session,
        builder: RequestBuilder,
        write: bool,
    ) -> Result<Response, CrmError> {
        let budget = self.budget(session);
        if budget.reserve_holds(self.config.quota_backoff) {
            let left = budget.daily_left().unwrap_or(0);
            tracing::warn!(connection_id = %session.connection_id, left, "Salesforce's daily API budget is down to the reserve; not calling.");
            let mut error = CrmError::from(SalesforceError::Reserve { left });
            error.retry_after = Some(self.config.quota_backoff);
            return Err(error);
        }
        budget.requests.fetch_add(1, Ordering::Relaxed);
        let builder = if write {
            builder.header(
                "Sforce-Call-Options",
                format!("client={}", self.config.call_options_client),
            )
        } else {
            builder
        };
        let (http, request) = builder.build_split();
        let request = request.map_err(SalesforceError::from)?;
        let operation = operation_of(request.method(), request.url().path());
        let started = std::time::Instant::now();
        let metered = |outcome| {
            crate::meter::crm_request(
                session.connection_id,
                "salesforce",
                &operation,
                write,
                outcome,
                1,
                started.elapsed(),
            );
        };
        let response = http.execute(request).await.map_err(|error| {
            metered(if error.is_timeout() {
                crate::meter::CrmOutcome::Timeout
            } else {
                crate::meter::CrmOutcome::Transport
            });
            SalesforceError::from(error)
        })?;
        metered(crate::meter::CrmOutcome::from_status(
            response.status().as_u16(),
        ));
        observe(&budget, &response);
        if response.status().is_success() {
            return Ok(response);
        }
        let mut error: CrmError = status_error(response).await.into();
        if error.code.as_deref() == Some("REQUEST_LIMIT_EXCEEDED") {
            budget.rate_limited.fetch_add(1, Ordering::Relaxed);
            // The daily allocation: wait for the rolling window to free calls.
            error.retry_after.get_or_insert(self.config.quota_backoff);
        }
        Err(error)
    }

    async fn json<T: DeserializeOwned>(
        &self,
        session: &Session,
        builder: RequestBuilder,
        write: bool,
    ) -> Result<T, CrmError> {
        let response = self.execute(session, builder, write).await?;
        Ok(response.json().await.map_err(SalesforceError::from)?)
    }

    /// `GET …/query?q=`: the first batch (up to 2,000 records).
    pub async fn query(&self, s: &Session, soql: &str) -> Result<QueryResult, CrmError> {
        let request = self.request(s, Method::GET, "/query").query(&[("q", soql)]);
        self.json(s, request, false).await
    }

    /// `GET …/queryAll?q=`: the first batch, deleted records (the recycle bin's, merged
    /// ones) included.
    pub async fn query_all(&self, s: &Session, soql: &str) -> Result<QueryResult, CrmError> {
        let request = self
            .request(s, Method::GET, "/queryAll")
            .query(&[("q", soql)]);
        self.json(s, request, false).await
    }

    /// The next batch, from a `nextRecordsUrl` (a path on the instance).
    pub async fn query_more(&self, s: &Session, next: &str) -> Result<QueryResult, CrmError> {
        if !next.starts_with("/services/data/") {
            return Err(
                SalesforceError::Decode(format!("unexpected nextRecordsUrl {next:?}")).into(),
            );
        }
        let url = format!("{}{next}", s.api_domain.trim_end_matches('/'));
        let request = self.authorized(s, self.http.get(url));
        self.json(s, request, false).await
    }

    /// Every record a query selects, following `nextRecordsUrl`.
    pub async fn query_all_pages(&self, s: &Session, soql: &str) -> Result<Vec<Record>, CrmError> {
        let mut page = self.query(s, soql).await?;
        let mut records = std::mem::take(&mut page.records);
        while let (false, Some(next)) = (page.done, page.next_records_url.clone()) {
            page = self.query_more(s, &next).await?;
            records.append(&mut page.records);
        }
        Ok(records)
    }

    pub async fn get_record(
        &self,
        s: &Session,
        object: &str,
        id: &str,
        fields: &[String],
    ) -> Result<Record, CrmError> {
        let mut request = self.request(s, Method::GET, &format!("/sobjects/{object}/{id}"));
        if !fields.is_empty() {
            request = request.query(&[("fields", fields.join(","))]);
        }
        self.json(s, request, false).await
    }

    /// `POST …/sobjects/{T}`: 201 `{id, success, errors}`.
    pub async fn create_record<B: Serialize + ?Sized>(
        &self,
        s: &Session,
        object: &str,
        body: &B,
    ) -> Result<SaveResult, CrmError> {
        let request = self
            .request(s, Method::POST, &format!("/sobjects/{object}"))
            .json(body);
        self.json(s, request, true).await
    }

    /// `PATCH …/sobjects/{T}/{id}`: 204.
    pub async fn update_record<B: Serialize + ?Sized>(
        &self,
        s: &Session,
        object: &str,
        id: &str,
        body: &B,
    ) -> Result<(), CrmError> {
        let request = self
            .request(s, Method::PATCH, &format!("/sobjects/{object}/{id}"))
            .json(body);
        self.execute(s, request, true).await.map(|_| ())
    }

    /// `PATCH /composite/sobjects` (`allOrNone=false`): per-record results, in order. At most
    /// [`COLLECTION_MAX`] records.
    pub async fn collection_update(
        &self,
        s: &Session,
        records: &[Record],
    ) -> Result<Vec<SaveResult>, CrmError> {
        self.collection(s, Method::PATCH, records).await
    }

    /// `POST /composite/sobjects` (`allOrNone=false`).
    pub async fn collection_create(
        &self,
        s: &Session,
        records: &[Record],
    ) -> Result<Vec<SaveResult>, CrmError> {
        self.collection(s, Method::POST, records).await
    }

    async fn collection(
        &self,
        s: &Session,
        method: Method,
        records: &[Record],
    ) -> Result<Vec<SaveResult>, CrmError> {
        let body = CollectionRequest {
            all_or_none: false,
            records,
        };
        let request = self.request(s, method, "/composite/sobjects").json(&body);
        self.json(s, request, true).await
    }

    /// `POST /composite` (`allOrNone=false`, `collateSubrequests=false`): the subrequests run in
    /// the order sent, in ONE API call; one answer per subrequest, in the order sent. A
    /// subrequest's failure is in its own answer ([`subrequest_answer`]). Sent as a write (with
    /// `Sforce-Call-Options`), as tandem uses it to write.
    pub async fn composite(
        &self,
        s: &Session,
        subrequests: &[Subrequest],
    ) -> Result<Vec<SubrequestResult>, CrmError> {
        let body = CompositeRequest {
            all_or_none: false,
            collate_subrequests: false,
            composite_request: subrequests,
        };
        let request = self.request(s, Method::POST, "/composite").json(&body);
        let answer: CompositeResponse = self.json(s, request, true).await?;
        let mut by_ref: std::collections::HashMap<String, SubrequestResult> = answer
            .composite_response
            .into_iter()
            .map(|r| (r.reference_id.clone(), r))
            .collect();
        subrequests
            .iter()
            .map(|sub| {
                by_ref.remove(&sub.reference_id).ok_or_else(|| {
                    SalesforceError::Decode(format!(
                        "the composite answer has no result for {}",
                        sub.reference_id
                    ))
                    .into()
                })
            })
            .collect()
    }

    /// A subrequest's path (`/services/data/vXX.X/…?query`) for [`Self::composite`].
    pub fn subrequest_url(&self, path: &str, query: &[(&str, &str)]) -> String {
        let mut url = format!("/services/data/{}{path}", self.config.api_version);
        if !query.is_empty() {
            let encoded = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query)
                .finish();
            url.push('?');
            url.push_str(&encoded);
        }
        url
    }

    /// `GET /composite/sobjects/{T}?ids&fields`: the records in the order of `ids` (`None`
    /// for one that is gone).
    pub async fn retrieve(
        &self,
        s: &Session,
        object: &str,
        ids: &[String],
        fields: &[String],
    ) -> Result<Vec<Option<Record>>, CrmError> {
        let request = self
            .request(s, Method::GET, &format!("/composite/sobjects/{object}"))
            .query(&[("ids", ids.join(",")), ("fields", fields.join(","))]);
        self.json(s, request, false).await
    }

    /// `GET …/sobjects/{T}/deleted/?start&end`.
    pub async fn deleted(
        &self,
        s: &Session,
        object: &str,
        start: &str,
        end: &str,
    ) -> Result<DeletedResult, CrmError> {
        let request = self
            .request(s, Method::GET, &format!("/sobjects/{object}/deleted/"))
            .query(&[("start", start), ("end", end)]);
        self.json(s, request, false).await
    }

    /// `GET …/sobjects/{T}/describe`, kept per connection for [`DESCRIBE_TTL`] (fields an
    /// admin adds, and field-level security granted, show within it) or until tandem creates
    /// a field.
    pub async fn describe(&self, s: &Session, object: &str) -> Result<Arc<Describe>, CrmError> {
        let key = (s.connection_id, object.to_owned());
        let now = self.now();
        if let Some(cached) = self.describes.get(&key) {
            let (read_at, describe) = &*cached;
            if now - *read_at < DESCRIBE_TTL {
                return Ok(Arc::clone(describe));
            }
        }
        let request = self.request(s, Method::GET, &format!("/sobjects/{object}/describe"));
        let describe: Arc<Describe> = Arc::new(self.json(s, request, false).await?);
        self.describes.insert(key, (now, Arc::clone(&describe)));
        Ok(describe)
    }

    /// Drops the connection's cached describes (after a field was created; before the field
    /// mapping lists the fields, so an admin sees what Salesforce says now).
    pub fn forget_describes(&self, connection: ConnectionId) {
        self.describes.retain(|(c, _), _| *c != connection);
    }

    /// `POST …/tooling/sobjects/{T}` (CustomField, FieldPermissions, PermissionSet, …).
    pub async fn tooling_create<B: Serialize + ?Sized>(
        &self,
        s: &Session,
        object: &str,
        body: &B,
    ) -> Result<SaveResult, CrmError> {
        let request = self
            .request(s, Method::POST, &format!("/tooling/sobjects/{object}"))
            .json(body);
        self.json(s, request, true).await
    }

    /// `GET {instance}/services/oauth2/userinfo`.
    pub async fn userinfo(&self, s: &Session) -> Result<UserInfo, CrmError> {
        let url = format!(
            "{}/services/oauth2/userinfo",
            s.api_domain.trim_end_matches('/')
        );
        let request = self.authorized(s, self.http.get(url));
        self.json(s, request, false).await
    }

    /// `POST {login}/services/oauth2/token` (form).
    pub async fn oauth_token(
        &self,
        login_url: &str,
        form: &[(&str, &str)],
    ) -> Result<TokenResponse, CrmError> {
        let url = format!("{}/services/oauth2/token", login_url.trim_end_matches('/'));
        let response = self
            .http
            .post(url)
            .form(form)
            .send()
            .await
            .map_err(SalesforceError::from)?;
        if response.status().is_success() {
            return Ok(response.json().await.map_err(SalesforceError::from)?);
        }
        Err(status_error(response).await.into())
    }

    /// `POST {login}/services/oauth2/revoke` `token=` (a refresh token ends its sessions too).
    pub async fn oauth_revoke(&self, login_url: &str, token: &str) -> Result<(), CrmError> {
        let url = format!("{}/services/oauth2/revoke", login_url.trim_end_matches('/'));
        let response = self
            .http
            .post(url)
            .form(&[("token", token)])
            .send()
            .await
            .map_err(SalesforceError::from)?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(status_error(response).await.into())
        }
    }
}

/// `api-usage=N/M` out of a `Sforce-Limit-Info` value: (used, max).
pub fn parse_limit_info(value: &str) -> Option<(i64, i64)> {
    let usage = value
        .split(',')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("api-usage="))?;
    let (used, max) = usage.split_once('/')?;
    Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
}

fn observe(budget: &ConnectionBudget, response: &Response) {
    let Some((used, max)) = response
        .headers()
        .get("sforce-limit-info")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_limit_info)
    else {
        return;
    };
    budget.observe(None, Some((max - used).max(0)), Some(max));
}

/// A Composite subrequest's answer decoded as `T`, or its error array classified as the same
/// answer to a call of its own would be.
pub fn subrequest_answer<T: DeserializeOwned>(result: SubrequestResult) -> Result<T, CrmError> {
    let status = result.http_status_code;
    if (200..300).contains(&status) {
        return serde_json::from_value(result.body).map_err(|e| {
            SalesforceError::Decode(format!("subrequest {}: {e}", result.reference_id)).into()
        });
    }
    let raw = result.body.to_string();
    let (code, message, fields) = error_text(&result.body, &raw);
    Err(SalesforceError::Api {
        status,
        code,
        message,
        fields,
    }
    .into())
}

async fn status_error(response: Response) -> SalesforceError {
    let status = response.status().as_u16();
    let raw = response.text().await.unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(&raw).unwrap_or(serde_json::Value::Null);
    let (code, message, fields) = error_text(&body, &raw);
    SalesforceError::Api {
        status,
        code,
        message,
        fields,
    }
}

/// A bounded operation label for the metrics: the method and the REST path after the API
/// version, up to the object type (`GET query`, `PATCH sobjects/Lead`, `POST composite/sobjects`),
/// never a record id.
fn operation_of(method: &Method, path: &str) -> String {
    let rest = path
        .split_once("/services/data/")
        .map_or(path, |(_, after)| {
            after.split_once('/').map_or("", |(_, r)| r)
        });
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).take(2).collect();
    let label = match parts.as_slice() {
        ["sobjects", object] | ["composite", object] | ["tooling", object] => {
            format!("{}/{object}", parts[0])
        }
        [first, ..] => (*first).to_owned(),
        [] => "other".to_owned(),
    };
    format!("{method} {label}")
}

#[cfg(test)]
mod operation_tests {
    use super::*;

    #[test]
    fn operation_labels_stop_at_the_object_type_and_never_carry_a_record_id() {
        assert_eq!(
            operation_of(
                &Method::PATCH,
                "/services/data/v62.0/sobjects/Lead/00Q5g00000AbCdEEAZ"
            ),
            "PATCH sobjects/Lead"
        );
        assert_eq!(
            operation_of(&Method::GET, "/services/data/v62.0/query"),
            "GET query"
        );
        assert_eq!(
            operation_of(&Method::POST, "/services/data/v62.0/composite/sobjects"),
            "POST composite/sobjects"
        );
    }
}
