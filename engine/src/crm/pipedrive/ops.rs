//! Pipedrive's side of the CRM boundary calls beyond persons: the connecting user, the field
//! catalog, journey-action objects, OAuth grants and webhooks. Wire types go in and out here
//! and never further than [`crate::crm::Crm`].

use serde_json::{json, Value};
use tandem_core::{CrmError, PersonId};

use super::client::PipedriveClient;
use super::wire::{PersonField, PersonWrite, TokenResponse, Webhook, WebhookCreate};
use crate::config::{PipedriveSettings, Redacted};
use crate::crm::records::{
    CatalogField, CheckedRecord, CrmActivity, CrmDeal, CrmNote, CrmStage, CrmUser, LoggedEmail,
    NewActivity, NewDeal, NotificationHealth, NotificationTarget, PausedNotification, TokenGrant,
    TokenKind,
};
use crate::crm::session::Session;

/// The objects tandem subscribes to: persons to merge, deals and activities for the app's
/// journey triggers.
/// Organizations are the sync's too: a renamed organization changes its persons' company.
pub(crate) const WEBHOOK_OBJECTS: [&str; 4] = ["person", "organization", "deal", "activity"];

/// The objects the live mirror (issue 20) needs on top of the sync's: one webhook each. A
/// wildcard (`*.*`) would be one webhook instead of seven, but it also delivers objects tandem
/// does not mirror (pipelines, stages, users, and the v2-only deal products, projects, tasks …),
/// which the receiver refuses; Pipedrive bans a webhook that keeps failing, and with it the
/// sync's persons. Seven webhooks of the 40 a user may have.
/// (Organizations are among the sync's own since issue 20's organizations: still seven.)
pub(crate) const MIRROR_WEBHOOK_OBJECTS: [&str; 3] = ["product", "lead", "note"];

/// The OAuth app tandem is registered as at Pipedrive.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    base_url: String,
    client_id: String,
    client_secret: Redacted<String>,
}

impl OAuthApp {
    /// Whether the client credentials are set.
    pub fn is_configured(&self) -> bool {
        !self.client_id.is_empty() && !self.client_secret.expose().is_empty()
    }

    pub fn from_settings(settings: &PipedriveSettings) -> Self {
        Self {
            base_url: settings.oauth_base_url.trim_end_matches('/').to_owned(),
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
        }
    }
}

pub(crate) async fn whoami(client: &PipedriveClient, s: &Session) -> Result<CrmUser, CrmError> {
    let me = client.users_me(s).await?;
    Ok(CrmUser {
        id: me.id,
        name: me.name,
        company_id: me.company_id,
    })
}

fn catalog_field(f: PersonField) -> CatalogField {
    CatalogField {
        key: f.field_code,
        name: f.field_name,
        field_type: f.field_type,
        is_custom: f.is_custom_field,
        options: f
            .options
            .unwrap_or_default()
            .into_iter()
            .map(|o| (o.id, o.label))
            .collect(),
        writable: true,
    }
}

pub(crate) async fn field_catalog(
    client: &PipedriveClient,
    s: &Session,
) -> Result<Vec<CatalogField>, CrmError> {
    Ok(client
        .list_person_fields(s)
        .await?
        .into_iter()
        .map(catalog_field)
        .collect())
}

pub(crate) async fn organization_field_catalog(
    client: &PipedriveClient,
    s: &Session,
) -> Result<Vec<CatalogField>, CrmError> {
    Ok(client
        .list_organization_fields(s)
        .await?
        .into_iter()
        .map(catalog_field)
        .collect())
}

pub(crate) async fn create_organization_field(
    client: &PipedriveClient,
    s: &Session,
    name: &str,
    field_type: &str,
) -> Result<CatalogField, CrmError> {
    Ok(catalog_field(
        client
            .create_organization_field(s, name, field_type)
            .await?,
    ))
}

pub(crate) async fn create_field(
    client: &PipedriveClient,
    s: &Session,
    name: &str,
    field_type: &str,
) -> Result<CatalogField, CrmError> {
    Ok(catalog_field(
        client.create_person_field(s, name, field_type).await?,
    ))
}

pub(crate) async fn stages(
    client: &PipedriveClient,
    s: &Session,
) -> Result<Vec<CrmStage>, CrmError> {
    Ok(client
        .list_stages(s)
        .await?
        .into_iter()
        .map(|stage| CrmStage {
            id: stage.id,
            pipeline_id: stage.pipeline_id,
        })
        .collect())
}

