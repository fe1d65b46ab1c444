//! The one way to build an outbound HTTP client: timeouts set, no proxies from the environment,
//! no redirects (Pipedrive never redirects API calls; a redirect is an error worth seeing).

use std::time::Duration;

/// As [`client`], resolving names with `resolver` (the egress policy's, which drops
/// non-public addresses).
pub fn client_with_resolver<R: reqwest::dns::Resolve + 'static>(
    timeout: Duration,
    resolver: std::sync::Arc<R>,
) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(64)
        .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(resolver)
        .build()
        .unwrap_or_default()
}

/// A client for CRM calls: 10 s connect, `timeout` per request.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(64)
        .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}
