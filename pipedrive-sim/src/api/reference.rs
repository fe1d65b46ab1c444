//! Reference data read in full (API v1): `v1.getActivityTypes`, `v1.getCurrencies` (with
//! `term`) and `v1.getFilters` (with `type`).

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::request::{with_company, Ctx};
use super::response::{ok_data, ApiErr, HResult};
use crate::model::{v1_time, v2_time};
use crate::state::Company;

/// `(key_string, name, icon_key, color)` of Pipedrive's default activity types.
const ACTIVITY_TYPES: &[(&str, &str, &str, &str)] = &[
    ("call", "Call", "call", "4A5BD6"),
    ("meeting", "Meeting", "meeting", "F2A33A"),
    ("task", "Task", "task", "33A8D9"),
    ("deadline", "Deadline", "deadline", "D13F4E"),
    ("email", "Email", "email", "6B7AE3"),
    ("lunch", "Lunch", "lunch", "5BB87A"),
];

/// `(code, name, decimal_points, symbol)`.
const CURRENCIES: &[(&str, &str, i64, &str)] = &[
    ("EUR", "Euro", 2, "€"),
    ("USD", "US Dollar", 2, "$"),
    ("GBP", "British Pound", 2, "£"),
    ("JPY", "Japanese Yen", 0, "¥"),
    ("CHF", "Swiss Franc", 2, "CHF"),
    ("SEK", "Swedish Krona", 2, "kr"),
    ("CAD", "Canadian Dollar", 2, "CA$"),
    ("AUD", "Australian Dollar", 2, "A$"),
];

/// `(name, type)` of the filters every company has.
const FILTERS: &[(&str, &str)] = &[
    ("All open deals", "deals"),
    ("Won deals this month", "deals"),
    ("All people", "people"),
    ("All organizations", "org"),
    ("My activities", "activity"),
    ("All products", "products"),
    ("All leads", "leads"),
];

/// `v1.getActivityTypes`.
pub(super) fn activity_types(ctx: &Ctx<'_>) -> HResult {
    with_company(ctx, |c, _| {
        let data: Vec<Value> = (1..=ACTIVITY_TYPES.len())
            .filter_map(|id| activity_type(c, id as i64))
            .collect();
        Ok((StatusCode::OK, ok_data(Value::Array(data)), vec![]))
    })
}

/// `v1.getCurrencies` (`term` matches the code or the name, case-insensitively).
pub(super) fn currencies(ctx: &Ctx<'_>) -> HResult {
    let term = ctx.q("term").unwrap_or("").trim().to_lowercase();
    let data: Vec<Value> = CURRENCIES
        .iter()
        .enumerate()
        .filter(|(_, (code, name, _, _))| {
            term.is_empty()
                || code.to_lowercase().contains(&term)
                || name.to_lowercase().contains(&term)
        })
        .map(|(i, (code, name, dp, symbol))| {
            json!({"id": i + 1, "code": code, "name": name, "decimal_points": dp, "symbol": symbol,
                   "active_flag": true, "is_custom_flag": false})
        })
        .collect();
    Ok((StatusCode::OK, ok_data(Value::Array(data)), vec![]))
}

/// `v1.getFilters` (`type`: `deals`, `leads`, `org`, `people`, `products`, `activity`,
/// `projects`).
pub(super) fn filters(ctx: &Ctx<'_>) -> HResult {
    const TYPES: &[&str] = &[
        "deals", "leads", "org", "people", "products", "activity", "projects",
    ];
    let kind = ctx.q("type").filter(|s| !s.is_empty());
    if let Some(k) = kind.filter(|k| !TYPES.contains(k)) {
        return Err(ApiErr::BadRequest(format!(
            "Validation failed: type: {k:?} is not allowed"
        )));
    }
    let user = ctx.caller.user_id;
    with_company(ctx, |c, _| {
        let data: Vec<Value> = FILTERS
            .iter()
            .enumerate()
            .filter(|(_, (_, t))| kind.is_none_or(|k| k == *t))
            .filter_map(|(i, _)| filter(c, i as i64 + 1, user))
            .collect();
        Ok((StatusCode::OK, ok_data(Value::Array(data)), vec![]))
    })
}

/// The ids of the activity types and the filters every company has (`v1.getRecents`).
pub(super) fn activity_type_ids() -> std::ops::RangeInclusive<i64> {
    1..=ACTIVITY_TYPES.len() as i64
}

pub(super) fn filter_ids() -> std::ops::RangeInclusive<i64> {
    1..=FILTERS.len() as i64
}

/// Activity type `id` as `v1.getActivityTypes` lists it.
pub(super) fn activity_type(c: &Company, id: i64) -> Option<Value> {
    let (key, name, icon, color) = ACTIVITY_TYPES.get(usize::try_from(id).ok()?.checked_sub(1)?)?;
    Some(
        json!({"id": id, "name": name, "icon_key": icon, "color": color, "order_nr": id,
                "key_string": key, "active_flag": true, "is_custom_flag": false,
                "add_time": v2_time(c.created), "update_time": v2_time(c.created)}),
    )
}

/// Filter `id` as `v1.getFilters` lists it to `user`.
pub(super) fn filter(c: &Company, id: i64, user: i64) -> Option<Value> {
    let (name, kind) = FILTERS.get(usize::try_from(id).ok()?.checked_sub(1)?)?;
    Some(
        json!({"id": id, "name": name, "filter_code": null, "is_editable": true,
                "active_flag": true, "type": kind, "temporary_flag": null, "user_id": user,
                "add_time": v1_time(c.created), "update_time": v1_time(c.created),
                "visible_to": "7", "last_used_time": null, "custom_view_id": null}),
    )
}
