//! The `tandem` binary as an operator runs it.

// Test helpers outside #[test] functions may unwrap too: a failure is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tandem() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
    command
        .env_remove("RUST_LOG")
        .env("TANDEM_TELEMETRY__FORMAT", "json");
    command
}

fn empty_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tandem-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

#[test]
fn a_non_numeric_port_stops_tandem_with_one_line_naming_the_key() {
    let output = tandem()
        .current_dir(empty_dir())
        .env("TANDEM_HTTP__PORT", "abc")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("http.port"), "{stderr}");
}

#[test]
fn serve_on_an_empty_directory_creates_the_database_answers_readyz_and_stops_on_sigterm() {
    let dir = empty_dir();
    let port = free_port();
    let mut child = tandem()
        .current_dir(&dir)
        .env("TANDEM_HTTP__PORT", port.to_string())
        .env("TANDEM_WORKERS__ENABLED", "false")
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Wait for the listener (bounded), then ask for readiness.
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        if let Some(response) = get(port, "/readyz") {
            break response;
        }
        assert!(Instant::now() < deadline, "tandem did not start listening");
        std::thread::yield_now();
    };
    assert!(
        ready.starts_with("HTTP/1.0 200") || ready.starts_with("HTTP/1.1 200"),
        "{ready}"
    );
    assert!(
        dir.join("tandem.db").exists(),
        "tandem.db is created on first start"
    );

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
}

#[test]
fn migrate_status_lists_every_migration_as_applied_after_migrate_up() {
    let dir = empty_dir();
    let up = tandem()
        .current_dir(&dir)
        .args(["migrate", "up"])
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let status = tandem()
        .current_dir(&dir)
        .args(["migrate", "status"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(status.stdout).unwrap();
    assert!(
        stdout.contains("applied  m20261123_000001_create_core_tables"),
        "{stdout}"
    );
    assert!(!stdout.contains("pending"), "{stdout}");
}

#[test]
fn config_prints_the_effective_settings_with_secrets_redacted() {
    let output = tandem()
        .current_dir(empty_dir())
        .env("TANDEM_SECURITY__ADMIN_TOKEN", "very-secret-token")
        .env("TANDEM_HTTP__PORT", "9123")
        .arg("config")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("port = 9123"), "{stdout}");
    assert!(!stdout.contains("very-secret-token"), "{stdout}");
    assert!(stdout.contains("[redacted]"), "{stdout}");
}
