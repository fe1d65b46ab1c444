//! A faithful, stateful Pipedrive simulator (OAuth, API v1 and v2, rate limits, webhooks,
//! fault injection) for tests, benchmarks and `tandem demo`.
