//! A tandem with a Salesforce simulator beside it (issue 19): the connector's settings point
//! at the simulator's login hosts, and the simulator's instance is an allowed `instance_url`.

use salesforce_sim::{SfSim, SfSimConfig};
use tandem_engine::config::Settings;
use uuid::Uuid;

use crate::TestApp;

/// A running tandem and its Salesforce simulator.
pub struct SfApp {
    pub app: TestApp,
    pub sf: SfSim,
}

/// Starts a Salesforce simulator and a tandem configured for it.
pub async fn spawn_sf_app(config: SfSimConfig, tweak: impl FnOnce(&mut Settings)) -> SfApp {
    let sf = salesforce_sim::start(config)
        .await
        .expect("the Salesforce simulator starts");
    let (login, sandbox, instance) = (
        sf.login_url(false).to_owned(),
        sf.login_url(true).to_owned(),
        sf.instance_url().to_owned(),
    );
    let client_id = sf.handle().config().client_id.clone();
    let client_secret = sf.handle().config().client_secret.clone();
    let app = crate::spawn_app_with(
        pipedrive_sim::SimConfig {
            time_scale: 0.001,
            ..pipedrive_sim::SimConfig::default()
        },
        move |settings| {
            settings.salesforce.login_url = login;
            settings.salesforce.sandbox_login_url = sandbox;
            settings.salesforce.client_id = client_id;
            settings.salesforce.client_secret = tandem_engine::config::Redacted::new(client_secret);
            settings.salesforce.allowed_instance_domains = vec![instance];
            tweak(settings);
        },
    )
    .await;
    SfApp { app, sf }
}

impl SfApp {
    /// The link of Salesforce record `record` (a Lead's or Contact's id); it must exist.
    pub async fn link_of(
        &self,
        connection: Uuid,
        record: &str,
    ) -> tandem_engine::sync::links::Link {
        tandem_engine::sync::links::by_person(
            self.app.store.db(),
            connection.into(),
            tandem_engine::crm::salesforce::ids::person_surrogate(record),
        )
        .await
        .expect("the link is read")
        .unwrap_or_else(|| panic!("the record {record} is linked"))
    }

    /// The app contact linked to Salesforce record `record`.
    pub async fn contact_of(&self, connection: Uuid, record: &str) -> tandem_core::ContactId {
        self.link_of(connection, record).await.contact_id
    }

    /// Runs "Connect with Salesforce" over HTTP (start → the simulator's consent → callback),
    /// production or sandbox; returns the callback's answer.
    pub async fn oauth_connect(&self, sandbox: bool) -> reqwest::Response {
        let query = if sandbox { "?sandbox=1" } else { "" };
        self.app
            .admin(
                reqwest::Method::GET,
                &format!("/connections/salesforce/connect{query}"),
            )
            .send()
            .await
            .expect("the OAuth dance reaches tandem")
    }

    /// Connects production (or the sandbox) over OAuth and returns the connection's id.
    pub async fn connect(&self, sandbox: bool) -> Uuid {
        let answer = self.oauth_connect(sandbox).await;
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        assert!(status.is_success(), "connect failed: {status} {body}");
        let kind = if sandbox {
            "salesforce_sandbox"
        } else {
            "salesforce"
        };
        tandem_engine::store::connections::list(self.app.store.db())
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.crm == kind)
            .expect("the connection is stored")
            .id
            .uuid()
    }

    /// Connects and runs the initial sync to the end.
    pub async fn connect_and_sync(&self, sandbox: bool) -> Uuid {
        let id = self.connect(sandbox).await;
        tandem_engine::sync::inbound::poller::initial_sync(&self.app.engine, id.into(), |_| {})
            .await
            .expect("initial sync");
        id
    }
}
