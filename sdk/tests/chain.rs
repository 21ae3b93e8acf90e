//! The chain client against a real substrate-contracts-node and the real
//! `hydrogen` contract bundle.
//!
//! Each test spawns its own dev node (`HYDROGEN_NODE_BIN` or
//! `substrate-contracts-node` on PATH) and deploys the bundle from
//! `HYDROGEN_CONTRACT_BUNDLE` (default: the contract's `cargo contract build`
//! output). Without a node binary or a bundle the tests print why and pass,
//! unless `HYDROGEN_REQUIRE_CHAIN=1` makes them fail.
//!
//! `cargo test -p hydrogen-sdk --features test-util --test chain`

use futures::StreamExt;
use hydrogen_sdk::chain::devnode::{node_binary, DevNode};
use hydrogen_sdk::chain::{
    account_of, keypair_from_suri, msg, ss58, BlockEvents, ChainClient, ChainError, ContractBundle,
    Hydrogen, Keypair,
};
use hydrogen_sdk::types::{
    ticket, AccountId, Error, Event, NodeStatus, Params, TaskStatus, TaskType, UNIT,
};
use std::path::PathBuf;
use std::time::Duration;

const SUPPLY: u128 = 1_000_000 * UNIT;

fn bundle_path() -> PathBuf {
    std::env::var_os("HYDROGEN_CONTRACT_BUNDLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../contracts-ink/target/ink/hydrogen/hydrogen.contract")
        })
}

/// The bundle and a running node, or `None` (test skipped) when either is
/// missing and `HYDROGEN_REQUIRE_CHAIN` is not set.
async fn setup() -> Option<(DevNode, ContractBundle)> {
    let required = std::env::var("HYDROGEN_REQUIRE_CHAIN").is_ok_and(|v| v == "1");
    let skip = |why: String| {
        assert!(!required, "{why}");
        eprintln!("skipped: {why}");
    };
    let path = bundle_path();
    if !path.exists() {
        skip(format!("no contract bundle at {}", path.display()));
        return None;
    }
    let bundle = ContractBundle::load(&path).expect("readable bundle");
    match DevNode::spawn().await {
        Ok(node) => Some((node, bundle)),
        Err(e) => {
            skip(format!("{e} ({})", node_binary().display()));
            None
        }
    }
}

async fn deploy(node: &DevNode, bundle: &ContractBundle, alice: &Keypair) -> Hydrogen {
    let client = node.client().await.expect("connect");
    let (hydrogen, deployed) = Hydrogen::deploy(client, alice, bundle, &Params::default(), SUPPLY)
        .await
        .expect("deploy");
    assert!(deployed.gas_required.ref_time > 0);
    hydrogen
}

