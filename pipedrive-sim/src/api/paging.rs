//! Pagination: API v2's opaque cursors (base64 JSON of the sort field, its value, the
//! direction and the id; or a plain offset for search and field lists), the `sort_by` /
//! `sort_direction` / `limit` / `cursor` parameters, and paging sorted `(key, id)` rows.

use base64::Engine;
use serde_json::{json, Value};

use super::request::Ctx;
use super::response::ApiErr;
use crate::model::{parse_time, v2_time};
use crate::table::{Record, Table};

/// Cursors are URL-safe base64 without padding.
pub(super) const B64: base64::engine::GeneralPurpose =
    base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum SortField {
    Id,
    UpdateTime,
    AddTime,
    DueDate,
}

impl SortField {
    pub(super) fn name(self) -> &'static str {
        match self {
            SortField::Id => "id",
            SortField::UpdateTime => "update_time",
            SortField::AddTime => "add_time",
            SortField::DueDate => "due_date",
        }
    }
}

/// A list request's sorting and page.
pub(super) struct Paging {
    pub(super) field: SortField,
    pub(super) desc: bool,
    pub(super) limit: usize,
    /// `(field value, id)` of the first item of the page.
    pub(super) from: Option<(i64, i64)>,
}

/// Reads `sort_by` (one of `allowed`), `sort_direction`, `limit` and `cursor`.
pub(super) fn paging(ctx: &Ctx<'_>, allowed: &[SortField]) -> Result<Paging, ApiErr> {
    let field = match ctx.q("sort_by").unwrap_or("id") {
        "id" => SortField::Id,
        "update_time" => SortField::UpdateTime,
        "add_time" => SortField::AddTime,
        "due_date" => SortField::DueDate,
        other => {
            return Err(ApiErr::BadRequest(format!(
                "Validation failed: sort_by: {other:?} is not allowed"
            )))
        }
    };
    if !allowed.contains(&field) {
        return Err(ApiErr::BadRequest(format!(
            "Validation failed: sort_by: {:?} is not allowed",
            field.name()
        )));
    }
    let desc = match ctx.q("sort_direction").unwrap_or("asc") {
        "asc" => false,
        "desc" => true,
        other => {
            return Err(ApiErr::BadRequest(format!(
                "Validation failed: sort_direction: {other:?} is not allowed"
            )))
        }
    };
    let limit = ctx.limit()?;
    let from = match ctx.q("cursor") {
        None | Some("") => None,
        Some(c) => Some(
            decode_cursor(c, field, desc)
                .ok_or_else(|| ApiErr::BadRequest("Invalid cursor".into()))?,
        ),
    };
    Ok(Paging {
        field,
        desc,
        limit,
        from,
    })
}

fn decode_cursor(c: &str, field: SortField, desc: bool) -> Option<(i64, i64)> {
    let raw = B64.decode(c.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    if v.get("field")?.as_str()? != field.name() {
        return None;
    }
    if v.get("sortDirection")?.as_str()? != if desc { "desc" } else { "asc" } {
        return None;
    }
    let id = v.get("id")?.as_i64()?;
    let fv = match v.get("fieldValue")? {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => parse_time(s).or_else(|| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc().timestamp())
        })?,
        Value::Null => i64::MIN,
        _ => return None,
    };
    Some((fv, id))
}

/// The cursor of the page that starts at `(key, id)`.
pub(super) fn encode_cursor(field: SortField, desc: bool, key: i64, id: i64) -> String {
    let fv = match field {
        SortField::Id => json!(key),
        SortField::DueDate if key == i64::MIN => Value::Null,
        SortField::DueDate => json!(chrono::DateTime::<chrono::Utc>::from_timestamp(key, 0)
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string()),
        _ => json!(v2_time(key)),
    };
    let v = json!({"field": field.name(), "fieldValue": fv, "sortDirection": if desc { "desc" } else { "asc" }, "id": id});
    B64.encode(v.to_string())
}

/// An offset cursor (search, field lists).
pub(super) fn encode_offset_cursor(offset: usize) -> String {
    B64.encode(json!({"offset": offset}).to_string())
}

/// Reads an offset cursor (none: 0).
pub(super) fn decode_offset_cursor(c: Option<&str>) -> Result<usize, ApiErr> {
    match c {
        None | Some("") => Ok(0),
        Some(c) => B64
            .decode(c.trim_end_matches('='))
            .ok()
            .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
            .and_then(|v| v.get("offset").and_then(Value::as_u64))
            .map(|o| o as usize)
            .ok_or_else(|| ApiErr::BadRequest("Invalid cursor".into())),
    }
}

