//! Stages and pipelines (`v2.getStages`, `v2.getStage`, `v2.getPipelines`, `v2.getPipeline`):
//! one pipeline with five stages, read-only.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::request::{with_company, Ctx};
use super::response::{ok_data, ApiErr, HResult};
use crate::model::v2_time;

/// `v2.getStages`.
pub(super) fn stages(ctx: &Ctx<'_>) -> HResult {
    let limit = ctx.limit()?;
    let pipeline = ctx.q_int("pipeline_id")?;
    with_company(ctx, |c, _| {
        let data: Vec<Value> = c
            .stages
            .iter()
            .filter(|s| pipeline.is_none_or(|p| p == s.pipeline_id))
            .take(limit)
            .map(|s| stage_json(s, c.created))
            .collect();
        Ok((
            StatusCode::OK,
            json!({"success": true, "data": data, "additional_data": {"next_cursor": null}}),
            vec![],
        ))
    })
}

/// `v2.getStage`.
pub(super) fn stage(ctx: &Ctx<'_>) -> HResult {
    let id = ctx.path_id("stage")?;
    with_company(ctx, |c, _| {
        let s = c
            .stages
            .iter()
            .find(|s| s.id == id)
            .ok_or_else(|| ApiErr::NotFound("Stage not found".into()))?;
        Ok((StatusCode::OK, ok_data(stage_json(s, c.created)), vec![]))
    })
}

/// `v2.getPipelines`.
pub(super) fn pipelines(ctx: &Ctx<'_>) -> HResult {
    with_company(ctx, |c, _| {
        let data: Vec<Value> = c
            .pipelines
            .iter()
            .map(|(id, n)| pipeline_json(*id, n, c.created))
            .collect();
        Ok((
            StatusCode::OK,
            json!({"success": true, "data": data, "additional_data": {"next_cursor": null}}),
            vec![],
        ))
    })
}

/// `v2.getPipeline`.
pub(super) fn pipeline(ctx: &Ctx<'_>) -> HResult {
    let id = ctx.path_id("pipeline")?;
    with_company(ctx, |c, _| {
        let (pid, n) = c
            .pipelines
            .iter()
            .find(|p| p.0 == id)
            .ok_or_else(|| ApiErr::NotFound("Pipeline not found".into()))?;
        Ok((
            StatusCode::OK,
            ok_data(pipeline_json(*pid, n, c.created)),
            vec![],
        ))
    })
}

fn stage_json(s: &crate::state::Stage, created: i64) -> Value {
    json!({"id": s.id, "order_nr": s.order_nr, "name": s.name, "is_deleted": false, "deal_probability": s.probability,
           "pipeline_id": s.pipeline_id, "is_deal_rot_enabled": false, "days_to_rotten": null,
           "add_time": v2_time(created), "update_time": v2_time(created)})
}

fn pipeline_json(id: i64, name: &str, created: i64) -> Value {
    json!({"id": id, "name": name, "order_nr": id, "is_deleted": false, "is_deal_probability_enabled": false,
           "add_time": v2_time(created), "update_time": v2_time(created)})
}