#[tokio::test]
async fn connecting_to_a_missing_node_says_what_to_do() {
    let err = ChainClient::connect("ws://127.0.0.1:1").await.unwrap_err();
    assert!(matches!(err, ChainError::Connect { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("ws://127.0.0.1:1") && text.contains("Is the node running?"),
        "{text}"
    );
}

#[tokio::test]
async fn bundle_matches_the_sdk_interface() {
    let path = bundle_path();
    if !path.exists() {
        eprintln!("skipped: no contract bundle at {}", path.display());
        return;
    }
    let bundle = ContractBundle::load(&path).unwrap();
    assert_eq!(bundle.interface_mismatches(msg::ALL), Vec::<String>::new());
    let constructors = bundle.constructors();
    assert!(
        constructors.iter().any(|(label, _)| label == "new"),
        "{constructors:?}"
    );
    // Standard tools show the doc comments as the messages' help.
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let undocumented: Vec<&str> = json["spec"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["docs"].as_array().is_none_or(|d| d.is_empty()))
        .map(|m| m["label"].as_str().unwrap())
        .collect();
    assert_eq!(undocumented, Vec::<&str>::new(), "messages without docs");
}

#[tokio::test]
async fn deploys_and_reads_the_token() {
    let Some((node, bundle)) = setup().await else {
        return;
    };
    let alice = keypair_from_suri("//Alice").unwrap();
    let hydrogen = deploy(&node, &bundle, &alice).await;

    assert_eq!(
        hydrogen.balance_of(account_of(&alice)).await.unwrap(),
        SUPPLY
    );
    assert_eq!(hydrogen.total_supply().await.unwrap(), SUPPLY);
    assert_eq!(hydrogen.token_decimals().await.unwrap(), 12);
    assert_eq!(hydrogen.owner().await.unwrap(), account_of(&alice));
    assert_eq!(hydrogen.params().await.unwrap(), Params::default());
    assert_eq!(hydrogen.queue().await.unwrap(), Vec::<u64>::new());

    // A transfer reports its weight and deposit and moves the tokens.
    let bob = account_of(&keypair_from_suri("//Bob").unwrap());
    let sent = hydrogen.transfer(&alice, bob, 5 * UNIT).await.unwrap();
    assert!(sent.included.weight.ref_time > 0 && sent.dry_run.gas_required.proof_size > 0);
    assert!(sent.included.fee > 0);
    assert!(
        sent.events.is_empty(),
        "PSP22 Transfer is not a Hydrogen event: {:?}",
        sent.events
    );
    assert_eq!(hydrogen.balance_of(bob).await.unwrap(), 5 * UNIT);
}

#[tokio::test]
async fn refusals_name_the_error_and_submit_nothing() {
    let Some((node, bundle)) = setup().await else {
        return;
    };
    let alice = keypair_from_suri("//Alice").unwrap();
    let hydrogen = deploy(&node, &bundle, &alice).await;
    let client = hydrogen.client().clone();
    let nonce_before = client
        .account_next_index(&account_of(&alice))
        .await
        .unwrap();

    let err = hydrogen
        .create_task(&alice, TaskType::StableDiffusion, [1; 32], 8, 1, 1)
        .await
        .unwrap_err();
    assert_eq!(err.contract_error(), Some(Error::FeeTooLow), "{err}");
    assert_eq!(err.to_string(), "contract refused create_task: FeeTooLow");

    let bob = keypair_from_suri("//Bob").unwrap();
    let err = hydrogen
        .mint(&bob, account_of(&bob), UNIT)
        .await
        .unwrap_err();
    assert_eq!(err.contract_error(), Some(Error::NotOwner), "{err}");

    let err = hydrogen
        .transfer(&bob, account_of(&alice), UNIT)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "token refused PSP22::transfer: InsufficientBalance"
    );

    assert_eq!(
        client
            .account_next_index(&account_of(&alice))
            .await
            .unwrap(),
        nonce_before
    );

    // The pool's reason for refusing a transaction comes through.
    let nobody = keypair_from_suri("//Nobody").unwrap();
    let remark = subxt::dynamic::tx("System", "remark", (vec![0u8],));
    let err = client
        .submit_extrinsic(&nobody, &remark, "remark")
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::Rejected { .. }), "{err}");
    assert!(
        err.to_string().contains("Inability to pay some fees"),
        "{err}"
    );

    // A runtime failure in a finalized block reads as pallet::Error.
    let sudo = subxt::dynamic::tx(
        "Sudo",
        "sudo",
        (subxt::dynamic::Value::unnamed_variant(
            "System",
            [subxt::dynamic::Value::unnamed_variant(
                "remark",
                [subxt::dynamic::Value::from_bytes([1u8])],
            )],
        ),),
    );
    let err = client
        .submit_extrinsic(&bob, &sudo, "sudo")
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::ExtrinsicFailed { .. }), "{err}");
    assert!(err.to_string().contains("Sudo::RequireSudo"), "{err}");
}

