//! The operations the simulator serves, with their names, token costs and OAuth scopes as
//! the OpenAPI documents give them (`x-token-cost`, `security.oauth2`).

use axum::http::Method;

macro_rules! ops {
    ($( $variant:ident => $name:literal, $resource:literal, $cost:literal, [$($scope:literal),*]; )*) => {
        /// One operation of the Pipedrive API. Its [`Op::name`] is `v2.<operationId>`,
        /// `v1.<operationId>` or `oauth.<verb>`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Op { $( #[doc = $name] $variant, )* }

        impl Op {
            /// Every operation.
            pub const ALL: &'static [Op] = &[$(Op::$variant),*];

            /// The operation's name, e.g. `v2.getPersons`, `v1.getCurrentUser`, `oauth.token`.
            pub fn name(self) -> &'static str {
                match self { $(Op::$variant => $name,)* }
            }

            /// The first path segment after the version prefix (`persons`, `webhooks`, `oauth`).
            pub fn resource(self) -> &'static str {
                match self { $(Op::$variant => $resource,)* }
            }

            /// The documented `x-token-cost`.
            pub fn token_cost(self) -> u64 {
                match self { $(Op::$variant => $cost,)* }
            }

            /// OAuth scopes any one of which grants access (empty: no scope needed).
            pub fn scopes(self) -> &'static [&'static str] {
                match self { $(Op::$variant => &[$($scope),*],)* }
            }
        }
    };
}

ops! {
    GetPersons => "v2.getPersons", "persons", 10, ["contacts:read", "contacts:full"];
    AddPerson => "v2.addPerson", "persons", 5, ["contacts:full"];
    GetPerson => "v2.getPerson", "persons", 1, ["contacts:read", "contacts:full"];
    UpdatePerson => "v2.updatePerson", "persons", 5, ["contacts:full"];
    DeletePerson => "v2.deletePerson", "persons", 3, ["contacts:full"];
    SearchPersons => "v2.searchPersons", "persons", 20, ["contacts:read", "contacts:full", "search:read"];
    GetDeals => "v2.getDeals", "deals", 10, ["deals:read", "deals:full"];
    AddDeal => "v2.addDeal", "deals", 5, ["deals:full"];
    GetDeal => "v2.getDeal", "deals", 1, ["deals:read", "deals:full"];
    UpdateDeal => "v2.updateDeal", "deals", 5, ["deals:full"];
    DeleteDeal => "v2.deleteDeal", "deals", 3, ["deals:full"];
    GetActivities => "v2.getActivities", "activities", 10, ["activities:read", "activities:full"];
    AddActivity => "v2.addActivity", "activities", 5, ["activities:full"];
    GetActivity => "v2.getActivity", "activities", 1, ["activities:read", "activities:full"];
    UpdateActivity => "v2.updateActivity", "activities", 5, ["activities:full"];
    DeleteActivity => "v2.deleteActivity", "activities", 3, ["activities:full"];
    GetPersonFields => "v2.getPersonFields", "personFields", 10, ["contacts:read", "contacts:full", "admin", "contact-fields:full"];
    AddPersonField => "v2.addPersonField", "personFields", 5, ["admin", "contact-fields:full"];
    GetPersonField => "v2.getPersonField", "personFields", 1, ["contacts:read", "contacts:full", "admin", "contact-fields:full"];
    DeletePersonField => "v2.deletePersonField", "personFields", 3, ["admin", "contact-fields:full"];
    GetStages => "v2.getStages", "stages", 5, ["deals:read", "deals:full", "admin"];
    GetStage => "v2.getStage", "stages", 1, ["deals:read", "deals:full", "admin"];
    GetPipelines => "v2.getPipelines", "pipelines", 5, ["deals:read", "deals:full", "admin"];
    GetPipeline => "v2.getPipeline", "pipelines", 1, ["deals:read", "deals:full", "admin"];
    GetCurrentUser => "v1.getCurrentUser", "users", 2, ["base"];
    GetUsers => "v1.getUsers", "users", 20, ["users:read"];
    GetWebhooks => "v1.getWebhooks", "webhooks", 10, ["admin"];
    AddWebhook => "v1.addWebhook", "webhooks", 10, ["admin"];
    DeleteWebhook => "v1.deleteWebhook", "webhooks", 6, ["admin"];
    GetRecents => "v1.getRecents", "recents", 20, ["recents:read", "search:read"];
    GetPersonFieldsV1 => "v1.getPersonFields", "personFields", 20, ["contacts:read", "contacts:full", "contact-fields:full", "admin"];
    AddPersonFieldV1 => "v1.addPersonField", "personFields", 10, ["contact-fields:full", "admin"];
    GetDealFieldsV1 => "v1.getDealFields", "dealFields", 20, ["deals:read", "deals:full", "deal-fields:full", "admin"];
    GetOrganizationFieldsV1 => "v1.getOrganizationFields", "organizationFields", 20, ["contacts:read", "contacts:full", "contact-fields:full", "admin"];
    GetActivityFieldsV1 => "v1.getActivityFields", "activityFields", 20, ["activities:read", "activities:full"];
    GetProductFieldsV1 => "v1.getProductFields", "productFields", 20, ["products:read", "product-fields:full", "products:full"];
    MergePersons => "v1.mergePersons", "persons", 40, ["contacts:full"];
    OauthAuthorize => "oauth.authorize", "oauth", 0, [];
    OauthToken => "oauth.token", "oauth", 0, [];
    OauthRevoke => "oauth.revoke", "oauth", 0, [];
}

