//! The streams the mirror extracts: the extract connector's list (its names), each with the
//! Pipedrive endpoint that serves it (API v2 where Pipedrive has it, v1 for the rest), the
//! paging style and the largest page the endpoint allows, the mode, the primary key, the
//! association columns joins use, and the endpoint's token cost (`x-token-cost`).

use crate::store::mirror::ColKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    V1,
    V2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// v2: `cursor` / `additional_data.next_cursor`.
    Cursor,
    /// v1: `start` / `additional_data.pagination.next_start` (or `more_items_in_collection`).
    Offset,
    /// One call returns everything.
    None,
}

/// How a stream's changes can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changes {
    /// `updated_since` and oldest change first: `sort_by=update_time&sort_direction=asc` (v2)
    /// or `sort=update_time ASC` (v1).
    UpdatedSince,
    /// No `updated_since` (files): every run reads everything, oldest change first.
    SortOnly,
    /// Reference data: read in full.
    FullOnly,
}

#[derive(Debug, Clone, Copy)]
pub struct Stream {
    /// The connector's stream name (`deals`, `lead_labels`, ...): the table's name.
    pub name: &'static str,
    pub version: ApiVersion,
    pub path: &'static str,
    pub paging: Paging,
    pub page_max: u32,
    pub changes: Changes,
    pub key: &'static str,
    pub key_kind: ColKind,
    /// The version column: an older `update_time` than the stored one changes nothing.
    pub version_column: Option<&'static str>,
    /// Columns that link to other streams (`person_id`, `org_id`, `deal_id`, ...).
    pub associations: &'static [&'static str],
    /// The stream whose definitions name this stream's custom fields.
    pub fields_stream: Option<&'static str>,
    /// `x-token-cost` of one page.
    pub cost: u8,
    /// The webhook `meta.entity` of this stream's objects, if Pipedrive sends any.
    pub webhook_entity: Option<&'static str>,
}

impl Stream {
    /// Whether the stream defaults to incremental (the connector's defaults: reference data is
    /// full refresh).
    pub fn incremental_by_default(&self) -> bool {
        self.changes != Changes::FullOnly
    }
}

const fn core(
    name: &'static str,
    version: ApiVersion,
    path: &'static str,
    associations: &'static [&'static str],
    fields_stream: Option<&'static str>,
    cost: u8,
    entity: &'static str,
) -> Stream {
    let (paging, page_max) = match version {
        ApiVersion::V2 => (Paging::Cursor, 500),
        ApiVersion::V1 => (Paging::Offset, 500),
    };
    Stream {
        name,
        version,
        path,
        paging,
        page_max,
        changes: Changes::UpdatedSince,
        key: "id",
        key_kind: ColKind::BigInt,
        version_column: Some("update_time"),
        associations,
        fields_stream,
        cost,
        webhook_entity: Some(entity),
    }
}

const fn reference(
    name: &'static str,
    version: ApiVersion,
    path: &'static str,
    paging: Paging,
    associations: &'static [&'static str],
    cost: u8,
) -> Stream {
    Stream {
        name,
        version,
        path,
        paging,
        page_max: 500,
        changes: Changes::FullOnly,
        key: "id",
        key_kind: ColKind::BigInt,
        version_column: None,
        associations,
        fields_stream: None,
        cost,
        webhook_entity: None,
    }
}

const fn fields(name: &'static str, path: &'static str) -> Stream {
    Stream {
        key: "field_code",
        key_kind: ColKind::Text,
        ..reference(name, ApiVersion::V2, path, Paging::Cursor, &[], 10)
    }
}

use ApiVersion::{V1, V2};

/// Every stream, field definitions first (the other streams' columns are named from them).
pub const STREAMS: &[Stream] = &[
    fields("deal_fields", "/api/v2/dealFields"),
    fields("person_fields", "/api/v2/personFields"),
    fields("organization_fields", "/api/v2/organizationFields"),
    fields("product_fields", "/api/v2/productFields"),
    reference("pipelines", V2, "/api/v2/pipelines", Paging::Cursor, &[], 5),
    reference(
        "stages",
        V2,
        "/api/v2/stages",
        Paging::Cursor,
        &["pipeline_id"],
        5,
    ),
    reference("users", V1, "/api/v1/users", Paging::None, &[], 20),
    reference(
        "activity_types",
        V1,
        "/api/v1/activityTypes",
        Paging::None,
        &[],
        20,
    ),
    Stream {
        key_kind: ColKind::Text,
        ..reference(
            "lead_labels",
            V1,
            "/api/v1/leadLabels",
            Paging::None,
            &[],
            10,
        )
    },
    reference(
        "currencies",
        V1,
        "/api/v1/currencies",
        Paging::None,
        &[],
        20,
    ),
    reference(
        "filters",
        V1,
        "/api/v1/filters",
        Paging::None,
        &["user_id"],
        20,
    ),
    core(
        "organizations",
        V2,
        "/api/v2/organizations",
        &["owner_id"],
        Some("organization_fields"),
        10,
        "organization",
    ),
    core(
        "persons",
        V2,
        "/api/v2/persons",
        &["org_id", "owner_id"],
        Some("person_fields"),
        10,
        "person",
    ),
    core(
        "deals",
        V2,
        "/api/v2/deals",
        &["person_id", "org_id", "stage_id", "pipeline_id", "owner_id"],
        Some("deal_fields"),
        10,
        "deal",
    ),
    core(
        "products",
        V2,
        "/api/v2/products",
        &["owner_id"],
        Some("product_fields"),
        10,
        "product",
    ),
    core(
        "activities",
        V2,
        "/api/v2/activities",
        &[
            "deal_id",
            "lead_id",
            "person_id",
            "org_id",
            "owner_id",
            "participants",
        ],
        None,
        10,
        "activity",
    ),
    Stream {
        key_kind: ColKind::Text,
        ..core(
            "leads",
            V1,
            "/api/v1/leads",
            &["person_id", "organization_id", "owner_id", "label_ids"],
            None,
            20,
            "lead",
        )
    },
    core(
        "notes",
        V1,
        "/api/v1/notes",
        &["deal_id", "person_id", "org_id", "lead_id", "user_id"],
        None,
        20,
        "note",
    ),
    Stream {
        page_max: 100,
        changes: Changes::SortOnly,
        webhook_entity: None,
        ..core(
            "files",
            V1,
            "/api/v1/files",
            &[
                "deal_id",
                "person_id",
                "org_id",
                "lead_id",
                "activity_id",
                "user_id",
            ],
            None,
            20,
            "file",
        )
    },
];

/// The stream called `name`.
pub fn stream(name: &str) -> Option<&'static Stream> {
    STREAMS.iter().find(|s| s.name == name)
}

/// The stream whose webhooks carry `entity` (`deal`, `person`, ...).
pub fn stream_of_entity(entity: &str) -> Option<&'static Stream> {
    STREAMS.iter().find(|s| s.webhook_entity == Some(entity))
}
