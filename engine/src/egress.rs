//! Egress policy: where tandem's outbound requests may go, against server-side request forgery.
//!
//! - **Webhook subscriptions** (URLs an API-key holder chooses) must be `https` and reach only
//!   public addresses, unless their host is listed in `security.egress_allowed_hosts` (the demo
//!   and the tests list `127.0.0.1`). The URL is checked when the subscription is created, and
//!   every connection is checked again **after DNS resolution** by [`PublicOnlyResolver`]
//!   (so a name that later resolves to `127.0.0.1` or `169.254.169.254` is refused too), and
//!   address literals before each delivery.
//! - **CRM hosts** (`api_domain`, from the admin or from Pipedrive's token endpoint) must be
//!   `https` and match `pipedrive.allowed_api_domains` (`*.pipedrive.com`), or be the origin of
//!   the configured `pipedrive.oauth_base_url` (the simulator in tests and the demo); the CRM
//!   client's resolver drops non-public addresses as well, except for those configured hosts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use crate::config::Settings;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("is not a valid absolute URL")]
    Invalid,
    #[error("must use https (or its host must be listed in security.egress_allowed_hosts)")]
    NotHttps,
    #[error("must reach a public address, not a loopback, private, link-local or reserved one (or its host must be listed in security.egress_allowed_hosts)")]
    NotPublic,
    #[error("has a host name that does not resolve")]
    Unresolvable,
    #[error("must be an https URL on an allowed Pipedrive domain ({0})")]
    CrmHostNotAllowed(String),
}

/// Whether `ip` is an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64: reaches IPv4, maybe private
                || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible and other ::/96
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space 100.64/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// The hosts exempt from the https-and-public rule (`security.egress_allowed_hosts`), each a
/// host (`127.0.0.1`, `hooks.internal`) or `host:port`.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    allowed_hosts: Arc<Vec<String>>,
}

