//! Generates images through a running Hydrogen network and writes them as PNGs.
//!
//! ```sh
//! cargo run -p hydrogen-sdk --example generate -- \
//!     ws://127.0.0.1:9944 http://127.0.0.1:8700 <contract address> '//HydrogenApp' \
//!     '{"base_model": "hydrogen/tiny-sd", "prompt": "a red fox in snow",
//!       "task_config": {"num_images": 1, "image_width": 64, "image_height": 64, "steps": 8}}'
//! ```

use hydrogen_sdk::app::{Client, GenerateOptions};
use hydrogen_sdk::chain::{keypair_from_suri, parse_account};
use hydrogen_sdk::task::TaskArgs;
use std::process::ExitCode;

const USAGE: &str = "usage: generate RPC_URL RELAY_URL CONTRACT KEY_URI TASK_JSON

Pays for a Stable Diffusion task on a Hydrogen network, waits for the
verified images and writes them as task-<id>-<n>.png.

  RPC_URL    the chain node's WebSocket RPC, e.g. ws://127.0.0.1:9944
  RELAY_URL  the relay, e.g. http://127.0.0.1:8700
  CONTRACT   the hydrogen contract's address (scripts/run.sh --chain-only prints it)
  KEY_URI    the paying account's secret URI or mnemonic, e.g. //HydrogenApp
  TASK_JSON  the task, in the reference network's task JSON";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let [rpc, relay, contract, key, task] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    // Errors print as sentences (`Display`), never as Rust debug output.
    match run(rpc, relay, contract, key, task).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    rpc: &str,
    relay: &str,
    contract: &str,
    key: &str,
    task: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let task = TaskArgs::from_json(task)?;
    let client = Client::connect(
        rpc,
        relay,
        parse_account(contract)?,
        keypair_from_suri(key)?,
    )
    .await?;
    let done = client.generate(&task, GenerateOptions::default()).await?;
    for (i, png) in done.images.iter().enumerate() {
        let path = format!("task-{}-{i}.png", done.task_id);
        std::fs::write(&path, png)?;
        println!("{path}");
    }
    Ok(())
}