impl Op {
    /// Whether the operation is a search (it has its own, lower burst limit).
    pub fn is_search(self) -> bool {
        matches!(self, Op::SearchPersons)
    }

    /// Whether the operation is an OAuth endpoint (no API auth, no rate limit).
    pub fn is_oauth(self) -> bool {
        matches!(self, Op::OauthAuthorize | Op::OauthToken | Op::OauthRevoke)
    }

    /// Where the operation is described: `(document, path, method)`, e.g.
    /// `("v2.yaml", "/persons/{id}", "patch")`. `None` for `oauth.revoke`, which only the
    /// developer docs describe.
    pub fn spec(self) -> Option<(&'static str, &'static str, &'static str)> {
        Some(match self {
            Op::GetPersons => ("v2.yaml", "/persons", "get"),
            Op::AddPerson => ("v2.yaml", "/persons", "post"),
            Op::GetPerson => ("v2.yaml", "/persons/{id}", "get"),
            Op::UpdatePerson => ("v2.yaml", "/persons/{id}", "patch"),
            Op::DeletePerson => ("v2.yaml", "/persons/{id}", "delete"),
            Op::SearchPersons => ("v2.yaml", "/persons/search", "get"),
            Op::GetDeals => ("v2.yaml", "/deals", "get"),
            Op::AddDeal => ("v2.yaml", "/deals", "post"),
            Op::GetDeal => ("v2.yaml", "/deals/{id}", "get"),
            Op::UpdateDeal => ("v2.yaml", "/deals/{id}", "patch"),
            Op::DeleteDeal => ("v2.yaml", "/deals/{id}", "delete"),
            Op::GetActivities => ("v2.yaml", "/activities", "get"),
            Op::AddActivity => ("v2.yaml", "/activities", "post"),
            Op::GetActivity => ("v2.yaml", "/activities/{id}", "get"),
            Op::UpdateActivity => ("v2.yaml", "/activities/{id}", "patch"),
            Op::DeleteActivity => ("v2.yaml", "/activities/{id}", "delete"),
            Op::GetPersonFields => ("v2.yaml", "/personFields", "get"),
            Op::AddPersonField => ("v2.yaml", "/personFields", "post"),
            Op::GetPersonField => ("v2.yaml", "/personFields/{field_code}", "get"),
            Op::DeletePersonField => ("v2.yaml", "/personFields/{field_code}", "delete"),
            Op::GetStages => ("v2.yaml", "/stages", "get"),
            Op::GetStage => ("v2.yaml", "/stages/{id}", "get"),
            Op::GetPipelines => ("v2.yaml", "/pipelines", "get"),
            Op::GetPipeline => ("v2.yaml", "/pipelines/{id}", "get"),
            Op::GetCurrentUser => ("v1.yaml", "/users/me", "get"),
            Op::GetUsers => ("v1.yaml", "/users", "get"),
            Op::GetWebhooks => ("v1.yaml", "/webhooks", "get"),
            Op::AddWebhook => ("v1.yaml", "/webhooks", "post"),
            Op::DeleteWebhook => ("v1.yaml", "/webhooks/{id}", "delete"),
            Op::GetRecents => ("v1.yaml", "/recents", "get"),
            Op::GetPersonFieldsV1 => ("v1.yaml", "/personFields", "get"),
            Op::AddPersonFieldV1 => ("v1.yaml", "/personFields", "post"),
            Op::GetDealFieldsV1 => ("v1.yaml", "/dealFields", "get"),
            Op::GetOrganizationFieldsV1 => ("v1.yaml", "/organizationFields", "get"),
            Op::GetActivityFieldsV1 => ("v1.yaml", "/activityFields", "get"),
            Op::GetProductFieldsV1 => ("v1.yaml", "/productFields", "get"),
            Op::MergePersons => ("v1.yaml", "/persons/{id}/merge", "put"),
            Op::OauthAuthorize => ("v1.yaml", "/oauth/authorize", "get"),
            Op::OauthToken => ("v1.yaml", "/oauth/token", "post"),
            Op::OauthRevoke => return None,
        })
    }