/// Pages `(key, id)` rows: sorts them and returns the page's ids and the next cursor.
pub(super) fn page_rows(mut rows: Vec<(i64, i64)>, p: &Paging) -> (Vec<i64>, Option<String>) {
    if p.desc {
        rows.sort_unstable_by(|a, b| b.cmp(a));
    } else {
        rows.sort_unstable();
    }
    let start = match p.from {
        None => 0,
        Some(from) => rows.partition_point(|r| if p.desc { *r > from } else { *r < from }),
    };
    let page: Vec<(i64, i64)> = rows.iter().skip(start).take(p.limit + 1).copied().collect();
    let next = page
        .get(p.limit)
        .map(|(k, id)| encode_cursor(p.field, p.desc, *k, *id));
    (page.iter().take(p.limit).map(|r| r.1).collect(), next)
}

/// Pages a [`Table`]: walks the id order or the `(update_time, id)` index from the cursor
/// (O(log n + page) when most records pass `keep`), or sorts `(key, id)` rows for any other
/// sort field. Returns the page and the next cursor.
pub(super) fn page_table<'a, T: Record>(
    t: &'a Table<T>,
    p: &Paging,
    keep: impl Fn(&T) -> bool,
    key: impl Fn(&T) -> i64,
) -> (Vec<&'a T>, Option<String>) {
    let mut out: Vec<&T> = Vec::with_capacity(p.limit.min(t.len()));
    let mut next = None;
    match p.field {
        SortField::Id => {
            let start = p.from.map(|f| f.1);
            let iter: Box<dyn Iterator<Item = &T>> = match (p.desc, start) {
                (false, Some(s)) => Box::new(t.range(s..).map(|x| x.1)),
                (false, None) => Box::new(t.values()),
                (true, Some(s)) => Box::new(t.range(..=s).rev().map(|x| x.1)),
                (true, None) => Box::new(t.values().rev()),
            };
            for r in iter.filter(|r| keep(r)) {
                if out.len() == p.limit {
                    next = Some(encode_cursor(p.field, p.desc, r.id(), r.id()));
                    break;
                }
                out.push(r);
            }
        }
        SortField::UpdateTime => {
            let idx = t.by_update();
            let iter: Box<dyn Iterator<Item = &(i64, i64)>> = match (p.desc, p.from) {
                (false, Some(f)) => Box::new(idx.range(f..)),
                (false, None) => Box::new(idx.iter()),
                (true, Some(f)) => Box::new(idx.range(..=f).rev()),
                (true, None) => Box::new(idx.iter().rev()),
            };
            for (ut, id) in iter {
                let Some(r) = t.get(id).filter(|r| keep(r)) else {
                    continue;
                };
                if out.len() == p.limit {
                    next = Some(encode_cursor(p.field, p.desc, *ut, *id));
                    break;
                }
                out.push(r);
            }
        }
        _ => {
            let rows: Vec<(i64, i64)> = t
                .values()
                .filter(|r| keep(r))
                .map(|r| (key(r), r.id()))
                .collect();
            let (ids, n) = page_rows(rows, p);
            next = n;
            out.extend(ids.iter().filter_map(|id| t.get(id)));
        }
    }
    (out, next)
}

/// Reads a v1 `sort` parameter (`field ASC, field2 DESC`; only the first key counts) into a
/// sort field among `allowed` and a direction; `default` when absent.
pub(super) fn v1_sort(
    ctx: &Ctx<'_>,
    allowed: &[SortField],
    default: (SortField, bool),
) -> Result<(SortField, bool), ApiErr> {
    let Some(raw) = ctx.q("sort").filter(|s| !s.trim().is_empty()) else {
        return Ok(default);
    };
    let first = raw.split(',').next().unwrap_or("").trim();
    let mut parts = first.split_whitespace();
    let name = parts.next().unwrap_or("");
    let desc = match parts.next().map(str::to_ascii_lowercase).as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ApiErr::BadRequest(format!(
                "Validation failed: sort: {other:?} is not a sort direction"
            )))
        }
    };
    let field = allowed
        .iter()
        .copied()
        .find(|f| f.name() == name)
        .ok_or_else(|| {
            ApiErr::BadRequest(format!("Validation failed: sort: {name:?} is not allowed"))
        })?;
    Ok((field, desc))
}

/// A v1 page: `start`/`limit` over already sorted items, with the
/// `additional_data.pagination` object (`next_start` only while more remain).
pub(super) fn v1_page<T>(items: Vec<T>, start: usize, limit: usize) -> (Vec<T>, Value) {
    let more = start + limit < items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(limit).collect();
    let mut pagination = json!({"start": start, "limit": limit, "more_items_in_collection": more});
    if more {
        pagination["next_start"] = json!(start + limit);
    }
    (page, pagination)
}
