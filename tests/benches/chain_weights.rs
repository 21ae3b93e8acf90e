//! What each contract call of a task's lifecycle weighs on a real dev node,
//! and how many lifecycles fit in one block.
//!
//! Spawns its own dev node, deploys the contract and drives two scenarios:
//! a task that completes (join ×3, create_task, contribute ×2, commit ×3,
//! reveal ×3, confirm_upload) and a task nobody answers (create_task,
//! contribute ×2, cancel after the deadline). For each call it prints the
//! dry run's `gas_required`, the weight the extrinsic really used and the
//! storage deposit, then the runtime's block weight limits and how many
//! lifecycles fit per block.
//!
//! `cargo bench -p hydrogen-tests --bench chain_weights`

use codec::Decode;
use hydrogen_sdk::chain::{StorageDeposit, Submitted, Weight};
use hydrogen_sdk::types::Params;
use hydrogen_tests::{phash, spawn_dev_node, Network, FEE};

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

fn fits(limit: u64, each: u64) -> String {
    if each == 0 || limit == u64::MAX {
        "unbounded".into()
    } else {
        (limit / each).to_string()
    }
}

fn print_capacity(label: &str, per: Weight, limit: Weight) {
    let by_time = fits(limit.ref_time, per.ref_time);
    let by_proof = fits(limit.proof_size, per.proof_size);
    let binding = match (by_time.parse::<u64>(), by_proof.parse::<u64>()) {
        (Ok(t), Ok(p)) if p < t => format!("{p} (proof_size)"),
        (Ok(t), _) => format!("{t} (ref_time)"),
        (Err(_), Ok(p)) => format!("{p} (proof_size)"),
        _ => "unbounded".into(),
    };
    println!(
        "  {label:<34} {:>15} {:>11}   ref_time {by_time:>6}, proof_size {by_proof:>9}  => {binding}",
        per.ref_time, per.proof_size
    );
}

#[tokio::main]
async fn main() {
    let node = spawn_dev_node().await.expect("dev node");
    let params = Params {
        timeout_ms: 3_000,
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
    for i in 0..2 {
        let contributed = net.contribute(i).await.expect("contribute_entropy");
        let what = if i == 1 {
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
        .confirm_upload(&net.nodes[0], id)
        .await
        .expect("confirm_upload");
    lifecycle.push(Row::of("confirm_upload", &confirmed));

    // Scenario 2: nobody answers; cancel after the deadline misses all three.
    let mut abandoned = Vec::new();
    let created = net.create_task(FEE).await.expect("create_task");
    let id = created.value;
    abandoned.push(Row::of("create_task", &created));
    for i in 0..2 {
        let contributed = net.contribute(i).await.expect("contribute_entropy");
        abandoned.push(Row::of("contribute", &contributed));
    }
    let deadline = net.task(id).await.deadline;
    net.pass(deadline).await;
    let cancelled = net
        .hydrogen
        .cancel(&net.creator, id)
        .await
        .expect("cancel");
    abandoned.push(Row::of("cancel (3 missed)", &cancelled));

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

    println!("\nHydrogen contract weights on substrate-contracts-node (one dev node, instant seal)");
    println!("gas = the dry run's gas_required; used = the extrinsic's actual weight (ExtrinsicSuccess);");
    println!("storage deposit in the native token's smallest unit (+ charged, - refunded)");
    print_rows("Scenario 1: a task from creation to confirmed upload", &lifecycle);
    print_rows("Scenario 2: nobody answers, cancel after the deadline", &abandoned);

    println!("\nBlock limits (System::BlockWeights)");
    println!(
        "  max_block          ref_time {:>15}, proof_size {}",
        limits.max_block.ref_time, limits.max_block.proof_size
    );
    println!(
        "  normal max_total   ref_time {:>15}, proof_size {}{}",
        max_total.ref_time,
        max_total.proof_size,
        if normal.max_total.is_some() {
            ""
        } else {
            " (no normal limit: max_block)"
        }
    );
    println!(
        "  base_extrinsic     ref_time {:>15}, proof_size {}  (added to every transaction)",
        base.ref_time, base.proof_size
    );
    println!(
        "  base_block         ref_time {:>15}, proof_size {}",
        limits.base_block.ref_time, limits.base_block.proof_size
    );

    let task: Vec<&Row> = lifecycle
        .iter()
        .filter(|r| !r.call.starts_with("deploy") && !r.call.starts_with("join"))
        .collect();
    let with_joins: Vec<&Row> = lifecycle
        .iter()
        .filter(|r| !r.call.starts_with("deploy"))
        .collect();
    let cancelled: Vec<&Row> = abandoned.iter().collect();
    println!("\nLifecycles per block (normal class), each transaction counted with base_extrinsic");
    println!(
        "  {:<34} {:>15} {:>11}",
        "lifecycle", "ref_time", "proof_size"
    );
    for (label, rows) in [
        ("task, used weight (10 tx)", &task),
        ("task + 3 joins, used weight", &with_joins),
        ("abandoned task, used weight (4 tx)", &cancelled),
    ] {
        print_capacity(label, total(rows, |r| r.actual, base), max_total);
    }
    print_capacity(
        "task, gas_required (10 tx)",
        total(&task, |r| r.gas_required, base),
        max_total,
    );
    println!(
        "\n(the SDK submits with gas_limit = gas_required + 50 %; a block admits a transaction only if its\n limit fits in what is left, and unused weight is refunded after it runs)"
    );
    drop(node);
}
