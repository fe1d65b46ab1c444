//! Tracing set-up, in one place: an `EnvFilter` from config (RUST_LOG overrides it), pretty
//! output on a terminal and JSON otherwise (or as configured).

use std::io::IsTerminal;

use tracing_subscriber::{fmt, EnvFilter};

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

/// Installs the global subscriber. Calling it twice is harmless (the second call is ignored).
pub fn init(settings: &TelemetrySettings) {
    let filter = env_filter(&settings.filter);
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.compact().try_init()
    };
    // A subscriber may already be installed (tests, embedding); keep the first one.
    drop(result);
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
