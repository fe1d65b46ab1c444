//! `pipedrive-sim`: serve a Pipedrive simulator until stopped.

use clap::Parser;

/// A faithful Pipedrive simulator (OAuth, API v1/v2, rate limits, webhooks, faults).
#[derive(Debug, Parser)]
#[command(name = "pipedrive-sim", version, about)]
struct Cli {
    #[command(flatten)]
    args: pipedrive_sim::SimArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    pipedrive_sim::run_cli(Cli::parse().args).await
}