#[tokio::test]
async fn concurrent_submissions_from_one_signer_all_land() {
    let Some((node, bundle)) = setup().await else {
        return;
    };
    let alice = keypair_from_suri("//Alice").unwrap();
    let hydrogen = deploy(&node, &bundle, &alice).await;

    let recipients: Vec<AccountId> = (1..=6u8).map(|i| AccountId::from([i; 32])).collect();
    let sends = recipients.iter().enumerate().map(|(i, to)| {
        let (hydrogen, alice) = (hydrogen.clone(), alice.clone());
        async move { hydrogen.transfer(&alice, *to, (i as u128 + 1) * UNIT).await }
    });
    let results = futures::future::join_all(sends).await;
    for result in &results {
        assert!(
            result.is_ok(),
            "{:?}",
            result.as_ref().err().map(ToString::to_string)
        );
    }
    for (i, to) in recipients.iter().enumerate() {
        assert_eq!(
            hydrogen.balance_of(*to).await.unwrap(),
            (i as u128 + 1) * UNIT
        );
    }

    // Concurrent tasks from two signers each learn the id they really got.
    let bob = keypair_from_suri("//Bob").unwrap();
    hydrogen
        .transfer(&alice, account_of(&bob), 100 * UNIT)
        .await
        .unwrap();
    let fee = Params::default().min_fee;
    let creators = [&alice, &bob, &alice, &bob];
    let creates = creators.iter().map(|signer| {
        let (hydrogen, signer) = (hydrogen.clone(), (*signer).clone());
        async move {
            hydrogen
                .create_task(&signer, TaskType::StableDiffusion, [2; 32], 8, 1, fee)
                .await
        }
    });
    let mut ids: Vec<u64> = futures::future::join_all(creates)
        .await
        .into_iter()
        .map(|r| r.expect("create_task").value)
        .collect();
    ids.sort();
    let mut queued = hydrogen.queue().await.unwrap();
    queued.sort();
    assert_eq!(ids, queued);
    ids.dedup();
    assert_eq!(ids.len(), 4, "distinct ids");

    // Another client with the same key takes the next nonce behind our back:
    // our cached nonce is stale, and the submission resyncs and retries.
    let other = Hydrogen::at(node.client().await.unwrap(), hydrogen.address());
    other.transfer(&alice, [9; 32].into(), UNIT).await.unwrap();
    hydrogen
        .transfer(&alice, [9; 32].into(), UNIT)
        .await
        .unwrap();
    assert_eq!(hydrogen.balance_of([9; 32].into()).await.unwrap(), 2 * UNIT);
}

#[tokio::test]
async fn finalized_events_stream_and_catch_up() {
    let Some((node, bundle)) = setup().await else {
        return;
    };
    let alice = keypair_from_suri("//Alice").unwrap();
    let hydrogen = deploy(&node, &bundle, &alice).await;
    let mut live = Box::pin(hydrogen.event_stream(None).await.unwrap());

    let fee = Params::default().min_fee * 2;
    let created = hydrogen
        .create_task(&alice, TaskType::StableDiffusion, [7; 32], 8, 2, fee)
        .await
        .unwrap();
    let task_id = created.value;
    let is_ours = |e: &Event| matches!(e, Event::TaskCreated { task_id: id, fee: f, .. } if *id == task_id && *f == fee);
    assert!(created.events.iter().any(is_ours), "{:?}", created.events);
    let block = created.included.block_number;

    // Live: blocks arrive in order, without gaps, up to the task's block.
    for item in blocks_through(&mut live, block).await {
        if item.block_number == block {
            assert!(item.events.iter().any(|e| is_ours(&e.event)), "{item:?}");
        } else {
            assert!(item.events.is_empty(), "{item:?}");
        }
    }

    // Catch-up: one block by number, and a stream from a stored number.
    let at = hydrogen.events_at(block).await.unwrap();
    assert_eq!(
        at.events
            .iter()
            .map(|e| &e.event)
            .cloned()
            .collect::<Vec<_>>(),
        created.events
    );
    let mut replay = Box::pin(hydrogen.event_stream(Some(1)).await.unwrap());
    let mut seen = Vec::new();
    while let Some(item) = replay.next().await {
        let item = item.unwrap();
        seen.push(item.block_number);
        if item.block_number == block {
            assert_eq!(item, at);
            break;
        }
    }
    assert_eq!(seen, (1..=block).collect::<Vec<_>>());

    assert!(
        hydrogen.events_at(block + 100).await.is_err(),
        "not finalized yet"
    );
    assert_eq!(hydrogen.queue().await.unwrap(), vec![task_id]);
}

