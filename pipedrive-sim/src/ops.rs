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
    GetOrganizations => "v2.getOrganizations", "organizations", 10, ["contacts:read", "contacts:full"];
    AddOrganization => "v2.addOrganization", "organizations", 5, ["contacts:full"];
    GetOrganization => "v2.getOrganization", "organizations", 1, ["contacts:read", "contacts:full"];
    UpdateOrganization => "v2.updateOrganization", "organizations", 5, ["contacts:full"];
    DeleteOrganization => "v2.deleteOrganization", "organizations", 3, ["contacts:full"];
    SearchOrganization => "v2.searchOrganization", "organizations", 20, ["contacts:read", "contacts:full", "search:read"];
    GetProducts => "v2.getProducts", "products", 10, ["products:read", "products:full"];
    AddProduct => "v2.addProduct", "products", 5, ["products:full"];
    GetProduct => "v2.getProduct", "products", 1, ["products:read", "products:full"];
    UpdateProduct => "v2.updateProduct", "products", 5, ["products:full"];
    DeleteProduct => "v2.deleteProduct", "products", 3, ["products:full"];
    GetDealFields => "v2.getDealFields", "dealFields", 10, ["deals:read", "deals:full", "admin", "deal-fields:full"];
    GetDealField => "v2.getDealField", "dealFields", 1, ["deals:read", "deals:full", "admin", "deal-fields:full"];
    GetOrganizationFields => "v2.getOrganizationFields", "organizationFields", 10, ["contacts:read", "contacts:full", "admin", "contact-fields:full"];
    GetOrganizationField => "v2.getOrganizationField", "organizationFields", 1, ["contacts:read", "contacts:full", "admin", "contact-fields:full"];
    AddOrganizationField => "v2.addOrganizationField", "organizationFields", 5, ["admin", "contact-fields:full"];
    GetProductFields => "v2.getProductFields", "productFields", 10, ["products:read", "products:full", "product-fields:full"];
    GetProductField => "v2.getProductField", "productFields", 1, ["products:read", "products:full", "product-fields:full"];
    GetActivityFields => "v2.getActivityFields", "activityFields", 10, ["admin"];
    GetLeads => "v1.getLeads", "leads", 20, ["leads:read", "leads:full"];
    AddLead => "v1.addLead", "leads", 10, ["leads:full"];
    GetLead => "v1.getLead", "leads", 2, ["leads:read", "leads:full"];
    UpdateLead => "v1.updateLead", "leads", 10, ["leads:full"];
    DeleteLead => "v1.deleteLead", "leads", 6, ["leads:full"];
    GetLeadLabels => "v1.getLeadLabels", "leadLabels", 10, ["leads:read", "leads:full"];
    GetNotes => "v1.getNotes", "notes", 20, ["deals:read", "deals:full", "contacts:read", "contacts:full"];
    AddNote => "v1.addNote", "notes", 10, ["deals:full", "contacts:full"];
    GetNote => "v1.getNote", "notes", 2, ["deals:read", "deals:full", "contacts:read", "contacts:full"];
    UpdateNote => "v1.updateNote", "notes", 10, ["deals:full", "contacts:full"];
    DeleteNote => "v1.deleteNote", "notes", 6, ["deals:full", "contacts:full"];
    GetNoteFieldsV1 => "v1.getNoteFields", "noteFields", 20, ["deals:read", "deals:full", "contacts:read", "contacts:full"];
    GetFiles => "v1.getFiles", "files", 20, ["deals:read", "deals:full", "activities:read", "activities:full", "contacts:read", "contacts:full"];
    GetFile => "v1.getFile", "files", 2, ["deals:read", "deals:full", "activities:read", "activities:full", "contacts:read", "contacts:full"];
    DeleteFile => "v1.deleteFile", "files", 6, ["deals:full", "activities:full", "contacts:full"];
    GetActivityTypes => "v1.getActivityTypes", "activityTypes", 20, ["activities:read", "activities:full", "admin"];
    GetCurrencies => "v1.getCurrencies", "currencies", 20, ["base"];
    GetFilters => "v1.getFilters", "filters", 20, ["deals:read", "deals:full", "activities:read", "activities:full", "contacts:read", "contacts:full"];
    GetDealsLegacy => "v1.getDeals", "deals", 20, ["deals:read", "deals:full"];
    GetDealLegacy => "v1.getDeal", "deals", 2, ["deals:read", "deals:full"];
    GetDealProductsLegacy => "v1.getDealProducts", "deals", 20, ["products:read", "products:full"];
    GetDealUpdatesLegacy => "v1.getDealUpdates", "deals", 40, ["recents:read"];
    GetPersonsLegacy => "v1.getPersons", "persons", 20, ["contacts:read", "contacts:full"];
    GetPersonLegacy => "v1.getPerson", "persons", 2, ["contacts:read", "contacts:full"];
    GetOrganizationsLegacy => "v1.getOrganizations", "organizations", 20, ["contacts:read", "contacts:full"];
    GetOrganizationLegacy => "v1.getOrganization", "organizations", 2, ["contacts:read", "contacts:full"];
    GetActivitiesLegacy => "v1.getActivities", "activities", 20, ["activities:read", "activities:full"];
    GetActivityLegacy => "v1.getActivity", "activities", 2, ["activities:read", "activities:full"];
    GetProductsLegacy => "v1.getProducts", "products", 20, ["products:read", "products:full"];
    GetProductLegacy => "v1.getProduct", "products", 2, ["products:read", "products:full"];
    OauthAuthorize => "oauth.authorize", "oauth", 0, [];
    OauthToken => "oauth.token", "oauth", 0, [];
    OauthRevoke => "oauth.revoke", "oauth", 0, [];
}

