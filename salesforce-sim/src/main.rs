//! `salesforce-sim`: serve a Salesforce simulator until stopped.

use clap::Parser;

/// A stateful Salesforce REST API simulator on 127.0.0.1.
#[derive(Debug, Parser)]
#[command(name = "salesforce-sim", version, about)]
struct Cli {
    #[command(flatten)]
    args: salesforce_sim::SfSimArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    salesforce_sim::run_cli(Cli::parse().args).await
}