    /// Looks an operation up by its name.
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.iter().copied().find(|op| op.name() == name)
    }
}

/// Where a request was routed.
#[derive(Debug)]
pub(crate) enum Route {
    /// A served operation with its path parameter, if any.
    Op(Op, Option<String>),
    /// A legacy v1 endpoint that v2 replaced: 410 Gone.
    Gone(&'static str),
    /// A known path with the wrong method.
    MethodNotAllowed,
    /// Nothing here.
    NotFound,
}

/// Which API family a path belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    V1,
    V2,
    Oauth,
}

pub(crate) fn route(method: &Method, path: &str) -> (Option<Api>, Route) {
    let (api, rest) = if let Some(rest) = path.strip_prefix("/api/v2/") {
        (Api::V2, rest)
    } else if let Some(rest) = path.strip_prefix("/api/v1/") {
        (Api::V1, rest)
    } else if let Some(rest) = path.strip_prefix("/v1/") {
        (Api::V1, rest)
    } else if let Some(rest) = path.strip_prefix("/oauth/") {
        (Api::Oauth, rest)
    } else {
        return (None, Route::NotFound);
    };
    let rest = rest.trim_end_matches('/');
    let segs: Vec<&str> = rest.split('/').collect();
    let m = method.as_str();
    let r = match api {
        Api::Oauth => match (m, segs.as_slice()) {
            ("GET", ["authorize"]) => Route::Op(Op::OauthAuthorize, None),
            ("POST", ["token"]) => Route::Op(Op::OauthToken, None),
            ("POST", ["revoke"]) => Route::Op(Op::OauthRevoke, None),
            (_, ["authorize"] | ["token"] | ["revoke"]) => Route::MethodNotAllowed,
            _ => Route::NotFound,
        },
        Api::V2 => {
            let one = |op: Op| Route::Op(op, None);
            let id = |op: Op, id: &str| Route::Op(op, Some(id.to_owned()));
            match (m, segs.as_slice()) {
                ("GET", ["persons"]) => one(Op::GetPersons),
                ("POST", ["persons"]) => one(Op::AddPerson),
                ("GET", ["persons", "search"]) => one(Op::SearchPersons),
                ("GET", ["persons", x]) => id(Op::GetPerson, x),
                ("PATCH", ["persons", x]) => id(Op::UpdatePerson, x),
                ("DELETE", ["persons", x]) => id(Op::DeletePerson, x),
                ("GET", ["deals"]) => one(Op::GetDeals),
                ("POST", ["deals"]) => one(Op::AddDeal),
                ("GET", ["deals", x]) => id(Op::GetDeal, x),
                ("PATCH", ["deals", x]) => id(Op::UpdateDeal, x),
                ("DELETE", ["deals", x]) => id(Op::DeleteDeal, x),
                ("GET", ["activities"]) => one(Op::GetActivities),
                ("POST", ["activities"]) => one(Op::AddActivity),
                ("GET", ["activities", x]) => id(Op::GetActivity, x),
                ("PATCH", ["activities", x]) => id(Op::UpdateActivity, x),
                ("DELETE", ["activities", x]) => id(Op::DeleteActivity, x),
                ("GET", ["personFields"]) => one(Op::GetPersonFields),
                ("POST", ["personFields"]) => one(Op::AddPersonField),
                ("GET", ["personFields", x]) => id(Op::GetPersonField, x),
                ("DELETE", ["personFields", x]) => id(Op::DeletePersonField, x),
                ("GET", ["stages"]) => one(Op::GetStages),
                ("GET", ["stages", x]) => id(Op::GetStage, x),
                ("GET", ["pipelines"]) => one(Op::GetPipelines),
                ("GET", ["pipelines", x]) => id(Op::GetPipeline, x),
                (
                    _,
                    ["persons" | "deals" | "activities" | "personFields" | "stages" | "pipelines"]
                    | ["persons" | "deals" | "activities" | "personFields" | "stages" | "pipelines", _],
                ) => Route::MethodNotAllowed,
                _ => Route::NotFound,
            }
        }
        Api::V1 => match (m, segs.as_slice()) {
            ("GET", ["users", "me"]) => Route::Op(Op::GetCurrentUser, None),
            ("GET", ["users"]) => Route::Op(Op::GetUsers, None),
            ("GET", ["webhooks"]) => Route::Op(Op::GetWebhooks, None),
            ("POST", ["webhooks"]) => Route::Op(Op::AddWebhook, None),
            ("DELETE", ["webhooks", x]) => Route::Op(Op::DeleteWebhook, Some((*x).to_owned())),
            ("GET", ["recents"]) => Route::Op(Op::GetRecents, None),
            ("GET", ["personFields"]) => Route::Op(Op::GetPersonFieldsV1, None),
            ("POST", ["personFields"]) => Route::Op(Op::AddPersonFieldV1, None),
            ("GET", ["dealFields"]) => Route::Op(Op::GetDealFieldsV1, None),
            ("GET", ["organizationFields"]) => Route::Op(Op::GetOrganizationFieldsV1, None),
            ("GET", ["activityFields"]) => Route::Op(Op::GetActivityFieldsV1, None),
            ("GET", ["productFields"]) => Route::Op(Op::GetProductFieldsV1, None),
            ("PUT", ["persons", x, "merge"]) => Route::Op(Op::MergePersons, Some((*x).to_owned())),
            (_, ["persons" | "deals" | "activities" | "itemSearch", ..]) => {
                Route::Gone("This endpoint is no longer available in API v1. Use API v2.")
            }
            (
                _,
                ["users"]
                | ["users", "me"]
                | ["webhooks"]
                | ["webhooks", _]
                | ["recents"]
                | ["personFields"]
                | ["dealFields"]
                | ["organizationFields"]
                | ["activityFields"]
                | ["productFields"],
            ) => Route::MethodNotAllowed,
            _ => Route::NotFound,
        },
    };
    (Some(api), r)
}