impl Op {
    /// Whether the operation is a search (it has its own, lower burst limit).
    pub fn is_search(self) -> bool {
        matches!(self, Op::SearchPersons | Op::SearchOrganization)
    }

    /// Whether the operation is an OAuth endpoint (no API auth, no rate limit).
    pub fn is_oauth(self) -> bool {
        matches!(self, Op::OauthAuthorize | Op::OauthToken | Op::OauthRevoke)
    }

    /// Whether the operation is a legacy v1 one, out of support since 2026-08-01 and served
    /// only with [`crate::SimConfig::legacy_v1`] (`--legacy-v1`).
    pub fn is_legacy(self) -> bool {
        matches!(
            self,
            Op::GetDealsLegacy
                | Op::GetDealLegacy
                | Op::GetDealProductsLegacy
                | Op::GetDealUpdatesLegacy
                | Op::GetPersonsLegacy
                | Op::GetPersonLegacy
                | Op::GetOrganizationsLegacy
                | Op::GetOrganizationLegacy
                | Op::GetActivitiesLegacy
                | Op::GetActivityLegacy
                | Op::GetProductsLegacy
                | Op::GetProductLegacy
        )
    }

    /// Where the operation is described: `(document, path, method)`, e.g.
    /// `("v2.yaml", "/persons/{id}", "patch")`; the legacy v1 operations in the January 2026
    /// v1 document (`v1-2026-01-14/v1.yaml`), the last that described them. `None` for `oauth.revoke`, which only the
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
            Op::GetOrganizations => ("v2.yaml", "/organizations", "get"),
            Op::AddOrganization => ("v2.yaml", "/organizations", "post"),
            Op::GetOrganization => ("v2.yaml", "/organizations/{id}", "get"),
            Op::UpdateOrganization => ("v2.yaml", "/organizations/{id}", "patch"),
            Op::DeleteOrganization => ("v2.yaml", "/organizations/{id}", "delete"),
            Op::SearchOrganization => ("v2.yaml", "/organizations/search", "get"),
            Op::GetProducts => ("v2.yaml", "/products", "get"),
            Op::AddProduct => ("v2.yaml", "/products", "post"),
            Op::GetProduct => ("v2.yaml", "/products/{id}", "get"),
            Op::UpdateProduct => ("v2.yaml", "/products/{id}", "patch"),
            Op::DeleteProduct => ("v2.yaml", "/products/{id}", "delete"),
            Op::GetDealFields => ("v2.yaml", "/dealFields", "get"),
            Op::GetDealField => ("v2.yaml", "/dealFields/{field_code}", "get"),
            Op::GetOrganizationFields => ("v2.yaml", "/organizationFields", "get"),
            Op::GetOrganizationField => ("v2.yaml", "/organizationFields/{field_code}", "get"),
            Op::AddOrganizationField => ("v2.yaml", "/organizationFields", "post"),
            Op::GetProductFields => ("v2.yaml", "/productFields", "get"),
            Op::GetProductField => ("v2.yaml", "/productFields/{field_code}", "get"),
            Op::GetActivityFields => ("v2.yaml", "/activityFields", "get"),
            Op::GetLeads => ("v1.yaml", "/leads", "get"),
            Op::AddLead => ("v1.yaml", "/leads", "post"),
            Op::GetLead => ("v1.yaml", "/leads/{id}", "get"),
            Op::UpdateLead => ("v1.yaml", "/leads/{id}", "patch"),
            Op::DeleteLead => ("v1.yaml", "/leads/{id}", "delete"),
            Op::GetLeadLabels => ("v1.yaml", "/leadLabels", "get"),
            Op::GetNotes => ("v1.yaml", "/notes", "get"),
            Op::AddNote => ("v1.yaml", "/notes", "post"),
            Op::GetNote => ("v1.yaml", "/notes/{id}", "get"),
            Op::UpdateNote => ("v1.yaml", "/notes/{id}", "put"),
            Op::DeleteNote => ("v1.yaml", "/notes/{id}", "delete"),
            Op::GetNoteFieldsV1 => ("v1.yaml", "/noteFields", "get"),
            Op::GetFiles => ("v1.yaml", "/files", "get"),
            Op::GetFile => ("v1.yaml", "/files/{id}", "get"),
            Op::DeleteFile => ("v1.yaml", "/files/{id}", "delete"),
            Op::GetActivityTypes => ("v1.yaml", "/activityTypes", "get"),
            Op::GetCurrencies => ("v1.yaml", "/currencies", "get"),
            Op::GetFilters => ("v1.yaml", "/filters", "get"),
            Op::GetDealsLegacy => (LEGACY_V1, "/deals", "get"),
            Op::GetDealLegacy => (LEGACY_V1, "/deals/{id}", "get"),
            Op::GetDealProductsLegacy => (LEGACY_V1, "/deals/{id}/products", "get"),
            Op::GetDealUpdatesLegacy => (LEGACY_V1, "/deals/{id}/flow", "get"),
            Op::GetPersonsLegacy => (LEGACY_V1, "/persons", "get"),
            Op::GetPersonLegacy => (LEGACY_V1, "/persons/{id}", "get"),
            Op::GetOrganizationsLegacy => (LEGACY_V1, "/organizations", "get"),
            Op::GetOrganizationLegacy => (LEGACY_V1, "/organizations/{id}", "get"),
            Op::GetActivitiesLegacy => (LEGACY_V1, "/activities", "get"),
            Op::GetActivityLegacy => (LEGACY_V1, "/activities/{id}", "get"),
            Op::GetProductsLegacy => (LEGACY_V1, "/products", "get"),
            Op::GetProductLegacy => (LEGACY_V1, "/products/{id}", "get"),
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

/// The January 2026 v1 document, the last that described the legacy v1 endpoints.
pub(crate) const LEGACY_V1: &str = "v1-2026-01-14/v1.yaml";

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

/// A legacy v1 read (`--legacy-v1`): the lists and single reads of deals, persons,
/// organizations, activities and products, and a deal's products and updates.
fn legacy_route(resource: &str, rest: &[&str]) -> Route {
    let id = |op: Op, id: &str| Route::Op(op, Some(id.to_owned()));
    match (resource, rest) {
        ("deals", []) => Route::Op(Op::GetDealsLegacy, None),
        ("deals", [x, "products"]) => id(Op::GetDealProductsLegacy, x),
        ("deals", [x, "flow"]) => id(Op::GetDealUpdatesLegacy, x),
        ("persons", []) => Route::Op(Op::GetPersonsLegacy, None),
        ("organizations", []) => Route::Op(Op::GetOrganizationsLegacy, None),
        ("activities", []) => Route::Op(Op::GetActivitiesLegacy, None),
        ("products", []) => Route::Op(Op::GetProductsLegacy, None),
        (_, ["search" | "collection" | "summary" | "timeline" | "archived"]) => {
            Route::Gone("This endpoint is no longer available in API v1. Use API v2.")
        }
        ("deals", [x]) => id(Op::GetDealLegacy, x),
        ("persons", [x]) => id(Op::GetPersonLegacy, x),
        ("organizations", [x]) => id(Op::GetOrganizationLegacy, x),
        ("activities", [x]) => id(Op::GetActivityLegacy, x),
        ("products", [x]) => id(Op::GetProductLegacy, x),
        _ => Route::Gone("This endpoint is no longer available in API v1. Use API v2."),
    }
}

/// Which API family a path belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    V1,
    V2,
    Oauth,
}

