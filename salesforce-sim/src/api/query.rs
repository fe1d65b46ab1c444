//! SOQL: `/query` and `/queryAll` (parsed by [`crate::soql`], checked against the schema and
//! the user's field-level security, filtered by sharing), `nextRecordsUrl` paging through
//! cursors, and the replication resources `/sobjects/{T}/updated` and `/deleted`.

use serde_json::{json, Value};

use super::request::Ctx;
use super::response::{Answer, ApiErr, HResult};
use super::sobjects::object;
use crate::schema::canonical_object;
use crate::soql::{self, column_of_word, salesforce_message, Select};
use crate::state::{iso, parse_datetime, Cursor, Org};

/// Cursors one user may keep open (Salesforce: 10); the oldest is closed first.
const MAX_CURSORS_PER_USER: usize = 10;

fn invalid_field(q: &str, name: &str, object: &str) -> ApiErr {
    ApiErr::new(
        400,
        "INVALID_FIELD",
        salesforce_message(
            q,
            column_of_word(q, name),
            &format!("No such column '{name}' on entity '{object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."),
        ),
    )
}

/// A relationship Salesforce does not know in a field path (`Acount.Name`).
fn invalid_relationship(q: &str, path: &str, relationship: &str) -> ApiErr {
    ApiErr::new(
        400,
        "INVALID_FIELD",
        salesforce_message(
            q,
            column_of_word(q, path),
            &format!("Didn't understand relationship '{relationship}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."),
        ),
    )
}

/// The relationship name of a lookup field, as a field path names it: `AccountId` → `Account`,
/// `Tier__c` → `Tier__r`.
fn relationship_name(field: &str) -> Option<String> {
    if let Some(base) = field.strip_suffix("__c") {
        return Some(format!("{base}__r"));
    }
    field
        .strip_suffix("Id")
        .filter(|b| !b.is_empty())
        .map(str::to_owned)
}

/// A parent's field the select list names through a lookup (`Account.Name` on Contact).
struct ParentField {
    /// The lookup field's position on the queried object.
    lookup: usize,
    /// The relationship's name as the answer writes it (`Account`).
    relationship: String,
    /// The parent object.
    parent: &'static str,
    /// The parent field's position and name as the describe writes it.
    field: usize,
    name: String,
}

fn batch_size(ctx: &Ctx<'_>) -> usize {
    ctx.headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split([',', ';'])
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("batchSize"))
                .and_then(|(_, n)| n.trim().parse::<usize>().ok())
        })
        .map(|n| n.clamp(200, 2000))
        .unwrap_or(2000)
}

