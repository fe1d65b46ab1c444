//! Person search (`v2.searchPersons`): `term`, `fields`, `exact_match`, `organization_id`,
//! scores, and the e-mail index for exact e-mail lookups.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::paging::{decode_offset_cursor, encode_offset_cursor};
use super::request::{with_company, Ctx};
use super::response::{ApiErr, HResult};
use crate::model::{FieldDef, Person};

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// `v2.searchPersons`.
pub(super) fn persons(ctx: &Ctx<'_>) -> HResult {
    let term = ctx.q("term").unwrap_or("").trim().to_owned();
    let exact = ctx.q_bool("exact_match")?.unwrap_or(false);
    let min = if exact { 1 } else { 2 };
    if term.chars().count() < min {
        return Err(ApiErr::BadRequest(format!(
            "Validation failed: term: must be at least {min} characters long"
        )));
    }
    let fields: Vec<String> = match ctx.q("fields") {
        None | Some("") => vec![
            "custom_fields".into(),
            "email".into(),
            "notes".into(),
            "phone".into(),
            "name".into(),
        ],
        Some(s) => s.split(',').map(|f| f.trim().to_owned()).collect(),
    };
    for f in &fields {
        if !["custom_fields", "email", "notes", "phone", "name"].contains(&f.as_str()) {
            return Err(ApiErr::BadRequest(format!(
                "Validation failed: fields: {f:?} is not allowed"
            )));
        }
    }
    let org = ctx.q_int("organization_id")?;
    let limit = ctx.limit()?;
    let offset = decode_offset_cursor(ctx.q("cursor"))?;
    let caller = ctx.caller.user_id;
    let lower = term.to_lowercase();
    let term_digits = digits(&term);
    let has = |f: &str| fields.iter().any(|x| x == f);
    let text_match = |v: &str| {
        let v = v.to_lowercase();
        if exact {
            v == lower
        } else {
            v.contains(&lower)
        }
    };
    with_company(ctx, |c, _| {
        let searchable: Vec<&FieldDef> = c
            .person_fields
            .iter()
            .filter(|f| {
                matches!(
                    f.field_type.as_str(),
                    "address"
                        | "varchar"
                        | "text"
                        | "varchar_auto"
                        | "double"
                        | "monetary"
                        | "phone"
                )
            })
            .collect();
        let score_of = |p: &Person| -> Option<(f64, Vec<String>)> {
            if p.is_deleted
                || org.is_some_and(|o| p.org_id != Some(o))
                || !c.person_visible_to(p, caller)
            {
                return None;
            }
            let mut hit = false;
            let mut score: f64 = 0.0;
            let mut cf_hits = Vec::new();
            if has("name") && text_match(&p.name) {
                hit = true;
                score = score.max(if p.name.to_lowercase() == lower {
                    1.0
                } else {
                    0.6
                });
            }
            if has("email") && p.emails.iter().any(|e| text_match(&e.value)) {
                hit = true;
                score = score.max(
                    if p.emails.iter().any(|e| e.value.to_lowercase() == lower) {
                        1.0
                    } else {
                        0.6
                    },
                );
            }
            if has("phone")
                && !term_digits.is_empty()
                && p.phones.iter().any(|ph| {
                    let d = digits(&ph.value);
                    if exact {
                        d == term_digits
                    } else {
                        d.contains(&term_digits)
                    }
                })
            {
                hit = true;
                score = score.max(0.8);
            }
            if has("notes") && p.notes.as_deref().is_some_and(text_match) {
                hit = true;
                score = score.max(0.4);
            }
            if has("custom_fields") {
                for f in &searchable {
                    let text = match p.custom_fields.get(&f.key) {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Number(n)) => n.to_string(),
                        Some(Value::Object(o)) => o
                            .get("value")
                            .map(|v| {
                                v.as_str()
                                    .map(str::to_owned)
                                    .unwrap_or_else(|| v.to_string())
                            })
                            .unwrap_or_default(),
                        _ => continue,
                    };
                    if text_match(&text) {
                        hit = true;
                        score = score.max(0.5);
                        cf_hits.push(text);
                    }
                }
            }
            hit.then_some((score, cf_hits))
        };
        let mut found: Vec<(f64, &Person, Vec<String>)> = Vec::new();
        if exact && fields.len() == 1 && has("email") {
            // Index lookup: the common "find by e-mail" query.
            if let Some(ids) = c.email_index.get(&lower) {
                for id in ids {
                    if let Some(p) = c.live_person(*id) {
                        if org.is_none_or(|o| p.org_id == Some(o)) && c.person_visible_to(p, caller)
                        {
                            found.push((1.0, p, Vec::new()));
                        }
                    }
                }
            }
        } else {
            for p in c.persons.values() {
                if let Some((s, cf)) = score_of(p) {
                    found.push((s, p, cf));
                }
            }
        }
        found.sort_by(|a, b| {
            b.0.partial_cmp(&a.0)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.1.id.cmp(&b.1.id))
        });
        let total = found.len();
        let items: Vec<Value> = found
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(score, p, cf)| {
                let mut item = json!({
                    "id": p.id, "type": "person", "name": p.name,
                    "phones": p.phones.iter().map(|x| x.value.clone()).collect::<Vec<_>>(),
                    "emails": p.emails.iter().map(|x| x.value.clone()).collect::<Vec<_>>(),
                    "visible_to": p.visible_to, "owner": {"id": p.owner_id},
                    "custom_fields": cf, "notes": Vec::<String>::new(),
                });
                if let Some(o) = p.org_id {
                    item["organization"] = json!({"id": o, "name": format!("Organization {o}")});
                }
                json!({"result_score": score, "item": item})
            })
            .collect();
        let next = (offset + limit < total).then(|| encode_offset_cursor(offset + limit));
        Ok((
            StatusCode::OK,
            json!({"success": true, "data": {"items": items}, "additional_data": {"next_cursor": next}}),
            vec![],
        ))
    })
}
