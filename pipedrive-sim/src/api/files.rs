//! Files, metadata only (API v1): `v1.getFiles` (`start`, `limit` ≤ 100 as documented,
//! `sort` by `id` or `update_time`), `v1.getFile`, `v1.deleteFile` (marks the file deleted).

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::paging::{v1_page, v1_sort, SortField};
use super::request::{with_company, Ctx};
use super::response::{ok_data, ApiErr, HResult};

fn not_found() -> ApiErr {
    ApiErr::NotFound("File not found".into())
}

/// `v1.getFiles` (deleted files are left out).
pub(super) fn list(ctx: &Ctx<'_>) -> HResult {
    let start = ctx.q_int("start")?.unwrap_or(0).max(0) as usize;
    let limit = match ctx.q_int("limit")? {
        None => 100,
        Some(n) if (1..=100).contains(&n) => n as usize,
        Some(_) => {
            return Err(ApiErr::BadRequest(
                "Validation failed: limit: must be between 1 and 100".into(),
            ))
        }
    };
    let (field, desc) = v1_sort(
        ctx,
        &[SortField::Id, SortField::UpdateTime],
        (SortField::Id, false),
    )?;
    let base = ctx.shared.base_url.clone();
    with_company(ctx, |c, _| {
        let mut rows: Vec<(i64, i64)> = c
            .files
            .values()
            .filter(|f| f.active)
            .map(|f| {
                let key = if field == SortField::UpdateTime {
                    f.update_time
                } else {
                    f.id
                };
                (key, f.id)
            })
            .collect();
        rows.sort_unstable();
        if desc {
            rows.reverse();
        }
        let (page, pagination) = v1_page(rows, start, limit);
        let data: Vec<Value> = page
            .iter()
            .filter_map(|(_, id)| c.files.get(id))
            .map(|f| c.file_json(f, &base))
            .collect();
        Ok((
            StatusCode::OK,
            json!({"success": true, "data": data, "additional_data": {"pagination": pagination}}),
            vec![],
        ))
    })
}

/// `v1.getFile` (a deleted file answers with `active_flag: false`).
pub(super) fn get(ctx: &Ctx<'_>) -> HResult {
    let id = ctx.path_id("file")?;
    let base = ctx.shared.base_url.clone();
    with_company(ctx, |c, _| {
        let f = c.files.get(&id).ok_or_else(not_found)?;
        Ok((StatusCode::OK, ok_data(c.file_json(f, &base)), vec![]))
    })
}

/// `v1.deleteFile`.
pub(super) fn delete(ctx: &Ctx<'_>) -> HResult {
    let id = ctx.path_id("file")?;
    let now = ctx.now;
    with_company(ctx, |c, _| {
        if c.delete_file(id, now) {
            Ok((StatusCode::OK, ok_data(json!({"id": id})), vec![]))
        } else {
            Err(not_found())
        }
    })
}