/// Routes a request; `legacy_v1` also serves the legacy v1 reads (`--legacy-v1`), which
/// otherwise answer 410 Gone as Pipedrive does since 2026-08-01.
pub(crate) fn route(method: &Method, path: &str, legacy_v1: bool) -> (Option<Api>, Route) {
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
                ("GET", ["organizations"]) => one(Op::GetOrganizations),
                ("POST", ["organizations"]) => one(Op::AddOrganization),
                ("GET", ["organizations", "search"]) => one(Op::SearchOrganization),
                ("GET", ["organizations", x]) => id(Op::GetOrganization, x),
                ("PATCH", ["organizations", x]) => id(Op::UpdateOrganization, x),
                ("DELETE", ["organizations", x]) => id(Op::DeleteOrganization, x),
                ("GET", ["products"]) => one(Op::GetProducts),
                ("POST", ["products"]) => one(Op::AddProduct),
                ("GET", ["products", x]) => id(Op::GetProduct, x),
                ("PATCH", ["products", x]) => id(Op::UpdateProduct, x),
                ("DELETE", ["products", x]) => id(Op::DeleteProduct, x),
                ("GET", ["dealFields"]) => one(Op::GetDealFields),
                ("GET", ["dealFields", x]) => id(Op::GetDealField, x),
                ("GET", ["organizationFields"]) => one(Op::GetOrganizationFields),
                ("POST", ["organizationFields"]) => one(Op::AddOrganizationField),
                ("GET", ["organizationFields", x]) => id(Op::GetOrganizationField, x),
                ("GET", ["productFields"]) => one(Op::GetProductFields),
                ("GET", ["productFields", x]) => id(Op::GetProductField, x),
                ("GET", ["activityFields"]) => one(Op::GetActivityFields),
                (
                    _,
                    ["persons" | "deals" | "activities" | "personFields" | "stages" | "pipelines"
                    | "organizations" | "products" | "dealFields" | "organizationFields"
                    | "productFields" | "activityFields"]
                    | ["persons" | "deals" | "activities" | "personFields" | "stages" | "pipelines"
                    | "organizations" | "products" | "dealFields" | "organizationFields"
                    | "productFields", _],
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
            ("GET", ["leads"]) => Route::Op(Op::GetLeads, None),
            ("POST", ["leads"]) => Route::Op(Op::AddLead, None),
            ("GET", ["leads", x]) => Route::Op(Op::GetLead, Some((*x).to_owned())),
            ("PATCH", ["leads", x]) => Route::Op(Op::UpdateLead, Some((*x).to_owned())),
            ("DELETE", ["leads", x]) => Route::Op(Op::DeleteLead, Some((*x).to_owned())),
            ("GET", ["leadLabels"]) => Route::Op(Op::GetLeadLabels, None),
            ("GET", ["notes"]) => Route::Op(Op::GetNotes, None),
            ("POST", ["notes"]) => Route::Op(Op::AddNote, None),
            ("GET", ["notes", x]) => Route::Op(Op::GetNote, Some((*x).to_owned())),
            ("PUT", ["notes", x]) => Route::Op(Op::UpdateNote, Some((*x).to_owned())),
            ("DELETE", ["notes", x]) => Route::Op(Op::DeleteNote, Some((*x).to_owned())),
            ("GET", ["noteFields"]) => Route::Op(Op::GetNoteFieldsV1, None),
            ("GET", ["files"]) => Route::Op(Op::GetFiles, None),
            ("GET", ["files", x]) => Route::Op(Op::GetFile, Some((*x).to_owned())),
            ("DELETE", ["files", x]) => Route::Op(Op::DeleteFile, Some((*x).to_owned())),
            ("GET", ["activityTypes"]) => Route::Op(Op::GetActivityTypes, None),
            ("GET", ["currencies"]) => Route::Op(Op::GetCurrencies, None),
            ("GET", ["filters"]) => Route::Op(Op::GetFilters, None),
            (
                "GET",
                [res @ ("deals" | "persons" | "organizations" | "activities" | "products"), rest @ ..],
            ) if legacy_v1 => legacy_route(res, rest),
            (_, ["organizations" | "products"] | ["organizations" | "products", _]) => {
                Route::Gone("This endpoint is no longer available in API v1. Use API v2.")
            }
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
                | ["productFields"]
                | ["leads" | "notes" | "files"]
                | ["leads" | "notes" | "files", _]
                | ["leadLabels" | "noteFields" | "activityTypes" | "currencies" | "filters"],
            ) => Route::MethodNotAllowed,
            _ => Route::NotFound,
        },
    };
    (Some(api), r)
}
