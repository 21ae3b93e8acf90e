use clap::Parser;
use hydrogen_node::cli::{run, Cli, Command};
use hydrogen_node::config::Config;
use hydrogen_node::status::logs::init_logging;

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
