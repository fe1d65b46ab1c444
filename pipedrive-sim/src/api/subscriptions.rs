//! Webhook registration (`v1.getWebhooks`, `v1.addWebhook`, `v1.deleteWebhook`), with the v1
//! webhooks API's own error shape and the limit of 40 per user. Sending the webhooks is
//! `crate::webhooks`' job.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::request::{with_company, Ctx};
use super::response::{ApiErr, HResult};

/// `v1.getWebhooks`: the caller's own subscriptions.
pub(super) fn list(ctx: &Ctx<'_>) -> HResult {
    let user = ctx.caller.user_id;
    with_company(ctx, |c, _| {
        let now = ctx.now;
        let data: Vec<Value> = c
            .webhooks
            .values()
            .filter(|w| w.owner_id == user)
            .map(|w| w.v1_json(now))
            .collect();
        Ok((
            StatusCode::OK,
            json!({"status": "ok", "success": true, "data": data}),
            vec![],
        ))
    })
}

fn webhook_error(field: &str, msg: &str) -> ApiErr {
    ApiErr::Raw(
        StatusCode::BAD_REQUEST,
        json!({"status": "error", "success": false, "errors": {field: [msg]}}),
    )
}

/// `v1.addWebhook` (at most 40 per user).
pub(super) fn add(ctx: &Ctx<'_>) -> HResult {
    let body = ctx.json_or_form_body()?;
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let url =
        s("subscription_url").ok_or_else(|| webhook_error("subscription_url", "is required"))?;
    match url::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        _ => {
            return Err(webhook_error(
                "subscription_url",
                "invalid or non-reachable URL",
            ))
        }
    }
    let action = s("event_action").ok_or_else(|| webhook_error("event_action", "is required"))?;
    if !["create", "change", "delete", "*"].contains(&action.as_str()) {
        return Err(webhook_error(
            "event_action",
            "must be one of create, change, delete, *",
        ));
    }
    let object = s("event_object").ok_or_else(|| webhook_error("event_object", "is required"))?;
    const OBJECTS: &[&str] = &[
        "activity",
        "deal",
        "lead",
        "note",
        "organization",
        "person",
        "pipeline",
        "product",
        "stage",
        "user",
        "*",
    ];
    if !OBJECTS.contains(&object.as_str()) {
        return Err(webhook_error("event_object", "is not a valid object"));
    }
    let name = s("name").ok_or_else(|| webhook_error("name", "is required"))?;
    if name.chars().count() > 255 {
        return Err(webhook_error("name", "must be at most 255 characters"));
    }
    let version = s("version").unwrap_or_else(|| "2.0".into());
    if !["1.0", "2.0"].contains(&version.as_str()) {
        return Err(webhook_error("version", "must be 1.0 or 2.0"));
    }
    let user_id = match body.get("user_id") {
        None | Some(Value::Null) => ctx.caller.user_id,
        Some(Value::Number(n)) => n.as_i64().unwrap_or(ctx.caller.user_id),
        Some(Value::String(t)) => t
            .parse()
            .map_err(|_| webhook_error("user_id", "must be an integer"))?,
        Some(_) => return Err(webhook_error("user_id", "must be an integer")),
    };
    let owner = ctx.caller.user_id;
    let kind = if ctx.caller.oauth {
        "application"
    } else {
        "general"
    };
    let now = ctx.now;
    with_company(ctx, |c, st| {
        if c.webhooks.values().filter(|w| w.owner_id == owner).count() >= 40 {
            return Err(ApiErr::Unprocessable(
                "You have reached the limit of 40 webhooks per user".into(),
            ));
        }
        st.next_webhook_id += 1;
        let w = crate::state::Webhook {
            id: st.next_webhook_id,
            company_id: c.id,
            owner_id: owner,
            user_id,
            event_action: action,
            event_object: object,
            subscription_url: url,
            version,
            add_time: now,
            kind,
            http_auth_user: s("http_auth_user"),
            http_auth_password: s("http_auth_password"),
            name,
            ban_counter: 0,
            banned_until: None,
            last_delivery_time: None,
            last_http_status: None,
        };
        let json = w.v1_json(now);
        c.webhooks.insert(w.id, w);
        Ok((
            StatusCode::CREATED,
            json!({"status": "ok", "success": true, "data": json}),
            vec![],
        ))
    })
}

/// `v1.deleteWebhook` (only the owner may delete).
pub(super) fn delete(ctx: &Ctx<'_>) -> HResult {
    let user = ctx.caller.user_id;
    let id = ctx.id.as_deref().and_then(|s| s.parse::<i64>().ok());
    with_company(ctx, |c, _| {
        let found = id.and_then(|id| c.webhooks.get(&id)).map(|w| w.owner_id);
        match (id, found) {
            (Some(id), Some(owner)) if owner == user => {
                c.webhooks.remove(&id);
                Ok((
                    StatusCode::OK,
                    json!({"status": "ok", "success": true}),
                    vec![],
                ))
            }
            (Some(_), Some(_)) => Err(ApiErr::Raw(
                StatusCode::FORBIDDEN,
                json!({"success": false, "message": "Forbidden"}),
            )),
            _ => Err(ApiErr::Raw(
                StatusCode::NOT_FOUND,
                json!({"status": "error", "success": false, "errors": {"id": ["not found"]}}),
            )),
        }
    })
}
