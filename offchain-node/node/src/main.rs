use clap::Parser;
use hydrogen_node::cli::{init_logging, run, Cli, Command};
use hydrogen_node::config::Config;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run | Command::Join) {
        // Logging follows the configuration; a bad file is reported below.
        if let Ok(config) = Config::load(cli.config.as_deref()) {
            init_logging(&config);
        }
    }
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
