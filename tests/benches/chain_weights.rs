//! What each contract call of a task's lifecycle weighs on a real dev node,
//! and how many lifecycles fit in one block.
//!
//! Spawns its own dev node, deploys the contract and drives two scenarios:
//! a task that completes (join ×3, create_task, contribute ×2, commit ×3,
//! reveal ×3, confirm_upload) and a task nobody answers (create_task,
//! contribute ×2, cancel after the deadline). The contributions come from
//! the two nodes the contract designated. For each call it prints the
//! dry run's `gas_required`, the weight the extrinsic really used and the
//! storage deposit, then the runtime's block weight limits and how many
//! lifecycles fit per block.
//!
//! `cargo bench -p hydrogen-tests --bench chain_weights`

use codec::Decode;
use hydrogen_sdk::chain::{StorageDeposit, Submitted, Weight};
use hydrogen_sdk::types::Params;
use hydrogen_tests::{phash, spawn_dev_node, Network, FEE};

/// The node indices of the armed batch's designated entropy contributors.
async fn designated(net: &Network) -> Vec<usize> {
    let contributors = net
        .hydrogen
        .entropy_contributors()
        .await
        .expect("entropy_contributors");
    assert_eq!(contributors.len(), 2, "a batch is armed");
    contributors.iter().map(|c| net.index_of(c)).collect()
}

/// One measured call.
struct Row {
    call: String,
    gas_required: Weight,
    actual: Weight,
    deposit: StorageDeposit,
}

impl Row {
    fn of<T>(call: &str, submitted: &Submitted<T>) -> Row {
        Row {
            call: call.into(),
            gas_required: submitted.dry_run.gas_required,
            actual: submitted.included.weight,
            deposit: submitted.dry_run.storage_deposit,
        }
    }
}

/// `frame_system::limits::BlockWeights` as the runtime encodes it.
#[derive(Decode)]
struct BlockWeights {
    base_block: Weight,
    max_block: Weight,
    per_class: PerClass,
}

#[derive(Decode)]
struct PerClass {
    normal: ClassWeights,
    _operational: ClassWeights,
    _mandatory: ClassWeights,
}

#[derive(Decode)]
struct ClassWeights {
    base_extrinsic: Weight,
    _max_extrinsic: Option<Weight>,
    max_total: Option<Weight>,
    _reserved: Option<Weight>,
}

fn deposit(d: StorageDeposit) -> String {
    match d {
        StorageDeposit::Charge(0) => "0".into(),
        StorageDeposit::Charge(c) => format!("+{c}"),
        StorageDeposit::Refund(r) => format!("-{r}"),
    }
}

fn print_rows(title: &str, rows: &[Row]) {
    println!("\n{title}");
    println!(
        "  {:<22} {:>15} {:>11} {:>15} {:>11} {:>16}",
        "call", "gas ref_time", "gas proof", "used ref_time", "used proof", "storage deposit"
    );
    for row in rows {
        println!(
            "  {:<22} {:>15} {:>11} {:>15} {:>11} {:>16}",
            row.call,
            row.gas_required.ref_time,
            row.gas_required.proof_size,
            row.actual.ref_time,
            row.actual.proof_size,
            deposit(row.deposit)
        );
    }
}

/// Sum over `rows` of `weight(row)` plus the base weight of each extrinsic.
fn total(rows: &[&Row], weight: impl Fn(&Row) -> Weight, base: Weight) -> Weight {
    rows.iter().fold(Weight::default(), |sum, row| {
        let w = weight(row);
        Weight {
            ref_time: sum.ref_time + w.ref_time + base.ref_time,
            proof_size: sum.proof_size + w.proof_size + base.proof_size,
        }
    })
}

/// Limits at or above half of `u64::MAX` are the runtime's way of saying
/// "no limit" (a standalone dev chain has no proof-of-validity bound).
fn unbounded(limit: u64) -> bool {
    limit >= u64::MAX / 2
}

fn show_limit(limit: u64) -> String {
    if unbounded(limit) {
        "unbounded".into()
    } else {
        limit.to_string()
    }
}

/// How many `each` fit in `limit`; `None` when there is no limit.
fn fits(limit: u64, each: u64) -> Option<u64> {
    (!unbounded(limit) && each > 0).then(|| limit / each)
}

fn print_capacity(label: &str, transactions: usize, per: Weight, limit: Weight) {
    let by_time = fits(limit.ref_time, per.ref_time);
    let by_proof = fits(limit.proof_size, per.proof_size);
    let binding = match (by_time, by_proof) {
        (Some(t), Some(p)) if p < t => format!("{p} (proof_size)"),
        (Some(t), _) => format!("{t} (ref_time)"),
        (None, Some(p)) => format!("{p} (proof_size)"),
        (None, None) => "unbounded".into(),
    };
    let show = |n: Option<u64>| n.map_or("unbounded".into(), |n| n.to_string());
    println!(
        "  {label:<24} {transactions:>3} {:>15} {:>11} {:>12} {:>12}   {binding}",
        per.ref_time,
        per.proof_size,
        show(by_time),
        show(by_proof)
    );
}