impl EgressPolicy {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            allowed_hosts: Arc::new(
                settings
                    .security
                    .egress_allowed_hosts
                    .iter()
                    .map(|h| h.trim().trim_matches(['[', ']']).to_ascii_lowercase())
                    .collect(),
            ),
        }
    }

    /// The policy of the CRM client: names resolve to public addresses only, except the hosts
    /// the admin configured explicitly (`pipedrive.oauth_base_url`, origins listed in
    /// `pipedrive.allowed_api_domains`: the simulator in tests and the demo).
    pub fn for_crm(settings: &Settings) -> Self {
        let configured = std::iter::once(settings.pipedrive.oauth_base_url.as_str()).chain(
            settings
                .pipedrive
                .allowed_api_domains
                .iter()
                .map(String::as_str)
                .filter(|p| p.contains("://")),
        );
        Self {
            allowed_hosts: Arc::new(
                configured
                    .filter_map(|u| url::Url::parse(u).ok()?.host_str().map(str::to_owned))
                    .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
                    .collect(),
            ),
        }
    }

    fn host_allowed(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        self.allowed_hosts.iter().any(|allowed| {
            *allowed == host || port.is_some_and(|p| *allowed == format!("{host}:{p}"))
        })
    }

    /// The checks that need no DNS: scheme, address literals, local names.
    pub fn check_url(&self, url: &url::Url) -> Result<(), EgressError> {
        let host = url.host_str().ok_or(EgressError::Invalid)?;
        if self.host_allowed(host, url.port_or_known_default()) {
            return Ok(());
        }
        if url.scheme() != "https" {
            return Err(EgressError::NotHttps);
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) if !is_public(IpAddr::V4(ip)) => Err(EgressError::NotPublic),
            Some(url::Host::Ipv6(ip)) if !is_public(IpAddr::V6(ip)) => Err(EgressError::NotPublic),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                let local = name == "localhost"
                    || [".localhost", ".local", ".internal", ".home.arpa"]
                        .iter()
                        .any(|suffix| name.ends_with(suffix));
                if local {
                    Err(EgressError::NotPublic)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// [`Self::check_url`], then every address the host resolves to must be public.
    pub async fn check_resolved(&self, url: &url::Url) -> Result<(), EgressError> {
        self.check_url(url)?;
        let host = url.host_str().ok_or(EgressError::Invalid)?;
        if self.host_allowed(host, url.port_or_known_default()) {
            return Ok(());
        }
        let Some(url::Host::Domain(name)) = url.host() else {
            return Ok(());
        };
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
            .await
            .map_err(|_| EgressError::Unresolvable)?
            .collect();
        if addresses.is_empty() {
            return Err(EgressError::Unresolvable);
        }
        if addresses.iter().any(|a| !is_public(a.ip())) {
            return Err(EgressError::NotPublic);
        }
        Ok(())
    }

    /// The resolver for clients that must honour this policy.
    pub fn resolver(&self) -> Arc<PublicOnlyResolver> {
        Arc::new(PublicOnlyResolver {
            policy: self.clone(),
        })
    }
}

/// A DNS resolver that drops non-public addresses (unless the host is allowed), so a checked
/// name cannot be pointed at an internal address later (DNS rebinding).
#[derive(Debug)]
pub struct PublicOnlyResolver {
    policy: EgressPolicy,
}

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let allowed = self.policy.host_allowed(&host, None);
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allowed || is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err("refused by tandem's egress policy: no public address".into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Checks a CRM base URL (`api_domain`): https on an allowed domain, or the configured OAuth
/// base URL's origin.
pub fn check_crm_url(settings: &Settings, text: &str) -> Result<(), EgressError> {
    check_url_against(
        &settings.pipedrive.allowed_api_domains,
        &[settings.pipedrive.oauth_base_url.as_str()],
        text,
    )
}

/// Checks a Salesforce `instance_url`: https on an allowed instance domain
/// (`salesforce.allowed_instance_domains`), or one of the login hosts' origins (a My Domain
/// host serves both).
pub fn check_salesforce_url(settings: &Settings, text: &str) -> Result<(), EgressError> {
    let sf = &settings.salesforce;
    check_url_against(
        &sf.allowed_instance_domains,
        &[sf.login_url.as_str(), sf.sandbox_login_url.as_str()],
        text,
    )
}

fn check_url_against(allowed: &[String], origins: &[&str], text: &str) -> Result<(), EgressError> {
    let patterns = allowed.join(", ");
    let refused = || EgressError::CrmHostNotAllowed(patterns.clone());
    let url = url::Url::parse(text.trim()).map_err(|_| refused())?;
    // The configured OAuth server's origin, and patterns written as origins
    // (`http://localhost:4000`), match scheme, host and port exactly.
    let origins = origins.iter().copied().chain(
        allowed
            .iter()
            .map(String::as_str)
            .filter(|p| p.contains("://")),
    );
    for origin in origins {
        if url::Url::parse(origin).is_ok_and(|o| o.origin() == url.origin()) {
            return Ok(());
        }
    }
    if url.scheme() != "https" || !url.username().is_empty() || url.password().is_some() {
        return Err(refused());
    }
    let host = url.host_str().ok_or_else(refused)?.to_ascii_lowercase();
    let matches = allowed
        .iter()
        .any(|pattern| match pattern.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => host == pattern.to_ascii_lowercase(),
        });
    if matches {
        Ok(())
    } else {
        Err(refused())
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn url(text: &str) -> url::Url {
        url::Url::parse(text).unwrap()
    }

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.215.14", "2606:4700::1111", "1.1.1.1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn subscription_urls_must_be_https_and_public_unless_their_host_is_allowed() {
        let policy = EgressPolicy::default();
        assert_eq!(policy.check_url(&url("https://app.example.com/h")), Ok(()));
        assert_eq!(
            policy.check_url(&url("http://app.example.com/h")),
            Err(EgressError::NotHttps)
        );
        for internal in [
            "https://127.0.0.1:5432/",
            "https://[::1]:5432/",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.8/",
            "https://localhost/",
            "https://db.internal/",
        ] {
            assert_eq!(
                policy.check_url(&url(internal)),
                Err(EgressError::NotPublic),
                "{internal}"
            );
        }
        let mut settings = Settings::defaults();
        settings.security.egress_allowed_hosts = vec!["127.0.0.1".into(), "hooks.lan:8443".into()];
        let policy = EgressPolicy::from_settings(&settings);
        assert_eq!(policy.check_url(&url("http://127.0.0.1:9000/h")), Ok(()));
        assert_eq!(policy.check_url(&url("http://hooks.lan:8443/h")), Ok(()));
        assert_eq!(
            policy.check_url(&url("http://hooks.lan:8444/h")),
            Err(EgressError::NotHttps)
        );
    }

    #[tokio::test]
    async fn names_resolving_to_internal_addresses_are_dropped_unless_the_host_is_allowed() {
        use reqwest::dns::Resolve;
        let name = |n: &str| reqwest::dns::Name::from_str(n).unwrap();
        let refused = EgressPolicy::default()
            .resolver()
            .resolve(name("localhost"))
            .await;
        assert!(refused.is_err(), "localhost resolves to the loopback only");
        let mut settings = Settings::defaults();
        settings.pipedrive.oauth_base_url = "http://localhost:4000".into();
        let allowed = EgressPolicy::for_crm(&settings)
            .resolver()
            .resolve(name("localhost"))
            .await;
        assert!(allowed.is_ok_and(|mut a| a.next().is_some()));
    }

    #[test]
    fn crm_hosts_must_be_pipedrive_domains_or_the_configured_base_url() {
        let mut settings = Settings::defaults();
        settings.pipedrive.oauth_base_url = "http://127.0.0.1:4000".into();
        assert!(check_crm_url(&settings, "https://acme.pipedrive.com").is_ok());
        assert!(check_crm_url(&settings, "http://127.0.0.1:4000").is_ok());
        settings
            .pipedrive
            .allowed_api_domains
            .push("http://localhost:4000".into());
        assert!(check_crm_url(&settings, "http://localhost:4000").is_ok());
        assert!(check_crm_url(&settings, "http://localhost:4001").is_err());
        for bad in [
            "http://acme.pipedrive.com",
            "https://pipedrive.com.evil.example",
            "https://evilpipedrive.com",
            "http://127.0.0.1:4001",
            "https://169.254.169.254",
            "https://user@acme.pipedrive.com",
        ] {
            assert!(check_crm_url(&settings, bad).is_err(), "{bad}");
        }
    }
}