/// The persons whose e-mail is `email` up to case and surrounding spaces, as the connecting
/// user sees them (Pipedrive's visibility groups hide the others).
pub(crate) async fn records_with_email(
    client: &PipedriveClient,
    s: &Session,
    email: &str,
) -> Result<Vec<CheckedRecord>, CrmError> {
    let wanted = email.trim().to_lowercase();
    let found = client
        .search_persons_by_email_loosely(s, email.trim())
        .await?;
    Ok(found
        .into_iter()
        .filter_map(|p| {
            let held = p
                .emails
                .iter()
                .find(|e| e.trim().to_lowercase() == wanted)?
                .clone();
            Some(CheckedRecord {
                key: p.id.to_string(),
                id: p.id,
                object: "person",
                email: Some(held),
                modified: None,
            })
        })
        .collect())
}

/// A person read by its id (403 when visibility hides it, 404 when it is gone).
pub(crate) async fn check_record(
    client: &PipedriveClient,
    s: &Session,
    id: PersonId,
) -> Result<CheckedRecord, CrmError> {
    let person = client.get_person(s, id).await?;
    let email = person
        .emails
        .iter()
        .find(|e| e.primary)
        .or_else(|| person.emails.first())
        .map(|e| e.value.clone())
        .filter(|e| !e.trim().is_empty());
    Ok(CheckedRecord {
        id: person.id,
        key: person.id.to_string(),
        object: "person",
        email,
        modified: person
            .update_time
            .as_deref()
            .and_then(super::mapping::parse_time),
    })
}

pub(crate) async fn person_deals(
    client: &PipedriveClient,
    s: &Session,
    person_id: PersonId,
) -> Result<Vec<CrmDeal>, CrmError> {
    Ok(client
        .list_person_deals(s, person_id)
        .await?
        .into_iter()
        .map(|d| CrmDeal {
            id: d.id,
            title: d.title,
        })
        .collect())
}

pub(crate) async fn person_activities(
    client: &PipedriveClient,
    s: &Session,
    person_id: PersonId,
) -> Result<Vec<CrmActivity>, CrmError> {
    Ok(client
        .list_person_activities(s, person_id)
        .await?
        .into_iter()
        .filter_map(|a| {
            Some(CrmActivity {
                id: a.get("id")?.as_i64()?,
                subject: a.get("subject").and_then(Value::as_str).map(str::to_owned),
                note: a.get("note").and_then(Value::as_str).map(str::to_owned),
            })
        })
        .collect())
}

pub(crate) async fn person_notes(
    client: &PipedriveClient,
    s: &Session,
    person_id: PersonId,
) -> Result<Vec<CrmNote>, CrmError> {
    Ok(client
        .list_person_notes(s, person_id)
        .await?
        .into_iter()
        .filter_map(|n| {
            Some(CrmNote {
                id: n.get("id")?.as_i64()?,
                content: note_text(n.get("content")?.as_str()?),
            })
        })
        .collect())
}

pub(crate) async fn create_deal(
    client: &PipedriveClient,
    s: &Session,
    deal: &NewDeal<'_>,
) -> Result<i64, CrmError> {
    let mut body =
        json!({ "title": deal.title, "person_id": deal.person_id, "owner_id": deal.owner_id });
    if let Some(v) = deal.value {
        body["value"] = json!(v);
    }
    if let Some(c) = deal.currency {
        body["currency"] = json!(c);
    }
    if let Some(p) = deal.pipeline_id {
        body["pipeline_id"] = json!(p);
    }
    if let Some(stage) = deal.stage_id {
        body["stage_id"] = json!(stage);
    }
    Ok(client.create_deal(s, &body).await?.id)
}

pub(crate) async fn move_deal(
    client: &PipedriveClient,
    s: &Session,
    deal_id: i64,
    stage_id: i64,
) -> Result<(), CrmError> {
    client
        .patch_deal(s, deal_id, &json!({ "stage_id": stage_id }))
        .await
        .map(|_| ())
}

pub(crate) async fn create_activity(
    client: &PipedriveClient,
    s: &Session,
    activity: &NewActivity<'_>,
) -> Result<i64, CrmError> {
    let mut body = json!({
        "subject": activity.subject,
        "owner_id": activity.owner_id,
        "participants": [{ "person_id": activity.person_id, "primary": true }],
    });
    if let Some(t) = activity.kind {
        body["type"] = json!(t);
    }
    if let Some(d) = activity.due_date {
        body["due_date"] = json!(d);
    }
    Ok(client.create_activity(s, &body).await?.id)
}

