//! Deploys the `hydrogen` contract bundle and prints its address.
//!
//! `hydrogen-deploy --url ws://127.0.0.1:9944 --bundle hydrogen.contract --suri //Alice --supply 1000000`

use anyhow::Context;
use clap::Parser;
use hydrogen_sdk::chain::{self, ChainClient, ContractBundle, Hydrogen};
use hydrogen_sdk::types::{Params, UNIT};

#[derive(Parser, Debug)]
#[command(about = "Instantiate the hydrogen contract and print its address")]
struct Args {
    /// The node's WebSocket RPC.
    #[arg(long, env = "HYDROGEN_URL", default_value = "ws://127.0.0.1:9944")]
    url: String,
    /// The cargo-contract bundle.
    #[arg(
        long,
        env = "HYDROGEN_CONTRACT_BUNDLE",
        default_value = "contracts-ink/target/ink/hydrogen/hydrogen.contract"
    )]
    bundle: String,
    /// Secret URI of the deployer, who becomes the owner.
    #[arg(long, default_value = "//Alice")]
    suri: String,
    /// Tokens minted to the deployer, in whole HYD (12 decimals).
    #[arg(long, default_value_t = 1_000_000)]
    supply: u128,
    /// Print the address as 0x-hex instead of SS58.
    #[arg(long)]
    hex: bool,
    /// Override `Params::min_fee`, in whole HYD.
    #[arg(long)]
    min_fee: Option<u128>,
    /// Override `Params::required_stake`, in whole HYD.
    #[arg(long)]
    required_stake: Option<u128>,
    /// Override `Params::timeout_ms`.
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Override `Params::warmup_ms` (0 on a dev chain where nodes join and a
    /// task follows at once).
    #[arg(long)]
    warmup_ms: Option<u64>,
    /// Secret URI of the relay's receipt key (its `receipt_key`): register
    /// its public key so uploads are paid only against the relay's receipts.
    #[arg(long)]
    relay_receipt_key: Option<String>,
    /// Mint HYD to the dev chain's documented accounts: //Node1 .. //Node12
    /// get twice the required stake, //HydrogenApp and //HydrogenApp2
    /// 10,000 HYD each (their native funds come from the chain spec).
    #[arg(long)]
    fund: bool,
}

/// The accounts `--fund` mints to, and how much: nodes twice the stake
/// (one stake, and as much again after a slash), apps 10,000 HYD.
fn dev_accounts(params: &Params) -> Vec<(String, u128)> {
    let mut accounts: Vec<(String, u128)> = (1..=12)
        .map(|i| (format!("//Node{i}"), 2 * params.required_stake))
        .collect();
    accounts.extend(["//HydrogenApp", "//HydrogenApp2"].map(|a| (a.to_owned(), 10_000 * UNIT)));
    accounts
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let signer = chain::keypair_from_suri(&args.suri)?;
    let bundle = ContractBundle::load(&args.bundle)?;
    let mismatches = bundle.interface_mismatches(chain::msg::ALL);
    for line in &mismatches {
        eprintln!("warning: {line}");
    }
    let mut params = Params::default();
    if let Some(fee) = args.min_fee {
        params.min_fee = fee * UNIT;
    }
    if let Some(stake) = args.required_stake {
        params.required_stake = stake * UNIT;
    }
    if let Some(timeout) = args.timeout_ms {
        params.timeout_ms = timeout;
    }
    if let Some(warmup) = args.warmup_ms {
        params.warmup_ms = warmup;
    }
    params
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid parameters: {e:?}"))?;
    let supply = args
        .supply
        .checked_mul(UNIT)
        .context("--supply overflows u128")?;

    let client = ChainClient::connect(&args.url).await?;
    let (hydrogen, deployed) = Hydrogen::deploy(client, &signer, &bundle, &params, supply).await?;
    eprintln!(
        "deployed in block #{} (gas {}/{}, storage deposit {:?})",
        deployed.included.block_number,
        deployed.gas_required.ref_time,
        deployed.gas_required.proof_size,
        deployed.storage_deposit
    );
    if let Some(uri) = &args.relay_receipt_key {
        let key =
            hydrogen_sdk::relay::receipt::keypair_from_uri(uri).map_err(anyhow::Error::msg)?;
        let public = hydrogen_sdk::relay::receipt::public_key(&key);
        hydrogen.set_relay_key(&signer, Some(public)).await?;
        eprintln!("relay receipt key 0x{} registered", hex::encode(public));
    }
    if args.fund {
        for (suri, amount) in dev_accounts(&params) {
            let account = chain::account_of(&chain::keypair_from_suri(&suri)?);
            hydrogen
                .mint(&signer, account, amount)
                .await
                .with_context(|| format!("minting to {suri}"))?;
        }
        eprintln!(
            "funded //Node1 .. //Node12 with {} HYD and //HydrogenApp, //HydrogenApp2 with 10000 HYD each",
            2 * params.required_stake / UNIT
        );
    }
    let address = hydrogen.address();
    if args.hex {
        println!("0x{}", hex::encode(address));
    } else {
        println!("{}", chain::ss58(&address));
    }
    Ok(())
}
