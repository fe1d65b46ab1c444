use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = tandem_engine::cli::Cli::parse();
    match tandem_engine::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tandem: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