pub(crate) async fn log_email(
    client: &PipedriveClient,
    s: &Session,
    email: &LoggedEmail<'_>,
) -> Result<i64, CrmError> {
    if email.as_note {
        let mut body = json!({ "content": note_content(email) });
        if let Some(person) = email.persons.first() {
            body["person_id"] = json!(person);
        }
        link_item(&mut body, email);
        return client.create_note(s, &body).await;
    }
    let participants: Vec<_> = email
        .persons
        .iter()
        .enumerate()
        .map(|(i, p)| json!({ "person_id": p, "primary": i == 0 }))
        .collect();
    let mut body = json!({
        "subject": email.subject,
        "type": "email",
        "done": true,
        "due_date": email.date,
        "due_time": email.time,
        "note": email.note,
        "participants": participants,
    });
    link_item(&mut body, email);
    Ok(client.create_activity(s, &body).await?.id)
}

/// The e-mail's deal or lead on a write's body (never a `null`: a write that does not name
/// the item leaves the one a user chose in Pipedrive).
fn link_item(body: &mut serde_json::Value, email: &LoggedEmail<'_>) {
    if let Some(deal) = email.deal_id {
        body["deal_id"] = json!(deal);
    }
    if let Some(lead) = email.lead_id {
        body["lead_id"] = json!(lead);
    }
}

/// A note's HTML as text: its line breaks as new lines and the entities [`note_content`]
/// writes undone, so that a line of the e-mail's text reads as it was written.
fn note_text(html: &str) -> String {
    html.replace("<br />", "\n")
        .replace("<br/>", "\n")
        .replace("<br>", "\n")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// A note's HTML: the subject in bold, then the text, every character of the e-mail escaped.
fn note_content(email: &LoggedEmail<'_>) -> String {
    let escape = |text: &str| {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                '\n' => out.push_str("<br>"),
                c => out.push(c),
            }
        }
        out
    };
    format!(
        "<b>E-mail: {}</b> ({} {} UTC)<br>{}",
        escape(email.subject),
        escape(email.date),
        escape(email.time),
        escape(email.note)
    )
}

pub(crate) async fn update_logged_email(
    client: &PipedriveClient,
    s: &Session,
    record_id: i64,
    email: &LoggedEmail<'_>,
    relink: bool,
) -> Result<(), CrmError> {
    let mut body = if email.as_note {
        json!({ "content": note_content(email) })
    } else {
        json!({ "note": email.note })
    };
    if relink {
        link_item(&mut body, email);
    }
    if email.as_note {
        client.update_note(s, record_id, &body).await
    } else {
        client.patch_activity(s, record_id, &body).await
    }
}

pub(crate) async fn set_person_owner(
    client: &PipedriveClient,
    s: &Session,
    person_id: PersonId,
    owner_id: i64,
) -> Result<(), CrmError> {
    let body = PersonWrite {
        owner_id: Some(owner_id),
        ..Default::default()
    };
    client.patch_person(s, person_id, &body).await.map(|_| ())
}

fn grant(tokens: TokenResponse) -> TokenGrant {
    TokenGrant {
        access_token: Redacted::new(tokens.access_token),
        refresh_token: tokens.refresh_token.map(Redacted::new),
        expires_in: tokens.expires_in,
        api_domain: tokens.api_domain.trim_end_matches('/').to_owned(),
    }
}

pub(crate) async fn oauth_grant(
    client: &PipedriveClient,
    app: &OAuthApp,
    form: &[(&str, &str)],
) -> Result<TokenGrant, CrmError> {
    client
        .oauth_token(
            &app.base_url,
            &app.client_id,
            app.client_secret.expose(),
            form,
        )
        .await
        .map(grant)
}

pub(crate) async fn revoke(
    client: &PipedriveClient,
    app: &OAuthApp,
    token: &str,
    kind: TokenKind,
) -> Result<(), CrmError> {
    let hint = match kind {
        TokenKind::Access => "access_token",
        TokenKind::Refresh => "refresh_token",
    };
    client
        .oauth_revoke(
            &app.base_url,
            &app.client_id,
            app.client_secret.expose(),
            token,
            hint,
        )
        .await
}

/// Whether a registered webhook sends the stored credentials. A listing that does not show the
/// password (`null`) cannot be checked and counts as agreeing.
fn credentials_agree(hook: &Webhook, user: &str, password: &str) -> bool {
    match hook.http_auth_password.expose() {
        None => true,
        Some(listed) => {
            hook.http_auth_user.as_deref() == Some(user)
                && tandem_webhooks::pipedrive::constant_time_eq(
                    listed.as_bytes(),
                    password.as_bytes(),
                )
        }
    }
}

