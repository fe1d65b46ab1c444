//! Pipedrive over HTTP. Every call waits for the connection's limiter, counts the operation's
//! documented token cost, adapts the limiter from the response headers and returns either the
//! decoded data or a classified `CrmError`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tandem_core::{CrmError, PersonId};

use super::errors::{error_text, PipedriveError};
use super::wire::{
    Activity, Deal, Envelope, Organization, OrganizationHit, OrganizationSearchData, Person,
    PersonField, PersonWrite, SearchData, Stage, TokenResponse, User, Webhook, WebhookCreate,
};
use crate::crm::limiter::{ConnectionBudget, Limiters};
use crate::crm::session::{Auth, Session};
use crate::meter::{self, CrmOutcome};

/// An operation and its documented `x-token-cost`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    ListPersons,
    GetPerson,
    CreatePerson,
    PatchPerson,
    SearchPersons,
    UsersMe,
    ListWebhooks,
    CreateWebhook,
    DeleteWebhook,
    ListPersonFields,
    CreatePersonField,
    CreateDeal,
    PatchDeal,
    ListDeals,
    CreateActivity,
    PatchActivity,
    CreateNote,
    UpdateNote,
    ListStages,
    MergePersons,
    ListActivities,
    ListNotes,
    ListOrganizations,
    GetOrganization,
    CreateOrganization,
    PatchOrganization,
    SearchOrganizations,
    ListOrganizationFields,
    CreateOrganizationField,
    /// A list read by the mirror (`list_page`), with the endpoint's documented cost.
    MirrorList(u8),
}

/// The `crm` label of metrics.
const CRM: &str = "pipedrive";

impl Op {
    /// Whether the operation changes data in Pipedrive (the console charts writes).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Self::CreatePerson
                | Self::PatchPerson
                | Self::CreatePersonField
                | Self::CreateDeal
                | Self::PatchDeal
                | Self::CreateActivity
                | Self::PatchActivity
                | Self::CreateNote
                | Self::UpdateNote
                | Self::MergePersons
                | Self::CreateOrganization
                | Self::PatchOrganization
                | Self::CreateOrganizationField
                | Self::CreateWebhook
                | Self::DeleteWebhook
        )
    }

    pub fn token_cost(self) -> u64 {
        match self {
            Self::ListPersons
            | Self::ListWebhooks
            | Self::ListPersonFields
            | Self::ListDeals
            | Self::ListOrganizations
            | Self::ListOrganizationFields
            | Self::CreateWebhook => 10,
            Self::GetPerson | Self::GetOrganization => 1,
            Self::CreatePerson
            | Self::PatchPerson
            | Self::CreatePersonField
            | Self::CreateDeal
            | Self::PatchDeal
            | Self::CreateActivity
            | Self::PatchActivity
            | Self::CreateOrganization
            | Self::PatchOrganization
            | Self::CreateOrganizationField
            | Self::ListStages => 5,
            Self::SearchPersons | Self::SearchOrganizations => 20,
            Self::UsersMe => 2,
            Self::DeleteWebhook => 6,
            Self::MergePersons => 40,
            Self::ListActivities | Self::CreateNote | Self::UpdateNote => 10,
            Self::ListNotes => 20,
            Self::MirrorList(cost) => u64::from(cost),
        }
    }
}

/// One page of a cursor-paginated list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// One page of any list, as JSON: the items, and where the next page starts (v2's
/// `next_cursor`, or v1's `start` offset).
#[derive(Debug, Clone, Default)]
pub struct RawPage {
    pub items: Vec<serde_json::Value>,
    pub next_cursor: Option<String>,
    pub next_start: Option<u64>,
}

/// Who waits for the limiter: the sync (first) or background reads such as the mirror (only
/// when no sync request is waiting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Sync,
    Background,
}

/// Query for `GET /api/v2/persons`.
#[derive(Debug, Clone, Default)]
pub struct PersonQuery {
    pub cursor: Option<String>,
    /// Only the persons of this organization.
    pub org_id: Option<i64>,
    pub limit: u32,
    pub updated_since: Option<String>,
    pub sort_by_update_time: bool,
}

#[derive(Clone)]
pub struct PipedriveClient {
    http: reqwest::Client,
    limiters: Limiters,
}

