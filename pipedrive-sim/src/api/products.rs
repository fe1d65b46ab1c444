//! Products: `v2.getProducts`, `v2.getProduct`, `v2.addProduct` (201, as documented),
//! `v2.updateProduct`, `v2.deleteProduct`.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::paging::{page_table, paging, SortField};
use super::request::{ids_filter, with_company, Ctx};
use super::response::{ok_data, ApiErr, HResult};
use crate::records::Product;

/// `v2.getProducts`: `owner_id`, `ids`, `updated_since` (the document has no
/// `updated_until` here), sorting and cursors; deleted products are left out.
pub(super) fn list(ctx: &Ctx<'_>) -> HResult {
    let p = paging(
        ctx,
        &[SortField::Id, SortField::UpdateTime, SortField::AddTime],
    )?;
    let ids = ids_filter(ctx)?;
    let owner = ctx.q_int("owner_id")?;
    let since = ctx.q_time("updated_since")?;
    with_company(ctx, |c, _| {
        let keep = |x: &Product| {
            !x.is_deleted
                && ids.as_ref().is_none_or(|ids| ids.contains(&x.id))
                && owner.is_none_or(|o| x.owner_id == o)
                && since.is_none_or(|s| x.update_time >= s)
        };
        let (page, next) = page_table(&c.products, &p, keep, |x| x.add_time);
        let data: Vec<Value> = page.into_iter().map(|x| c.product_json(x)).collect();
        Ok((
            StatusCode::OK,
            json!({"success": true, "data": data, "additional_data": {"next_cursor": next}}),
            vec![],
        ))
    })
}

/// `v2.getProduct`.
pub(super) fn get(ctx: &Ctx<'_>) -> HResult {
    let id = ctx.path_id("product")?;
    with_company(ctx, |c, _| {
        let x = c
            .products
            .get(&id)
            .filter(|x| !x.is_deleted)
            .ok_or_else(|| ApiErr::NotFound("Product not found".into()))?;
        Ok((StatusCode::OK, ok_data(c.product_json(x)), vec![]))
    })
}

/// `v2.addProduct`.
pub(super) fn add(ctx: &Ctx<'_>) -> HResult {
    let (user, now) = (ctx.caller.user_id, ctx.now);
    let body = ctx.json_body()?;
    with_company(ctx, |c, _| {
        let (json, ev) = c
            .create_product(&body, user, "api", now)
            .map_err(ApiErr::BadRequest)?;
        Ok((StatusCode::CREATED, ok_data(json), vec![ev]))
    })
}

/// `v2.updateProduct` (`prices` replaces the whole array).
pub(super) fn update(ctx: &Ctx<'_>) -> HResult {
    let (user, now) = (ctx.caller.user_id, ctx.now);
    let id = ctx.path_id("product")?;
    let body = ctx.json_body()?;
    with_company(ctx, |c, _| {
        match c
            .update_product(id, &body, user, "api", now)
            .map_err(ApiErr::BadRequest)?
        {
            None => Err(ApiErr::NotFound("Product not found".into())),
            Some((json, ev)) => Ok((StatusCode::OK, ok_data(json), ev.into_iter().collect())),
        }
    })
}

/// `v2.deleteProduct`.
pub(super) fn delete(ctx: &Ctx<'_>) -> HResult {
    let (user, now) = (ctx.caller.user_id, ctx.now);
    let id = ctx.path_id("product")?;
    with_company(ctx, |c, _| match c.delete_product(id, user, "api", now) {
        None => Err(ApiErr::NotFound("Product not found".into())),
        Some(ev) => Ok((StatusCode::OK, ok_data(json!({"id": id})), vec![ev])),
    })
}
