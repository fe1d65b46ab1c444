//! The browser test's fixture: starts a Pipedrive simulator, a Salesforce simulator (its
//! production org holding one Lead, `lead@example.com`) and tandem (fresh database, admin
//! token `test-admin-token`, OAuth against both simulators) on 127.0.0.1, prints one JSON line
//! `{"tandem": URL, "sim": URL, "admin_token": ...}`, then obeys commands on stdin, one per
//! line, answering `ok <command>` when done:
//! - `revoke`: the simulator forgets every token (as an uninstall does);
//! - `duplicates`: three persons sharing an e-mail appear in Pipedrive and tandem pulls them;
//! - `traffic`: a contact named `<script>alert(1)</script>` (e-mail `xss@example.com`) is
//!   pushed to Pipedrive and the minute series are written, so the charts have something to draw;
//! - `salesforce-revoke`: the Salesforce simulator revokes the production org's tokens (as an
//!   admin revoking the connected app does);
//! - `quit` (or end of input): stop.

use std::io::Write;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tandem_tests::salesforce::SfApp { app, sf } =
        tandem_tests::salesforce::spawn_sf_app(salesforce_sim::SfSimConfig::default(), |_| {})
            .await;
    sf.handle()
        .insert_record(
            salesforce_sim::OrgKind::Production,
            "Lead",
            serde_json::json!({ "FirstName": "Lea", "LastName": "Lead", "Company": "Acme", "Email": "lead@example.com" }),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sim = app.sim.handle();
    sim.add_person_field("Campaign", "varchar", &[])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = std::io::stdout();
    writeln!(
        out,
        "{}",
        serde_json::json!({ "tandem": app.base_url, "sim": app.sim.base_url(), "admin_token": "test-admin-token" })
    )?;
    out.flush()?;
    let engine = app.engine.clone();
    let runtime = tokio::runtime::Handle::current();
    // The simulator's handle is synchronous: read commands on a blocking thread.
    let sf_handle = sf.handle();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        for line in std::io::stdin().lines() {
            let line = line?;
            match line.trim() {
                "revoke" => sim.revoke_all_tokens(),
                "duplicates" => {
                    for i in 0..3 {
                        sim.insert_person(serde_json::json!({ "name": format!("Twin {i}"), "emails": [{ "value": "twin@example.com", "primary": true }] }))
                            .map_err(|e| anyhow::anyhow!("{e}"))?;
                    }
                    runtime.block_on(async {
                        let db = engine.store.db();
                        let id = tandem_engine::sync::connections::active_id(db, &tandem_core::TenantId::default()).await?.ok_or_else(|| anyhow::anyhow!("not connected"))?;
                        tandem_engine::sync::inbound::poller::reset_initial_sync(&engine, id).await?;
                        tandem_engine::sync::inbound::poller::initial_sync(&engine, id, |_| {}).await?;
                        anyhow::Ok(())
                    })?;
                }
                "traffic" => runtime.block_on(async {
                    use tandem_tests::fields::{email, fields, name};
                    tandem_engine::sync::app::local::create_contact(
                        &engine,
                        fields([name("<script>alert(1)</script>"), email("xss@example.com")]),
                        true,
                    )
                    .await?;
                    tandem_engine::sync::worker::drive_until_idle(&engine).await?;
                    let next_minute = chrono::Utc::now() + chrono::Duration::minutes(1);
                    tandem_engine::meter::writer::flush(&engine, next_minute, false).await?;
                    anyhow::Ok(())
                })?,
                "hidden" => {
                    // A person Grace owns, visible to her only, and a connecting user who is
                    // no longer an admin: Pipedrive's visibility groups hide it from tandem.
                    let me = sim.config().user_id;
                    sim.set_user_admin(me, false);
                    sim.insert_person(serde_json::json!({ "name": "Hidden Person", "owner_id": me + 1, "visible_to": 1, "emails": [{ "value": "hidden@example.com", "primary": true }] }))
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                "salesforce-revoke" => sf_handle
                    .revoke_tokens(salesforce_sim::OrgKind::Production, None),
                "quit" => break,
                "" => continue,
                other => {
                    writeln!(out, "error unknown command {other}")?;
                    out.flush()?;
                    continue;
                }
            }
            writeln!(out, "ok {}", line.trim())?;
            out.flush()?;
        }
        Ok(())
    })
    .await??;
    drop(app);
    drop(sf);
    Ok(())
}