/// The chain node restarts under a connected client: reads, submissions and
/// the event stream carry on over the same client, and the stream has no
/// gap where the node was down.
#[tokio::test]
async fn a_client_rides_out_a_node_restart() {
    let Some((mut node, bundle)) = setup().await else {
        return;
    };
    let alice = keypair_from_suri("//Alice").unwrap();
    let hydrogen = deploy(&node, &bundle, &alice).await;
    let mut live = Box::pin(hydrogen.event_stream(None).await.unwrap());
    let fee = Params::default().min_fee * 2;
    let create =
        |seed: u8| hydrogen.create_task(&alice, TaskType::StableDiffusion, [seed; 32], 8, 2, fee);

    let first = create(1).await.unwrap();
    node.restart().await.unwrap();
    assert_eq!(hydrogen.queue().await.unwrap(), vec![first.value]);
    let second = create(2).await.unwrap();
    assert_eq!(
        hydrogen.queue().await.unwrap(),
        vec![first.value, second.value]
    );

    let created: Vec<_> = blocks_through(&mut live, second.included.block_number)
        .await
        .iter()
        .flat_map(|item| &item.events)
        .filter_map(|e| match e.event {
            Event::TaskCreated { task_id, .. } => Some(task_id),
            _ => None,
        })
        .collect();
    assert_eq!(created, vec![first.value, second.value]);
}

/// The items of an event stream up to block `last`, checked to come in
/// order and without gaps.
async fn blocks_through(
    live: &mut (impl futures::Stream<Item = Result<BlockEvents, ChainError>> + Unpin),
    last: u64,
) -> Vec<BlockEvents> {
    let mut items: Vec<BlockEvents> = Vec::new();
    while items.last().is_none_or(|item| item.block_number < last) {
        let item = tokio::time::timeout(Duration::from_secs(60), live.next())
            .await
            .expect("stream stalled")
            .expect("stream ended")
            .expect("stream item");
        if let Some(previous) = items.last() {
            assert_eq!(item.block_number, previous.block_number + 1, "no gaps");
        }
        items.push(item);
    }
    items
}

#[tokio::test]
async fn staking_and_task_views_decode() {
    let Some((node, bundle)) = setup().await else {
        return;
    };
    let alice = keypair_from_suri("//Alice").unwrap();
    let bob = keypair_from_suri("//Bob").unwrap();
    let hydrogen = deploy(&node, &bundle, &alice).await;
    let stake = Params::default().required_stake;
    hydrogen
        .transfer(&alice, account_of(&bob), stake)
        .await
        .unwrap();

    let joined = hydrogen
        .join(&bob, "RTX 4090".into(), 24, 1, ticket(&[5; 32]))
        .await
        .unwrap();
    let available = Event::NodeStatusChanged {
        node: account_of(&bob),
        status: NodeStatus::Available,
    };
    assert!(joined.events.contains(&available), "{:?}", joined.events);
    let info = hydrogen
        .node_info(account_of(&bob))
        .await
        .unwrap()
        .expect("joined");
    assert_eq!(
        (info.status, info.stake, info.vram_gb),
        (NodeStatus::Available, stake, 24)
    );
    assert_eq!(info.gpu_name, "RTX 4090");
    assert_eq!(hydrogen.node_counts().await.unwrap().available, 1);
    assert_eq!(hydrogen.available_capacity(16).await.unwrap(), 1);
    assert_eq!(hydrogen.available_capacity(48).await.unwrap(), 0);
    assert_eq!(hydrogen.balance_of(account_of(&bob)).await.unwrap(), 0);

    let err = hydrogen
        .join(&bob, "RTX 4090".into(), 24, 1, ticket(&[6; 32]))
        .await
        .unwrap_err();
    assert_eq!(err.contract_error(), Some(Error::AlreadyJoined), "{err}");

    hydrogen.pause(&bob).await.unwrap();
    assert_eq!(
        hydrogen
            .node_info(account_of(&bob))
            .await
            .unwrap()
            .unwrap()
            .status,
        NodeStatus::Paused
    );
    hydrogen.resume(&bob).await.unwrap();
    hydrogen.quit(&bob).await.unwrap();
    assert_eq!(hydrogen.balance_of(account_of(&bob)).await.unwrap(), stake);

    let fee = Params::default().min_fee * 3;
    let task_id = hydrogen
        .create_task(&alice, TaskType::StableDiffusion, [3; 32], 8, 3, fee)
        .await
        .unwrap()
        .value;
    let task = hydrogen.task(task_id).await.unwrap().expect("task exists");
    assert_eq!(
        (task.id, task.fee, task.num_images, task.status),
        (task_id, fee, 3, TaskStatus::Queued)
    );
    assert_eq!(task.creator, account_of(&alice));
    assert!(hydrogen.task(task_id + 1000).await.unwrap().is_none());
    let cancelled = hydrogen.cancel(&alice, task_id).await.unwrap();
    assert!(
        cancelled
            .events
            .iter()
            .any(|e| matches!(e, Event::TaskAborted { task_id: id, .. } if *id == task_id)),
        "{:?}",
        cancelled.events
    );
    let _ = hydrogen.entropy_needed().await.unwrap();
    assert_eq!(
        hydrogen.burned().await.unwrap(),
        fee / 100,
        "cancelling a queued task burns 1% of its fee"
    );
}

