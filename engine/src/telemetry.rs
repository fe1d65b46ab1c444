//! Tracing set-up, in one place: an `EnvFilter` from config (RUST_LOG overrides it), pretty
//! output on a terminal and JSON otherwise (or as configured).

use std::io::IsTerminal;

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{LogFormat, TelemetrySettings};

/// Installs the global subscriber. Calling it twice is harmless (the second call is ignored).
pub fn init(settings: &TelemetrySettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
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
                .with_env_filter(EnvFilter::new("debug,sqlx=warn,hyper=info"))
                .with_test_writer()
                .try_init(),
        );
    }
}