pub(super) fn query(ctx: &Ctx<'_>, all: bool) -> HResult {
    let Some(q) = ctx.query.get("q").filter(|q| !q.trim().is_empty()) else {
        return Err(ApiErr::new(
            400,
            "MALFORMED_QUERY",
            "A query string has to be specified",
        ));
    };
    let mut parsed = soql::parse(q).map_err(|e| {
        ApiErr::new(
            400,
            "MALFORMED_QUERY",
            salesforce_message(q, e.column, &e.message),
        )
    })?;
    let Some(name) = canonical_object(&parsed.from) else {
        return Err(ApiErr::new(
            400,
            "INVALID_TYPE",
            salesforce_message(
                q,
                column_of_word(q, &parsed.from),
                &format!("sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.", parsed.from),
            ),
        ));
    };
    if parsed.offset.is_some_and(|o| o > 2000) {
        return Err(ApiErr::new(
            400,
            "NUMBER_OUTSIDE_VALID_RANGE",
            "Maximum SOQL offset allowed is 2000",
        ));
    }
    let mut st = ctx.shared.state.lock();
    let org: &Org = &st.orgs[ctx.org];
    let obj = org.obj(name).ok_or_else(ApiErr::not_found)?;
    let readable = |n: &str| {
        obj.field(n)
            .filter(|f| org.field_access(obj, f, &ctx.actor).0)
            .and_then(|f| obj.pos(&f.name))
    };
    let mut parents: Vec<ParentField> = Vec::new();
    let selected: Vec<usize> = match &parsed.select {
        Select::Count => Vec::new(),
        Select::Fields(fs) => {
            let mut out = Vec::new();
            for f in fs {
                // A parent's field through a lookup (one level, one parent object).
                if let Some((relationship, field)) = f.split_once('.') {
                    let lookup = obj
                        .fields
                        .iter()
                        .position(|d| {
                            d.ftype == crate::schema::FieldType::Reference
                                && d.reference_to.len() == 1
                                && relationship_name(&d.name)
                                    .is_some_and(|r| r.eq_ignore_ascii_case(relationship))
                        })
                        .filter(|p| readable(&obj.fields[*p].name).is_some())
                        .ok_or_else(|| invalid_relationship(q, f, relationship))?;
                    let parent_name = obj.fields[lookup].reference_to[0];
                    let parent = org.obj(parent_name).ok_or_else(ApiErr::not_found)?;
                    let at = parent
                        .field(field)
                        .filter(|d| org.field_access(parent, d, &ctx.actor).0)
                        .and_then(|d| parent.pos(&d.name))
                        .ok_or_else(|| invalid_field(q, field, parent_name))?;
                    parents.push(ParentField {
                        lookup,
                        relationship: relationship_name(&obj.fields[lookup].name)
                            .unwrap_or_default(),
                        parent: parent.name,
                        field: at,
                        name: parent.fields[at].name.clone(),
                    });
                    continue;
                }
                let p = readable(f).ok_or_else(|| invalid_field(q, f, name))?;
                if !out.contains(&p) {
                    out.push(p);
                }
            }
            out
        }
    };
    let mut order = Vec::new();
    for o in &parsed.order_by {
        let p = readable(&o.field).ok_or_else(|| invalid_field(q, &o.field, name))?;
        order.push((obj.fields[p].name.clone(), o.descending, o.nulls_first));
    }
    if let Some(cond) = parsed.condition.as_mut() {
        org.bind_condition(obj, cond, &ctx.actor)
            .map_err(|(field, msg)| match msg {
                None => invalid_field(q, &field, name),
                Some(m) => ApiErr::new(
                    400,
                    "INVALID_FIELD",
                    salesforce_message(q, column_of_word(q, &field), &m),
                ),
            })?;
    }
    let table = org.tables.get(name);
    let now_ms = ctx.now_ms;
    // `field IN (...)` / `field = '...'` on a text field: each record's value is looked up in a
    // set (as Salesforce's index on Id and external ids serves it) before the full condition.
    let probe = parsed
        .condition
        .as_ref()
        .and_then(soql::text_probe)
        .and_then(|(field, set)| {
            let p = obj.pos(field)?;
            (obj.fields[p].ftype.kind() == soql::Kind::Text).then_some((p, set))
        });
    let mut hits: Vec<&crate::state::Record> = table
        .into_iter()
        .flat_map(|t| t.records.values())
        .filter(|r| {
            probe.as_ref().is_none_or(|(p, set)| match r.get(*p) {
                Value::String(s) => set.contains(soql::folded(s).as_ref()),
                _ => false,
            })
        })
        .filter(|r| all || r.deleted_ms.is_none())
        .filter(|r| org.visible(obj, r, &ctx.actor))
        .filter(|r| {
            parsed
                .condition
                .as_ref()
                .is_none_or(|c| soql::eval(c, &|f: &str| Org::typed_value(obj, r, f), now_ms))
        })
        .collect();
    if !order.is_empty() {
        hits.sort_by(|a, b| {
            for (field, desc, nulls_first) in &order {
                let (_, va) = Org::typed_value(obj, a, field);
                let (_, vb) = Org::typed_value(obj, b, field);
                let null_a = va == soql::Typed::Null;
                let null_b = vb == soql::Typed::Null;
                let nf = nulls_first.unwrap_or(!*desc);
                let ord = if null_a != null_b {
                    if null_a == nf {
                        std::cmp::Ordering::Less
                    } else {
                        std::cmp::Ordering::Greater
                    }
                } else {
                    let o = soql::order(&va, &vb);
                    if *desc {
                        o.reverse()
                    } else {
                        o
                    }
                };
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
            a.id.cmp(&b.id)
        });
    }
    let offset = parsed.offset.unwrap_or(0) as usize;
    let limit = parsed.limit.map(|l| l as usize).unwrap_or(usize::MAX);
    let hits: Vec<_> = hits.into_iter().skip(offset).take(limit).collect();
    if parsed.select == Select::Count {
        return Ok(Answer::ok(
            json!({"totalSize": hits.len(), "done": true, "records": []}),
        ));
    }
    let base = ctx.base();
    let rows: Vec<Value> = hits
        .iter()
        .map(|r| {
            let mut v = super::sobjects::render(org, obj, r, &ctx.actor, &base, Some(&selected));
            if let Some(m) = v.as_object_mut() {
                // `Id` is only present when selected.
                if !selected.contains(&0) {
                    m.remove("Id");
                }
                // Each parent as a nested record (`null` without one, or one the user cannot
                // see), with the fields named through it.
                for p in &parents {
                    let parent = r
                        .get(p.lookup)
                        .as_str()
                        .and_then(|id| org.record(p.parent, id))
                        .filter(|rec| rec.deleted_ms.is_none())
                        .filter(|rec| {
                            org.obj(p.parent)
                                .is_some_and(|o| org.visible(o, rec, &ctx.actor))
                        });
                    let entry = m.entry(p.relationship.clone()).or_insert(Value::Null);
                    match parent {
                        None => *entry = Value::Null,
                        Some(rec) => {
                            if entry.is_null() {
                                *entry = json!({"attributes": {"type": p.parent, "url": format!("{base}/sobjects/{}/{}", p.parent, rec.id)}});
                            }
                            if let Some(nested) = entry.as_object_mut() {
                                nested.insert(p.name.clone(), rec.get(p.field).clone());
                            }
                        }
                    }
                }
            }
            v
        })
        .collect();
    let total = rows.len();
    let batch = batch_size(ctx);
    if total <= batch {
        return Ok(Answer::ok(
            json!({"totalSize": total, "done": true, "records": rows}),
        ));
    }
    let first: Vec<Value> = rows[..batch].to_vec();
    st.cursor_seq += 1;
    let seq = st.cursor_seq;
    let locator = crate::ids::make_id("01g", "5g", seq)[..15].to_owned();
    let user = ctx.actor.perms.user_id.clone();
    let mut mine: Vec<(u64, String)> = st
        .cursors
        .iter()
        .filter(|(_, c)| c.user == user && c.org == ctx.org)
        .map(|(k, c)| (c.opened_seq, k.clone()))
        .collect();
    mine.sort();
    while mine.len() >= MAX_CURSORS_PER_USER {
        let (_, k) = mine.remove(0);
        st.cursors.remove(&k);
    }
    st.cursors.insert(
        locator.clone(),
        Cursor {
            user,
            org: ctx.org,
            rows,
            batch,
            opened_seq: seq,
        },
    );
    Ok(Answer::ok(json!({
        "totalSize": total,
        "done": false,
        "nextRecordsUrl": format!("{base}/query/{locator}-{batch}"),
        "records": first,
    })))
}

pub(super) fn more(ctx: &Ctx<'_>) -> HResult {
    let raw = ctx.params.id.clone().unwrap_or_default();
    let invalid = || ApiErr::new(400, "INVALID_QUERY_LOCATOR", "invalid query locator");
    let (loc, offset) = raw.rsplit_once('-').ok_or_else(invalid)?;
    let offset: usize = offset.parse().map_err(|_| invalid())?;
    let st = ctx.shared.state.lock();
    let cursor = st
        .cursors
        .get(loc)
        .filter(|c| c.user == ctx.actor.perms.user_id && c.org == ctx.org)
        .ok_or_else(invalid)?;
    if offset > cursor.rows.len() {
        return Err(invalid());
    }
    let end = (offset + cursor.batch).min(cursor.rows.len());
    let records: Vec<Value> = cursor.rows[offset..end].to_vec();
    let mut body = json!({"totalSize": cursor.rows.len(), "done": end == cursor.rows.len(), "records": records});
    if end < cursor.rows.len() {
        body["nextRecordsUrl"] = json!(format!("{}/query/{loc}-{end}", ctx.base()));
    }
    Ok(Answer::ok(body))
}

fn window(ctx: &Ctx<'_>, max_days: i64) -> Result<(i64, i64), ApiErr> {
    let get = |k: &str| -> Result<i64, ApiErr> {
        let raw = ctx.query.get(k).ok_or_else(|| {
            ApiErr::new(400, "MISSING_ARGUMENT", format!("{k} parameter is missing"))
        })?;
        // An unencoded `+` arrives as a space.
        let v = raw.trim().replace(' ', "+");
        parse_datetime(&v)
            .map(|d| d.timestamp_millis())
            .ok_or_else(|| {
                ApiErr::new(
                    400,
                    "INVALID_REPLICATION_DATE",
                    format!("{k} is not a valid date-time: {raw}"),
                )
            })
    };
    let minute = |ms: i64| ms.div_euclid(60_000) * 60_000;
    let start = minute(get("start")?);
    let end = minute(get("end")?.min(ctx.now_ms));
    if start < ctx.now_ms - max_days * 86_400_000 {
        return Err(ApiErr::new(
            400,
            "INVALID_REPLICATION_DATE",
            format!("startDate cannot be more than {max_days} days ago"),
        ));
    }
    if end < start {
        return Err(ApiErr::new(
            400,
            "INVALID_REPLICATION_DATE",
            "endDate cannot be before startDate",
        ));
    }
    Ok((start, end))
}

/// Replication answers cap at 600,000 ids.
const MAX_IDS: usize = 600_000;

pub(super) fn updated(ctx: &Ctx<'_>) -> HResult {
    let name = object(ctx)?;
    let (start, end) = window(ctx, 30)?;
    let st = ctx.shared.state.lock();
    let org = &st.orgs[ctx.org];
    let obj = org.obj(name).ok_or_else(ApiErr::not_found)?;
    let ids: Vec<&str> = org
        .tables
        .get(name)
        .into_iter()
        .flat_map(|t| t.records.values())
        .filter(|r| r.deleted_ms.is_none() && r.modstamp_ms >= start && r.modstamp_ms < end)
        .filter(|r| org.visible(obj, r, &ctx.actor))
        .map(|r| r.id.as_str())
        .collect();
    if ids.len() > MAX_IDS {
        return Err(ApiErr::new(
            400,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 600000 records into this call",
        ));
    }
    Ok(Answer::ok(
        json!({"ids": ids, "latestDateCovered": iso(end)}),
    ))
}

pub(super) fn deleted(ctx: &Ctx<'_>) -> HResult {
    let name = object(ctx)?;
    let (start, end) = window(ctx, 15)?;
    let st = ctx.shared.state.lock();
    let org = &st.orgs[ctx.org];
    let obj = org.obj(name).ok_or_else(ApiErr::not_found)?;
    let mut deleted: Vec<(i64, &str)> = org
        .tables
        .get(name)
        .into_iter()
        .flat_map(|t| t.records.values())
        .filter_map(|r| r.deleted_ms.map(|d| (d, r)))
        .filter(|(d, r)| *d >= start && *d < end && org.visible(obj, r, &ctx.actor))
        .map(|(d, r)| (d, r.id.as_str()))
        .collect();
    if deleted.len() > MAX_IDS {
        return Err(ApiErr::new(
            400,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 600000 records into this call",
        ));
    }
    deleted.sort();
    let earliest = (ctx.now_ms - 15 * 86_400_000).div_euclid(60_000) * 60_000;
    Ok(Answer::ok(json!({
        "deletedRecords": deleted.iter().map(|(d, id)| json!({"id": id, "deletedDate": iso(*d)})).collect::<Vec<_>>(),
        "earliestDateAvailable": iso(earliest),
        "latestDateCovered": iso(end),
    })))
}