#[tokio::test]
async fn repository_chain_spec_funds_the_node_accounts() {
    let spec = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../chain-spec/dev-raw.json");
    if !spec.exists()
        || std::process::Command::new(node_binary())
            .arg("--version")
            .output()
            .is_err()
    {
        assert!(
            !std::env::var("HYDROGEN_REQUIRE_CHAIN").is_ok_and(|v| v == "1"),
            "no {} or node binary",
            spec.display()
        );
        eprintln!("skipped: no {} or node binary", spec.display());
        return;
    }
    let node = DevNode::spawn_with_chain_spec(&spec)
        .await
        .expect("node starts");
    let client = node.client().await.unwrap();
    let node1 = keypair_from_suri("//Node1").unwrap();
    assert!(client.native_balance(&account_of(&node1)).await.unwrap() > 1_000 * UNIT);
    assert_eq!(client.native_balance(&[0xee; 32].into()).await.unwrap(), 0);
    let remark = subxt::dynamic::tx("System", "remark", (vec![1u8, 2, 3],));
    let included = client
        .submit_extrinsic(&node1, &remark, "remark")
        .await
        .unwrap();
    assert_eq!(
        included.block_number,
        client.finalized_number().await.unwrap()
    );
}

/// Runs `cargo contract` (Parity's CLI, installed with the chain tools) with
/// `args`; returns its stdout, failing the test with its stderr.
fn cargo_contract(args: &[&str]) -> String {
    let out = std::process::Command::new("cargo")
        .arg("contract")
        .args(args)
        .output()
        .expect("cargo-contract runs (scripts/install.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "cargo contract {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// The README's "from standard tools" commands work as written: Parity's
/// `cargo contract` reads a view and submits a message with the bundle's
/// metadata, and errors come back as the named variants. The Python
/// example runs too where `substrate-interface` is installed.
#[tokio::test]
async fn standard_tools_read_and_call_the_contract() {
    let Some((node, bundle)) = setup().await else {
        return;
    };
    let alice = keypair_from_suri("//Alice").unwrap();
    let hydrogen = deploy(&node, &bundle, &alice).await;
    let address = ss58(&hydrogen.address());
    let url = node.url().to_string();
    let bundle = bundle_path();
    let bundle = bundle.to_str().unwrap();
    let common = |message: &'static str| {
        vec![
            "call",
            "--contract",
            &address,
            "--message",
            message,
            "--suri",
            "//Alice",
            "--url",
            &url,
            bundle,
        ]
    };
    let params = cargo_contract(&common("params"));
    assert!(
        params.contains("timeout_ms") && params.contains("warmup_ms"),
        "{params}"
    );
    // A refusal decodes as the named error.
    let mut args = common("accept_ownership");
    args.push("--skip-confirm");
    let refused = cargo_contract(&args);
    assert!(refused.contains("NotPendingOwner"), "{refused}");
    // A submitted call changes the state the SDK reads.
    let mut args = common("transfer_ownership");
    args.extend([
        "--args",
        "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
        "-x",
        "-y",
    ]);
    cargo_contract(&args);
    // It landed: Bob (the address above) may now accept, through the SDK.
    let bob = keypair_from_suri("//Bob").unwrap();
    hydrogen
        .accept_ownership(&bob)
        .await
        .expect("offered by the CLI call");
    assert_eq!(hydrogen.owner().await.unwrap(), account_of(&bob));
    // Accounts inside returned structs are typed: the tools print addresses.
    let fee = Params::default().min_fee;
    let task = hydrogen
        .create_task(&alice, TaskType::StableDiffusion, [7; 32], 8, 1, fee)
        .await
        .unwrap()
        .value
        .to_string();
    let mut args = common("task");
    args.extend(["--args", &task]);
    let info = cargo_contract(&args);
    let alice_ss58 = ss58(&account_of(&alice));
    assert!(info.contains(&format!("creator: {alice_ss58}")), "{info}");
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contracts-ink/examples/read.py");
    // scripts/install.sh puts substrate-interface in a venv of its own.
    let venv = std::env::var_os("HYDROGEN_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hydrogen")))
        .map(|d| d.join("python/bin/python3"))
        .filter(|p| p.exists());
    let python3 = venv.unwrap_or_else(|| PathBuf::from("python3"));
    let python = std::process::Command::new(&python3)
        .args(["-c", "import substrateinterface"])
        .output();
    if python.is_ok_and(|o| o.status.success()) {
        let out = std::process::Command::new(&python3)
            .arg(&script)
            .args([&url, &address, bundle, &task])
            .output()
            .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!("the Python example printed:\n{stdout}");
        assert!(
            out.status.success()
                && stdout.contains("timeout_ms")
                && stdout.contains(&format!("'creator': '{alice_ss58}'")),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("skipped the Python example: substrate-interface is not installed");
    }
}

/// Kills the child process when dropped, so a failing test leaves none behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// On an idle dev chain time stands still (a block only per transaction,
/// and the contract reads the latest block's time), so an expiry never
/// comes. `hydrogen-ticker`, which `scripts/devnode.sh` runs, makes a block
/// every period: the queued task then expires and its escrow comes back.
#[tokio::test]
async fn a_deadline_passes_on_an_idle_chain_with_the_ticker() {
    let Some((node, bundle)) = setup().await else {
        return;
    };
    let alice = keypair_from_suri("//Alice").unwrap();
    let params = Params {
        queue_ttl_ms: 2_000,
        ..Params::default()
    };
    let client = node.client().await.expect("connect");
    let (hydrogen, _) = Hydrogen::deploy(client, &alice, &bundle, &params, SUPPLY)
        .await
        .expect("deploy");
    let funded = hydrogen.balance_of(account_of(&alice)).await.unwrap();
    let fee = params.min_fee;
    let id = hydrogen
        .create_task(&alice, TaskType::StableDiffusion, [5; 32], 8, 1, fee)
        .await
        .unwrap()
        .value;
    // No node ever takes it; its queue time runs out, but no block says so.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let bob = keypair_from_suri("//Bob").unwrap();
    let refused = hydrogen.cancel(&bob, id).await.unwrap_err();
    assert_eq!(
        refused.contract_error(),
        Some(Error::NotAllowed),
        "{refused}"
    );

    let _ticker = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_hydrogen-ticker"))
            .args(["--url", node.url(), "--period-ms", "300"])
            .spawn()
            .expect("hydrogen-ticker starts"),
    );
    let mut expired = Err(refused);
    for _ in 0..50 {
        expired = hydrogen.cancel(&bob, id).await;
        if expired.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    expired.expect("anyone may settle an expired task once blocks move");
    let task = hydrogen.task(id).await.unwrap().unwrap();
    assert_eq!(
        task.status,
        TaskStatus::Aborted(hydrogen_sdk::types::AbortReason::Expired)
    );
    assert_eq!(
        hydrogen.balance_of(account_of(&alice)).await.unwrap(),
        funded,
        "the escrow came back in full"
    );
}
