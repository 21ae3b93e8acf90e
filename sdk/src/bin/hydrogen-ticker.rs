//! Keeps an instant-seal dev chain's clock moving: one `System.remark` per
//! period, until stopped. See `hydrogen_sdk::chain::Ticker`.
//!
//! `hydrogen-ticker --url ws://127.0.0.1:9944 --period-ms 1000`

use clap::Parser;
use hydrogen_sdk::chain::{keypair_from_suri, ChainClient, Ticker, TICKER_SURI};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "Send a remark every period so a dev chain's block time moves")]
struct Args {
    /// The node's WebSocket RPC.
    #[arg(long, env = "HYDROGEN_URL", default_value = "ws://127.0.0.1:9944")]
    url: String,
    /// Secret URI of the signing account (funded on the dev chain).
    #[arg(long, default_value = TICKER_SURI)]
    suri: String,
    /// Milliseconds between blocks.
    #[arg(long, default_value_t = 1000)]
    period_ms: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let signer = match keypair_from_suri(&args.suri) {
        Ok(signer) => signer,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let client = match ChainClient::connect(&args.url).await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let _ticker = Ticker::start(client, signer, Duration::from_millis(args.period_ms));
    tracing::info!(url = %args.url, period_ms = args.period_ms, "ticking");
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            eprintln!("error: cannot handle SIGTERM: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    std::process::ExitCode::SUCCESS
}
