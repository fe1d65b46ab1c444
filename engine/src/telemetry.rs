//! Tracing set-up, in one place: an `EnvFilter` from config (RUST_LOG overrides it), pretty
//! output on a terminal and JSON otherwise (or as configured), and, when
//! `telemetry.otlp_endpoint` is set, the same spans exported as OpenTelemetry traces over
//! OTLP/HTTP. tandem's spans carry ids (connection, contact, event, job, delivery), never
//! personal data, so the traces do not either.

use std::io::IsTerminal;
use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer, Registry};

use crate::config::{LogFormat, TelemetrySettings};

/// Directives added to every filter, whatever the configuration or `RUST_LOG` say: sea-orm's
/// statement spans carry bound values (e-mail addresses, names, tokens), so they never reach
/// the log. tandem logs ids, never personal data, at every level.
pub const PII_SAFE_DIRECTIVES: &[&str] = crate::store::PII_SAFE_LOG_DIRECTIVES;

/// `configured` (or `RUST_LOG`, which overrides it) with [`PII_SAFE_DIRECTIVES`] on top.
pub fn env_filter(configured: &str) -> EnvFilter {
    let mut filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(configured));
    for directive in PII_SAFE_DIRECTIVES {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP trace exporter: {0}")]
pub struct TelemetryError(String);

/// The OpenTelemetry tracer provider exporting to `endpoint` (a collector's base URL) in
/// batches, as `service`. Keep it: dropping it (or [`shutdown`]) flushes and stops the export.
pub fn otlp_provider(endpoint: &str, service: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()
        .map_err(|e| TelemetryError(e.to_string()))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_owned())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of `provider`.
pub fn otlp_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber
        + for<'span> tracing_subscriber::registry::LookupSpan<'span>
        + Send
        + Sync,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("tandem"))
}

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the global subscriber. Calling it twice is harmless (the second call is ignored).
pub fn init(settings: &TelemetrySettings) {
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let logs: Box<dyn Layer<Registry> + Send + Sync> = if json {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        fmt::layer().compact().with_writer(std::io::stderr).boxed()
    };
    let traces = if settings.otlp_endpoint.is_empty() {
        None
    } else {
        match otlp_provider(&settings.otlp_endpoint, &settings.service_name) {
            Ok(provider) => {
                let layer = otlp_layer(&provider).boxed();
                drop(PROVIDER.set(provider));
                Some(layer)
            }
            Err(error) => {
                eprintln!("{error}; traces are not exported");
                None
            }
        }
    };
    let layers = vec![Some(logs), traces]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
    // A subscriber may already be installed (tests, embedding); keep the first one.
    drop(
        tracing_subscriber::registry()
            .with(layers.with_filter(env_filter(&settings.filter)))
            .try_init(),
    );
}

/// Flushes the traces not yet exported (at the end of `tandem serve`).
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        drop(provider.shutdown());
    }
}

/// For tests: logs go to the test writer, and only when `TEST_LOG` is set.
pub fn init_for_tests(enabled: bool) {
    if enabled {
        drop(
            fmt()
                .with_env_filter(env_filter("debug,sqlx=warn,hyper=info"))
                .with_test_writer()
                .try_init(),
        );
    }
}
