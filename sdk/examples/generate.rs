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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [rpc, relay, contract, key, task] = args.as_slice() else {
        eprintln!("usage: generate RPC_URL RELAY_URL CONTRACT KEY_URI TASK_JSON");
        std::process::exit(2);
    };
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