/// Registers (or repairs) one webhook per object; a webhook of tandem's whose credentials differ
/// from the stored ones (left over from an earlier connect) is deleted and created again.
/// Returns how many were created.
pub(crate) async fn register_webhooks(
    client: &PipedriveClient,
    s: &Session,
    target: NotificationTarget<'_>,
) -> Result<usize, CrmError> {
    register_webhooks_for(client, s, target, &WEBHOOK_OBJECTS).await
}

/// As [`register_webhooks`], for `objects`.
pub(crate) async fn register_webhooks_for(
    client: &PipedriveClient,
    s: &Session,
    target: NotificationTarget<'_>,
    objects: &[&str],
) -> Result<usize, CrmError> {
    let existing = client.list_webhooks(s).await?;
    let mut created = 0;
    for &object in objects {
        let ours = existing.iter().filter(|w| {
            w.subscription_url == target.url && w.event_object.as_deref() == Some(object)
        });
        let mut present = false;
        for hook in ours {
            let agree = credentials_agree(hook, target.user, target.password);
            if agree && !present {
                present = true;
            } else if !agree {
                client.delete_webhook(s, hook.id).await?;
                tracing::warn!(connection_id = %s.connection_id, webhook_id = hook.id, "A webhook carried outdated credentials; it is registered again.");
            }
        }
        if present {
            continue;
        }
        let body = WebhookCreate {
            subscription_url: target.url,
            event_action: "*",
            event_object: object,
            name: "tandem sync",
            http_auth_user: target.user,
            http_auth_password: target.password,
            version: "2.0",
        };
        client.create_webhook(s, &body).await?;
        created += 1;
    }
    Ok(created)
}