impl PipedriveClient {
    pub fn new(timeout: Duration, limiters: Limiters) -> Self {
        Self::with_http(crate::crm::http::client(timeout), limiters)
    }

    /// With a client built elsewhere (the engine's, whose resolver follows the egress policy).
    pub fn with_http(http: reqwest::Client, limiters: Limiters) -> Self {
        Self { http, limiters }
    }

    pub fn limiters(&self) -> &Limiters {
        &self.limiters
    }

    pub fn budget(&self, session: &Session) -> Arc<ConnectionBudget> {
        self.limiters
            .budget(session.connection_id, session.seed_burst)
    }

    fn request(&self, session: &Session, method: Method, path: &str) -> RequestBuilder {
        let url = format!("{}{path}", session.api_domain.trim_end_matches('/'));
        let builder = self.http.request(method, url);
        match &session.auth {
            Auth::ApiToken(token) => builder.header("x-api-token", token.expose()),
            Auth::Bearer(token) => builder.bearer_auth(token.expose()),
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        session: &Session,
        op: Op,
        request: RequestBuilder,
    ) -> Result<(T, Option<String>), CrmError> {
        let budget = self.budget(session);
        let waiting = std::time::Instant::now();
        budget
            .acquire(matches!(op, Op::SearchPersons | Op::SearchOrganizations))
            .await;
        meter::rate_limit_wait(session.connection_id, CRM, waiting.elapsed());
        budget.requests.fetch_add(1, Ordering::Relaxed);
        budget
            .tokens_spent
            .fetch_add(op.token_cost(), Ordering::Relaxed);
        let started = std::time::Instant::now();
        let metered = |outcome| {
            let name = format!("{op:?}");
            let (cost, elapsed) = (op.token_cost(), started.elapsed());
            meter::crm_request(
                session.connection_id,
                CRM,
                &name,
                op.is_write(),
                outcome,
                cost,
                elapsed,
            );
        };
        let response = request.send().await.map_err(|error| {
            metered(if error.is_timeout() {
                CrmOutcome::Timeout
            } else {
                CrmOutcome::Transport
            });
            PipedriveError::from(error)
        })?;
        observe(&budget, &response);
        let status = response.status();
        metered(CrmOutcome::from_status(status.as_u16()));
        if status.is_success() {
            let envelope: Envelope<T> = response.json().await.map_err(PipedriveError::from)?;
            let cursor = envelope.additional_data.and_then(|a| a.next_cursor);
            return Ok((envelope.data, cursor));
        }
        if status.as_u16() == 429 {
            budget.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        Err(status_error(response).await.into())
    }

    /// One page of any list endpoint (`path` like `/api/v2/deals` or `/api/v1/notes`), as JSON.
    /// `op` carries the endpoint's token cost; `priority` decides who goes first at the limiter.
    pub async fn list_page(
        &self,
        s: &Session,
        op: Op,
        path: &str,
        query: &[(String, String)],
        priority: Priority,
    ) -> Result<RawPage, CrmError> {
        let budget = self.budget(s);
        match priority {
            Priority::Sync => budget.acquire(false).await,
            Priority::Background => budget.acquire_background().await,
        }
        budget.requests.fetch_add(1, Ordering::Relaxed);
        budget
            .tokens_spent
            .fetch_add(op.token_cost(), Ordering::Relaxed);
        let request = self.request(s, Method::GET, path).query(query);
        let response = request.send().await.map_err(PipedriveError::from)?;
        observe(&budget, &response);
        let status = response.status();
        if !status.is_success() {
            if status.as_u16() == 429 {
                budget.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            return Err(status_error(response).await.into());
        }
        let mut body: serde_json::Value = response.json().await.map_err(PipedriveError::from)?;
        let items = match body.get_mut("data").map(serde_json::Value::take) {
            Some(serde_json::Value::Array(items)) => items,
            Some(serde_json::Value::Null) | None => Vec::new(),
            Some(other) => vec![other],
        };
        let extra = body.get("additional_data");
        let text = |v: Option<&serde_json::Value>| v.and_then(|c| c.as_str()).map(str::to_owned);
        let next_cursor = text(extra.and_then(|a| a.get("next_cursor")));
        let pagination = extra.and_then(|a| a.get("pagination")).or(extra);
        let more = pagination
            .and_then(|p| p.get("more_items_in_collection"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let next_start = pagination
            .and_then(|p| p.get("next_start"))
            .and_then(serde_json::Value::as_u64)
            .or_else(|| {
                let p = pagination?;
                let start = p.get("start")?.as_u64()?;
                let limit = p.get("limit")?.as_u64()?;
                Some(start + limit)
            })
            .filter(|_| more);
        Ok(RawPage {
            items,
            next_cursor,
            next_start,
        })
    }

    pub async fn users_me(&self, s: &Session) -> Result<User, CrmError> {
        Ok(self
            .send(
                s,
                Op::UsersMe,
                self.request(s, Method::GET, "/api/v1/users/me"),
            )
            .await?
            .0)
    }

    pub async fn get_person(&self, s: &Session, id: PersonId) -> Result<Person, CrmError> {
        Ok(self
            .send(
                s,
                Op::GetPerson,
                self.request(s, Method::GET, &format!("/api/v2/persons/{id}")),
            )
            .await?
            .0)
    }

    pub async fn create_person(&self, s: &Session, body: &PersonWrite) -> Result<Person, CrmError> {
        Ok(self
            .send(
                s,
                Op::CreatePerson,
                self.request(s, Method::POST, "/api/v2/persons").json(body),
            )
            .await?
            .0)
    }

    pub async fn patch_person(
        &self,
        s: &Session,
        id: PersonId,
        body: &PersonWrite,
    ) -> Result<Person, CrmError> {
        let request = self
            .request(s, Method::PATCH, &format!("/api/v2/persons/{id}"))
            .json(body);
        Ok(self.send(s, Op::PatchPerson, request).await?.0)
    }

    pub async fn list_persons(
        &self,
        s: &Session,
        query: &PersonQuery,
    ) -> Result<Page<Person>, CrmError> {
        let mut params: Vec<(&str, String)> =
            vec![("limit", query.limit.clamp(1, 500).to_string())];
        if let Some(cursor) = &query.cursor {
            params.push(("cursor", cursor.clone()));
        }
        if let Some(since) = &query.updated_since {
            params.push(("updated_since", since.clone()));
        }
        if let Some(org) = query.org_id {
            params.push(("org_id", org.to_string()));
        }
        if query.sort_by_update_time {
            params.push(("sort_by", "update_time".into()));
            params.push(("sort_direction", "asc".into()));
        }
        let request = self
            .request(s, Method::GET, "/api/v2/persons")
            .query(&params);
        let (items, next_cursor) = self.send(s, Op::ListPersons, request).await?;
        Ok(Page { items, next_cursor })
    }

    /// Exact search on one field (`email`, or `custom_fields` for the apId); returns person ids.
    pub async fn search_persons(
        &self,
        s: &Session,
        term: &str,
        field: &str,
    ) -> Result<Vec<PersonId>, CrmError> {
        let request = self
            .request(s, Method::GET, "/api/v2/persons/search")
            .query(&[("term", term), ("fields", field), ("exact_match", "true")]);
        let (data, _) = self
            .send::<SearchData>(s, Op::SearchPersons, request)
            .await?;
        Ok(data.items.into_iter().map(|i| i.item.id).collect())
    }

    /// Persons whose e-mail contains `term` (not case-sensitive), with their e-mails as
    /// Pipedrive holds them: `GET /api/v2/persons/search?fields=email&exact_match=false`.
    pub async fn search_persons_by_email_loosely(
        &self,
        s: &Session,
        term: &str,
    ) -> Result<Vec<super::wire::SearchPerson>, CrmError> {
        let request = self
            .request(s, Method::GET, "/api/v2/persons/search")
            .query(&[
                ("term", term),
                ("fields", "email"),
                ("exact_match", "false"),
            ]);
        let (data, _) = self
            .send::<SearchData>(s, Op::SearchPersons, request)
            .await?;
        Ok(data.items.into_iter().map(|i| i.item).collect())
    }

    /// Organizations whose name is exactly `name` (Pipedrive: not case-sensitive, surrounding
    /// spaces ignored), `GET /api/v2/organizations/search?fields=name&exact_match=true`.
    pub async fn search_organizations(
        &self,
        s: &Session,
        name: &str,
    ) -> Result<Vec<OrganizationHit>, CrmError> {
        let request = self
            .request(s, Method::GET, "/api/v2/organizations/search")
            .query(&[
                ("term", name),
                ("fields", "name"),
                ("exact_match", "true"),
                ("limit", "100"),
            ]);
        let (data, _) = self
            .send::<OrganizationSearchData>(s, Op::SearchOrganizations, request)
            .await?;
        Ok(data.items.into_iter().map(|i| i.item).collect())
    }

    /// `GET /api/v2/organizations/{id}`.
    pub async fn get_organization(&self, s: &Session, id: i64) -> Result<Organization, CrmError> {
        let request = self.request(s, Method::GET, &format!("/api/v2/organizations/{id}"));
        Ok(self.send(s, Op::GetOrganization, request).await?.0)
    }

    /// `GET /api/v2/organizations?ids=…` (at most 100 ids per call).
    pub async fn organizations_by_ids(
        &self,
        s: &Session,
        ids: &[i64],
    ) -> Result<Vec<Organization>, CrmError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(100) {
            let ids = chunk
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let request = self
                .request(s, Method::GET, "/api/v2/organizations")
                .query(&[("ids", ids.as_str()), ("limit", "100")]);
            let (page, _): (Vec<Organization>, _) =
                self.send(s, Op::ListOrganizations, request).await?;
            found.extend(page);
        }
        Ok(found)
    }

    /// `POST /api/v2/organizations` with a name.
    pub async fn create_organization(
        &self,
        s: &Session,
        name: &str,
    ) -> Result<Organization, CrmError> {
        let request = self
            .request(s, Method::POST, "/api/v2/organizations")
            .json(&serde_json::json!({ "name": name }));
        Ok(self.send(s, Op::CreateOrganization, request).await?.0)
    }

    /// `PATCH /api/v2/organizations/{id}` with a body of the organization's fields.
    pub async fn patch_organization(
        &self,
        s: &Session,
        id: i64,
        body: &serde_json::Value,
    ) -> Result<Organization, CrmError> {
        let request = self
            .request(s, Method::PATCH, &format!("/api/v2/organizations/{id}"))
            .json(body);
        Ok(self.send(s, Op::PatchOrganization, request).await?.0)
    }

    /// `GET /api/v2/organizationFields`, every page.
    pub async fn list_organization_fields(
        &self,
        s: &Session,
    ) -> Result<Vec<PersonField>, CrmError> {
        self.list_fields(s, "/api/v2/organizationFields", Op::ListOrganizationFields)
            .await
    }

    /// `POST /api/v2/organizationFields`.
    pub async fn create_organization_field(
        &self,
        s: &Session,
        name: &str,
        field_type: &str,
    ) -> Result<PersonField, CrmError> {
        self.create_field(
            s,
            "/api/v2/organizationFields",
            Op::CreateOrganizationField,
            name,
            field_type,
        )
        .await
    }

    /// `GET /api/v2/personFields`, every page.
    pub async fn list_person_fields(&self, s: &Session) -> Result<Vec<PersonField>, CrmError> {
        self.list_fields(s, "/api/v2/personFields", Op::ListPersonFields)
            .await
    }

    /// `POST /api/v2/personFields`.
    pub async fn create_person_field(
        &self,
        s: &Session,
        name: &str,
        field_type: &str,
    ) -> Result<PersonField, CrmError> {
        self.create_field(
            s,
            "/api/v2/personFields",
            Op::CreatePersonField,
            name,
            field_type,
        )
        .await
    }

    /// Every page of a v2 field list (`personFields`, `organizationFields`): same shape.
    async fn list_fields(
        &self,
        s: &Session,
        path: &str,
        op: Op,
    ) -> Result<Vec<PersonField>, CrmError> {
        let mut fields = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut request = self
                .request(s, Method::GET, path)
                .query(&[("limit", "500")]);
            if let Some(c) = &cursor {
                request = request.query(&[("cursor", c)]);
            }
            let (page, next): (Vec<PersonField>, _) = self.send(s, op, request).await?;
            fields.extend(page);
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(fields),
            }
        }
    }

    /// Creates a custom field on a v2 field list.
    async fn create_field(
        &self,
        s: &Session,
        path: &str,
        op: Op,
        name: &str,
        field_type: &str,
    ) -> Result<PersonField, CrmError> {
        let body = serde_json::json!({ "field_name": name, "field_type": field_type });
        let request = self.request(s, Method::POST, path).json(&body);
        Ok(self.send(s, op, request).await?.0)
    }

    pub async fn list_webhooks(&self, s: &Session) -> Result<Vec<Webhook>, CrmError> {
        Ok(self
            .send(
                s,
                Op::ListWebhooks,
                self.request(s, Method::GET, "/api/v1/webhooks"),
            )
            .await?
            .0)
    }

    pub async fn create_webhook(
        &self,
        s: &Session,
        body: &WebhookCreate<'_>,
    ) -> Result<Webhook, CrmError> {
        let request = self.request(s, Method::POST, "/api/v1/webhooks").json(body);
        Ok(self.send(s, Op::CreateWebhook, request).await?.0)
    }

    pub async fn delete_webhook(&self, s: &Session, id: i64) -> Result<(), CrmError> {
        let request = self.request(s, Method::DELETE, &format!("/api/v1/webhooks/{id}"));
        // v1 answers `{"status": "ok", "success": true}` without `data`.
        self.send::<Option<serde_json::Value>>(s, Op::DeleteWebhook, request)
            .await
            .map(|_| ())
    }

    pub async fn create_deal<B: Serialize + ?Sized>(
        &self,
        s: &Session,
        body: &B,
    ) -> Result<Deal, CrmError> {
        Ok(self
            .send(
                s,
                Op::CreateDeal,
                self.request(s, Method::POST, "/api/v2/deals").json(body),
            )
            .await?
            .0)
    }

    pub async fn patch_deal<B: Serialize + ?Sized>(
        &self,
        s: &Session,
        id: i64,
        body: &B,
    ) -> Result<Deal, CrmError> {
        let request = self
            .request(s, Method::PATCH, &format!("/api/v2/deals/{id}"))
            .json(body);
        Ok(self.send(s, Op::PatchDeal, request).await?.0)
    }

    pub async fn list_person_deals(
        &self,
        s: &Session,
        person_id: PersonId,
    ) -> Result<Vec<Deal>, CrmError> {
        let request = self.request(s, Method::GET, "/api/v2/deals").query(&[
            ("person_id", person_id.to_string()),
            ("limit", "500".into()),
        ]);
        Ok(self.send(s, Op::ListDeals, request).await?.0)
    }

    pub async fn create_activity<B: Serialize + ?Sized>(
        &self,
        s: &Session,
        body: &B,
    ) -> Result<Activity, CrmError> {
        Ok(self
            .send(
                s,
                Op::CreateActivity,
                self.request(s, Method::POST, "/api/v2/activities")
                    .json(body),
            )
            .await?
            .0)
    }

    /// `PATCH /api/v2/activities/{id}`: only the fields sent change.
    pub async fn patch_activity<B: Serialize + ?Sized>(
        &self,
        s: &Session,
        id: i64,
        body: &B,
    ) -> Result<(), CrmError> {
        let request = self
            .request(s, Method::PATCH, &format!("/api/v2/activities/{id}"))
            .json(body);
        self.send::<serde_json::Value>(s, Op::PatchActivity, request)
            .await
            .map(|_| ())
    }

    /// `POST /api/v1/notes`; returns the note's id.
    pub async fn create_note<B: Serialize + ?Sized>(
        &self,
        s: &Session,
        body: &B,
    ) -> Result<i64, CrmError> {
        let request = self.request(s, Method::POST, "/api/v1/notes").json(body);
        let (note, _) = self
            .send::<serde_json::Value>(s, Op::CreateNote, request)
            .await?;
        note.get("id")
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| {
                CrmError::from_response(
                    None,
                    None,
                    "Pipedrive answered a note without its id",
                    None,
                )
            })
    }

    /// `PUT /api/v1/notes/{id}`: only the fields sent change.
    pub async fn update_note<B: Serialize + ?Sized>(
        &self,
        s: &Session,
        id: i64,
        body: &B,
    ) -> Result<(), CrmError> {
        let request = self
            .request(s, Method::PUT, &format!("/api/v1/notes/{id}"))
            .json(body);
        self.send::<serde_json::Value>(s, Op::UpdateNote, request)
            .await
            .map(|_| ())
    }

    /// `PUT /api/v1/persons/{merged}/merge`: `merged` disappears into `survivor`.
    pub async fn merge_persons(
        &self,
        s: &Session,
        merged: PersonId,
        survivor: PersonId,
    ) -> Result<(), CrmError> {
        let request = self
            .request(s, Method::PUT, &format!("/api/v1/persons/{merged}/merge"))
            .json(&serde_json::json!({ "merge_with_id": survivor }));
        self.send::<serde_json::Value>(s, Op::MergePersons, request)
            .await
            .map(|_| ())
    }

    /// A person's activities (first page, up to 500).
    pub async fn list_person_activities(
        &self,
        s: &Session,
        person_id: PersonId,
    ) -> Result<Vec<serde_json::Value>, CrmError> {
        let request = self.request(s, Method::GET, "/api/v2/activities").query(&[
            ("person_id", person_id.to_string()),
            ("limit", "500".into()),
        ]);
        Ok(self
            .send::<Vec<serde_json::Value>>(s, Op::ListActivities, request)
            .await?
            .0)
    }

    /// A person's notes (v1 `getNotes`, first page, up to 500; `data` is null when there are
    /// none).
    pub async fn list_person_notes(
        &self,
        s: &Session,
        person_id: PersonId,
    ) -> Result<Vec<serde_json::Value>, CrmError> {
        let request = self.request(s, Method::GET, "/api/v1/notes").query(&[
            ("person_id", person_id.to_string()),
            ("limit", "500".into()),
        ]);
        Ok(self
            .send::<Option<Vec<serde_json::Value>>>(s, Op::ListNotes, request)
            .await?
            .0
            .unwrap_or_default())
    }

    pub async fn list_stages(&self, s: &Session) -> Result<Vec<Stage>, CrmError> {
        let request = self
            .request(s, Method::GET, "/api/v2/stages")
            .query(&[("limit", "500")]);
        Ok(self.send(s, Op::ListStages, request).await?.0)
    }

    /// `POST {oauth_base}/oauth/token` (authorization_code or refresh_token grant), Basic client auth.
    pub async fn oauth_token(
        &self,
        oauth_base: &str,
        client_id: &str,
        client_secret: &str,
        form: &[(&str, &str)],
    ) -> Result<TokenResponse, CrmError> {
        let url = format!("{}/oauth/token", oauth_base.trim_end_matches('/'));
        let response = self
            .http
            .post(url)
            .basic_auth(client_id, Some(client_secret))
            .form(form)
            .send()
            .await
            .map_err(PipedriveError::from)?;
        if response.status().is_success() {
            return Ok(response.json().await.map_err(PipedriveError::from)?);
        }
        Err(status_error(response).await.into())
    }

    /// `POST {oauth_base}/oauth/revoke`; Pipedrive answers 200 even for an unknown token.
    pub async fn oauth_revoke(
        &self,
        oauth_base: &str,
        client_id: &str,
        client_secret: &str,
        token: &str,
        hint: &str,
    ) -> Result<(), CrmError> {
        let url = format!("{}/oauth/revoke", oauth_base.trim_end_matches('/'));
        let response = self
            .http
            .post(url)
            .basic_auth(client_id, Some(client_secret))
            .form(&[("token", token), ("token_type_hint", hint)])
            .send()
            .await
            .map_err(PipedriveError::from)?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(status_error(response).await.into())
        }
    }
}

fn header_i64(response: &Response, name: &str) -> Option<i64> {
    response
        .headers()
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn observe(budget: &ConnectionBudget, response: &Response) {
    let limit = header_i64(response, "x-ratelimit-limit").and_then(|v| u32::try_from(v).ok());
    budget.observe(
        limit,
        header_i64(response, "x-daily-ratelimit-token-remaining"),
        header_i64(response, "x-daily-ratelimit-token-limit"),
    );
}

async fn status_error(response: Response) -> PipedriveError {
    let status = response.status().as_u16();
    let retry_after = header_i64(&response, "retry-after")
        .or_else(|| header_i64(&response, "x-ratelimit-reset"))
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs);
    let raw = response.text().await.unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(&raw).unwrap_or(serde_json::Value::Null);
    let (code, message) = error_text(&body, &raw);
    PipedriveError::Status {
        status,
        code,
        message,
        retry_after,
    }
}