#[tokio::main]
async fn main() {
    let node = spawn_dev_node().await.expect("dev node");
    let params = Params {
        timeout_ms: 3_000,
        warmup_ms: 0,
        ..Params::default()
    };
    let mut net = Network::setup(node.url(), "bench", params, 3).await;
    let mut lifecycle = vec![Row {
        call: "deploy (with code)".into(),
        gas_required: net.deployed.gas_required,
        actual: net.deployed.included.weight,
        deposit: net.deployed.storage_deposit,
    }];

    // Scenario 1: a task from creation to confirmed upload.
    let joins: Vec<_> = net
        .join_all()
        .await
        .into_iter()
        .map(|r| r.expect("join"))
        .collect();
    for (i, joined) in joins.iter().enumerate() {
        lifecycle.push(Row::of(&format!("join #{i}"), joined));
    }
    let created = net.create_task(FEE).await.expect("create_task");
    let id = created.value;
    lifecycle.push(Row::of("create_task", &created));
    for (k, i) in designated(&net).await.into_iter().enumerate() {
        let contributed = net.contribute(i).await.expect("contribute_entropy");
        let what = if k == 1 {
            "contribute (starts)"
        } else {
            "contribute"
        };
        lifecycle.push(Row::of(what, &contributed));
    }
    for i in 0..3 {
        let committed = net.commit(id, i, phash(0)).await.expect("commit");
        lifecycle.push(Row::of(&format!("commit #{i}"), &committed));
    }
    for (i, what) in [
        "reveal #0",
        "reveal #1 (succeeds)",
        "reveal #2 (late agree)",
    ]
    .into_iter()
    .enumerate()
    {
        let revealed = net.reveal(id, i).await.expect("reveal");
        lifecycle.push(Row::of(what, &revealed));
    }
    let confirmed = net
        .hydrogen
        .confirm_upload(&net.nodes[0], id, None)
        .await
        .expect("confirm_upload");
    lifecycle.push(Row::of("confirm_upload", &confirmed));

    // Scenario 2: nobody answers; cancel after the deadline misses all three.
    let mut abandoned = Vec::new();
    let created = net.create_task(FEE).await.expect("create_task");
    let id = created.value;
    abandoned.push(Row::of("create_task", &created));
    for i in designated(&net).await {
        let contributed = net.contribute(i).await.expect("contribute_entropy");
        abandoned.push(Row::of("contribute", &contributed));
    }
    let deadline = net.task(id).await.deadline;
    net.pass(deadline).await;
    let cancelled = net.hydrogen.cancel(&net.creator, id).await.expect("cancel");
    abandoned.push(Row::of("cancel (nobody committed)", &cancelled));

    let at = net
        .client
        .api()
        .at_current_block()
        .await
        .expect("latest block");
    let bytes = at
        .constants()
        .entry_bytes(("System", "BlockWeights"))
        .expect("System::BlockWeights");
    let limits = BlockWeights::decode(&mut &bytes[..]).expect("BlockWeights decodes");
    let normal = limits.per_class.normal;
    let max_total = normal.max_total.unwrap_or(limits.max_block);
    let base = normal.base_extrinsic;

    println!(
        "\nHydrogen contract weights on substrate-contracts-node (one dev node, instant seal)"
    );
    println!(
        "gas = the dry run's gas_required (contract execution); used = the extrinsic's actual"
    );
    println!("weight (ExtrinsicSuccess: execution + Contracts::call overhead);");
    println!("storage deposit in the native token's smallest unit (+ charged, - refunded)");
    print_rows(
        "Scenario 1: a task from creation to confirmed upload",
        &lifecycle,
    );
    print_rows(
        "Scenario 2: nobody answers, cancel after the deadline",
        &abandoned,
    );

    println!("\nBlock limits (System::BlockWeights)");
    let line = |name: &str, w: Weight, note: &str| {
        println!(
            "  {name:<18} ref_time {:>15}, proof_size {}{note}",
            w.ref_time,
            show_limit(w.proof_size)
        )
    };
    line("max_block", limits.max_block, "");
    let note = if normal.max_total.is_some() {
        ""
    } else {
        " (no normal-class limit: max_block)"
    };
    line("normal max_total", max_total, note);
    line("base_extrinsic", base, " (added to every transaction)");
    line("base_block", limits.base_block, "");

    let task: Vec<&Row> = lifecycle
        .iter()
        .filter(|r| !r.call.starts_with("deploy") && !r.call.starts_with("join"))
        .collect();
    let with_joins: Vec<&Row> = lifecycle
        .iter()
        .filter(|r| !r.call.starts_with("deploy"))
        .collect();
    let cancelled: Vec<&Row> = abandoned.iter().collect();
    println!(
        "\nLifecycles per block (normal class): used weight + base_extrinsic of each transaction"
    );
    println!(
        "  {:<24} {:>3} {:>15} {:>11} {:>12} {:>12}   fit",
        "lifecycle", "tx", "ref_time", "proof_size", "by ref_time", "by proof"
    );
    for (label, rows) in [
        ("task", &task),
        ("task + 3 joins", &with_joins),
        ("abandoned task", &cancelled),
    ] {
        print_capacity(
            label,
            rows.len(),
            total(rows, |r| r.actual, base),
            max_total,
        );
    }
    // For comparison: a parachain's block, 75 % of a 5 MiB proof-of-validity for normal calls.
    let pov = Weight {
        ref_time: max_total.ref_time,
        proof_size: 5 * 1024 * 1024 / 4 * 3,
    };
    println!(
        "  if proof_size were limited like a parachain's (75 % of a 5 MiB PoV = {} bytes):",
        pov.proof_size
    );
    print_capacity("task", task.len(), total(&task, |r| r.actual, base), pov);
    println!(
        "\nA block admits a transaction only if its declared weight (the SDK's gas limit is\n\
         gas_required + 50 %, plus the Contracts::call overhead) fits in what is left;\n\
         unused weight is refunded once it has run."
    );
    drop(node);
}