/// Which of tandem's webhooks to `url` for `objects` Pipedrive has banned, and which objects
/// have none any more: one listing.
pub(crate) async fn webhook_health(
    client: &PipedriveClient,
    s: &Session,
    url: &str,
    objects: &[&str],
) -> Result<NotificationHealth, CrmError> {
    let existing = client.list_webhooks(s).await?;
    let mut health = NotificationHealth::default();
    for &object in objects {
        let ours: Vec<&Webhook> = existing
            .iter()
            .filter(|w| w.subscription_url == url && w.event_object.as_deref() == Some(object))
            .collect();
        match ours.first() {
            None => health.missing.push(object.to_owned()),
            Some(banned) if !ours.iter().any(|w| w.is_delivering()) => {
                health.paused.push(PausedNotification {
                    object: object.to_owned(),
                    last_status: banned.last_http_status,
                    last_delivery_at: banned.last_delivery_time.clone(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(health)
}

/// Removes every webhook delivering to `url`; returns how many.
pub(crate) async fn remove_webhooks(
    client: &PipedriveClient,
    s: &Session,
    url: &str,
) -> Result<usize, CrmError> {
    remove_webhooks_for(client, s, url, None).await
}

/// Removes the webhooks delivering to `url` for `objects` (all of them: `None`); returns how
/// many.
pub(crate) async fn remove_webhooks_for(
    client: &PipedriveClient,
    s: &Session,
    url: &str,
    objects: Option<&[&str]>,
) -> Result<usize, CrmError> {
    let mut removed = 0;
    for hook in client.list_webhooks(s).await? {
        let object_matches = objects.is_none_or(|objects| {
            hook.event_object
                .as_deref()
                .is_some_and(|o| objects.contains(&o))
        });
        if hook.subscription_url == url && object_matches {
            client.delete_webhook(s, hook.id).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Decodes one webhook delivery (API v2 webhook format: `meta` with `entity`, `action`,
/// `entity_id`; the person after the change in `data`, before it in `previous`).
pub(crate) fn parse_notification(
    payload: &str,
    map: &crate::crm::FieldMap,
) -> Result<crate::crm::records::Notification, String> {
    use crate::crm::records::Notification;
    let value: Value = serde_json::from_str(payload).map_err(|e| format!("malformed JSON: {e}"))?;
    let meta = value.get("meta").ok_or("missing meta")?;
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let id_of = |v: &Value| {
        v.as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| v.as_i64())
    };
    if text(meta, "entity").as_deref() == Some("organization")
        && matches!(text(meta, "action").as_deref(), Some("create" | "change"))
    {
        let data = value.get("data").ok_or("organization without data")?;
        let id = data
            .get("id")
            .and_then(id_of)
            .or_else(|| meta.get("entity_id").and_then(id_of))
            .ok_or("organization without id")?;
        let name = text(data, "name").unwrap_or_default();
        return Ok(Notification::OrganizationChanged { id, name });
    }
    if text(meta, "entity").as_deref() != Some("person") {
        // Deals and activities are tracked for journey actions; nothing to merge.
        return Ok(Notification::Other);
    }
    match text(meta, "action").unwrap_or_default().as_str() {
        "delete" => {
            let person = |id: i64| PersonId::new(id).ok();
            let id = meta
                .get("entity_id")
                .and_then(id_of)
                .or_else(|| value.get("previous")?.get("id")?.as_i64())
                .and_then(person)
                .ok_or("delete without a person id (entity_id)")?;
            let merged_into = meta.get("merged_to_id").and_then(id_of).and_then(person);
            Ok(Notification::PersonDeleted { id, merged_into })
        }
        "create" | "change" => {
            let person: super::wire::Person =
                serde_json::from_value(value.get("data").cloned().unwrap_or_default())
                    .map_err(|e| format!("person data: {e}"))?;
            Ok(Notification::PersonChanged(Box::new(
                super::mapping::crm_person(&person, map),
            )))
        }
        other => Err(format!("unknown action {other}")),
    }
}

#[cfg(test)]
mod tests {
    //! Recorded API v2 webhook deliveries in (`fixtures/webhook_*.json`), neutral notifications out.

    use super::*;
    use crate::crm::records::Notification;
    use crate::crm::FieldMap;
    use tandem_core::{keys, FieldKey, FieldValue, Timestamp};

    #[test]
    fn a_note_written_for_an_email_reads_back_with_its_lines_as_they_were() {
        let persons = [PersonId::new(7).unwrap()];
        let email = LoggedEmail {
            subject: "Offers & <news>",
            note: "To: \"Ada\" <ada@example.com>\nIt's here\nMessage-ID: <c1@our-app>",
            date: "2026-12-04",
            time: "10:00",
            persons: &persons,
            deal_id: None,
            lead_id: None,
            as_note: true,
        };
        let html = note_content(&email);
        assert!(!html.contains("<c1@our-app>"), "escaped: {html}");
        let text = note_text(&html);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&"Message-ID: <c1@our-app>"), "{lines:?}");
        assert!(
            lines.contains(&"To: \"Ada\" <ada@example.com>"),
            "{lines:?}"
        );
        assert!(lines.contains(&"It's here"), "{lines:?}");
        assert!(text.contains("Offers & <news>"), "{text}");
        assert_eq!(note_text("a<br />b<br/>c"), "a\nb\nc");
    }

    #[test]
    fn a_person_change_delivery_becomes_the_person_after_the_change() {
        let payload = include_str!("fixtures/webhook_person_change.json");
        let Ok(Notification::PersonChanged(person)) =
            parse_notification(payload, &FieldMap::defaults(None))
        else {
            panic!("a person change")
        };
        assert_eq!(person.id.get(), 42);
        let name = FieldKey::new(keys::NAME).unwrap();
        assert_eq!(
            person.snapshot.fields.get(&name),
            Some(&FieldValue::text("Ada Lovelace"))
        );
        assert_eq!(
            person.snapshot.version,
            Timestamp::from_unix_seconds(1_796_292_901)
        );
        assert_eq!(person.email.unwrap().as_str(), "ada@example.com");
    }

    #[test]
    fn a_merged_person_delete_names_the_survivor() {
        let payload = include_str!("fixtures/webhook_person_merged_delete.json");
        let notification = parse_notification(payload, &FieldMap::defaults(None)).unwrap();
        let Notification::PersonDeleted { id, merged_into } = notification else {
            panic!("a delete: {notification:?}");
        };
        assert_eq!((id.get(), merged_into.map(PersonId::get)), (42, Some(17)));
    }

    #[test]
    fn deliveries_of_other_objects_carry_nothing_to_merge_and_garbage_is_refused() {
        let deal = include_str!("fixtures/webhook_person_change.json")
            .replace("\"entity\": \"person\"", "\"entity\": \"deal\"");
        assert!(matches!(
            parse_notification(&deal, &FieldMap::defaults(None)),
            Ok(Notification::Other)
        ));
        let unknown = include_str!("fixtures/webhook_person_change.json")
            .replace("\"action\": \"change\"", "\"action\": \"merged\"");
        assert_eq!(
            parse_notification(&unknown, &FieldMap::defaults(None)).unwrap_err(),
            "unknown action merged"
        );
        assert!(parse_notification("{", &FieldMap::defaults(None))
            .unwrap_err()
            .starts_with("malformed JSON"));
    }
}
