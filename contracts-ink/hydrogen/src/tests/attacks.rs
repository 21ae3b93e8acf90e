//! The adversarial review's findings, each played as the attacker would,
//! showing it no longer pays or no longer works. The statistical selection
//! test is in `selection.rs`.

use super::*;
use hydrogen_types::{fee_share, AbortReason, NodeStatus, TaskStatus, MAX_TASK_VRAM_GB};

const APP: u8 = 1;
const STRANGER: u8 = 99;

fn status(net: &Net, n: AccountId) -> NodeStatus {
    net.c
        .node_info(n)
        .map(|i| i.status)
        .unwrap_or(NodeStatus::Quit)
}

/// Three nodes, a started task, and all three commit and reveal one result.
fn all_agree(net: &mut Net) -> (TaskId, Vec<AccountId>) {
    net.nodes(&[10, 11, 12], 24);
    let id = net.started_task(acct(APP), 1);
    let nodes = net.selected(id);
    for n in &nodes {
        net.commit(id, *n, phash(1, 5)).unwrap();
    }
    for n in &nodes {
        net.reveal(id, *n).unwrap();
    }
    (id, nodes)
}

/// Every selected node commits and reveals the same result; the uploader confirms.
fn complete(net: &mut Net, id: TaskId) {
    let nodes = net.selected(id);
    for n in &nodes {
        net.commit(id, *n, phash(1, 5)).unwrap();
    }
    for n in &nodes {
        net.reveal(id, *n).unwrap();
    }
    let uploader = net.c.task(id).unwrap().uploader.unwrap();
    net.as_(uploader).confirm_upload(id, None).unwrap();
}

/// Finding 1b: the same secrets give the same draw whatever block or time
/// the deciding transaction lands in, so there is nothing to grind by timing.
#[test]
fn a_draw_does_not_depend_on_when_its_transaction_lands() {
    let mut draws = std::collections::BTreeSet::new();
    for delay in 0..40u64 {
        ink::env::test::run_test::<Env, _>(|_| {
            let mut net = Net::new();
            net.nodes(&[10, 11, 12, 13, 14, 15, 16, 17, 18, 19], 24);
            net.fund(acct(APP), FEE);
            let id = net.create(acct(APP), 1, FEE).unwrap();
            for _ in 0..delay {
                ink::env::test::advance_block::<Env>();
            }
            // Within the contributors' window, so the same two contribute.
            net.at(net.now() + delay * 1_409);
            net.ripen();
            let mut selected = net.selected(id);
            selected.sort();
            draws.insert(selected);
            Ok(())
        })
        .unwrap();
    }
    assert_eq!(
        draws.len(),
        1,
        "40 landing times gave {} draws",
        draws.len()
    );
}

/// Finding 1a: with one honest node free and a task waiting, two paused
/// Sybils that resume cannot take two of its three slots: they warm up
/// first, and the honest nodes released meanwhile fill the draw.
#[ink::test]
fn resuming_sybils_cannot_step_into_a_waiting_task() {
    let warmup = 5 * TIMEOUT;
    let mut net = Net::with(Params {
        warmup_ms: warmup,
        ..params()
    });
    let honest = [10, 11, 12, 13].map(acct);
    let sybils = [20, 21].map(acct);
    net.nodes(&[10, 11, 12, 13, 20, 21], 24);
    for s in sybils {
        net.as_(s).pause().unwrap();
    }
    net.at(net.now() + warmup + 1);
    // Three honest nodes busy on a first task, one free.
    let first = net.started_task(acct(APP), 1);
    net.fund(acct(APP), FEE);
    let second = net.create(acct(APP), 1, FEE).unwrap();
    assert!(net.c.armed().is_empty(), "one free node cannot serve it");
    // The attack: resume both Sybils now.
    for s in sybils {
        net.as_(s).resume().unwrap();
    }
    assert!(
        net.c.armed().is_empty(),
        "resumed nodes warm up before they count"
    );
    // The honest nodes finish and are released at once; the second task
    // is armed with the four honest nodes only.
    complete(&mut net, first);
    assert_eq!(net.c.armed(), vec![second]);
    net.ripen();
    let selected = net.selected(second);
    assert!(selected.iter().all(|n| honest.contains(n)), "{selected:?}");
}

/// Finding 1: a node that becomes available after a batch was armed is not
/// in that batch's draw, whatever it knows of the entropy.
#[ink::test]
fn a_node_available_after_arming_is_not_drawn() {
    let mut net = Net::new();
    net.nodes(&[10, 11, 12], 24);
    net.fund(acct(APP), FEE);
    let id = net.create(acct(APP), 1, FEE).unwrap();
    assert_eq!(net.c.armed(), vec![id]);
    // Joins after arming (no warm-up in these parameters).
    net.nodes(&[20], 24);
    net.ripen();
    assert!(!net.selected(id).contains(&acct(20)));
    assert_eq!(status(&net, acct(20)), NodeStatus::Available);
}

/// Finding 1: a designated contributor that withholds its secret (because
/// it dislikes the draw it can foresee) forfeits part of its stake, is
/// replaced, and the batch is still drawn.
#[ink::test]
fn a_withholding_contributor_forfeits_and_is_replaced() {
    let mut net = Net::new();
    net.nodes(&[10, 11, 12, 13, 14], 24);
    net.fund(acct(APP), FEE);
    let id = net.create(acct(APP), 1, FEE).unwrap();
    let designated = net.c.entropy_contributors();
    net.contribute(designated[0]).unwrap();
    let withholder = designated[1];
    net.at(net.now() + hydrogen_types::ENTROPY_WINDOW_MS);
    assert_eq!(
        net.as_(acct(STRANGER)).redesignate(),
        Err(Error::DeadlineNotReached)
    );
    net.at(net.now() + 1);
    net.as_(acct(STRANGER)).redesignate().unwrap();
    let info = net.c.node_info(withholder).unwrap();
    assert_eq!(info.stake, STAKE - STAKE / 10, "forfeited 10%");
    assert_eq!(info.missed, 1);
    assert_eq!(net.c.burned(), STAKE / 10);
    let replaced = net.c.entropy_contributors();
    assert_eq!(replaced.len(), 2);
    assert!(net.events().iter().any(|e| matches!(
        e,
        Event::EntropyWithheld { node, forfeited, missed: 1 }
            if *node == withholder && *forfeited == STAKE / 10
    )));
    net.ripen();
    assert_eq!(net.c.task(id).unwrap().status, TaskStatus::Running);
}

/// Finding 2: two colluders voting `InvalidArgs` on a valid task earn
/// nothing; the creator gets everything back.
#[ink::test]
fn two_invalid_args_votes_farm_nothing() {
    let mut net = Net::new();
    net.nodes(&[10, 11, 12], 24);
    let id = net.started_task(acct(APP), 1);
    let nodes = net.selected(id);
    net.commit(id, nodes[0], Outcome::InvalidArgs).unwrap();
    net.commit(id, nodes[1], Outcome::InvalidArgs).unwrap();
    net.commit(id, nodes[2], phash(1, 5)).unwrap();
    for n in &nodes {
        net.reveal(id, *n).unwrap();
    }
    assert_eq!(
        net.c.task(id).unwrap().status,
        TaskStatus::Aborted(AbortReason::InvalidArgs)
    );
    assert_eq!(net.balance(nodes[0]) + net.balance(nodes[1]), 0);
    assert_eq!(net.balance(acct(APP)), FEE);
}

/// Finding 4: tasks nobody could run (arguments that never arrive, a model
/// no node has) no longer lock nodes or kick them out.
#[ink::test]
fn unrunnable_tasks_do_not_kick_out_honest_nodes() {
    let mut net = Net::new();
    net.nodes(&[10, 11, 12], 24);
    for _ in 0..5 {
        let id = net.started_task(acct(APP), 1);
        net.at(net.c.task(id).unwrap().deadline + 1);
        // Anyone, not only the creator, frees the nodes past the deadline.
        net.as_(acct(STRANGER)).cancel(id).unwrap();
        assert_eq!(
            net.c.task(id).unwrap().status,
            TaskStatus::Aborted(AbortReason::Timeout)
        );
    }
    for n in [10, 11, 12] {
        let info = net.c.node_info(acct(n)).unwrap();
        assert_eq!((info.status, info.missed), (NodeStatus::Available, 0));
    }
}

/// Finding 5: a committed node that sees it lost and stays silent pays:
/// it forfeits part of its stake (and its share goes back to the creator).
#[ink::test]
fn withholding_a_reveal_forfeits_stake() {
    let mut net = Net::new();
    net.nodes(&[10, 11, 12], 24);
    let id = net.started_task(acct(APP), 1);
    let nodes = net.selected(id);
    net.commit(id, nodes[0], phash(1, 5)).unwrap();
    net.commit(id, nodes[1], phash(1, 5)).unwrap();
    net.commit(id, nodes[2], phash(1, 0xff)).unwrap();
    net.reveal(id, nodes[0]).unwrap();
    net.reveal(id, nodes[1]).unwrap();
    // nodes[2] would be slashed if it revealed; it stays silent instead.
    net.as_(nodes[0]).confirm_upload(id, None).unwrap();
    net.at(net.c.task(id).unwrap().deadline + TIMEOUT + 1);
    net.as_(acct(STRANGER)).cancel(id).unwrap();
    let info = net.c.node_info(nodes[2]).unwrap();
    assert_eq!(info.stake, STAKE - STAKE / 10);
    assert_eq!(info.missed, 1);
    assert_eq!(net.c.burned(), STAKE / 10);
    assert!(net.events().contains(&Event::StakeForfeited {
        task_id: id,
        node: nodes[2],
        amount: STAKE / 10,
    }));
}

/// Finding 7: a task no class can serve is refused, and a queued task that
/// cannot start expires with a full refund instead of squatting the queue.
#[ink::test]
fn unstartable_tasks_cannot_squat_the_queue() {
    let mut net = Net::new();
    net.fund(acct(APP), 2 * FEE);
    assert_eq!(
        net.as_(acct(APP))
            .create_task(TaskType::StableDiffusion, [1; 32], u32::MAX, 1, FEE),
        Err(Error::VramTooHigh)
    );
    let id = net
        .as_(acct(APP))
        .create_task(TaskType::StableDiffusion, [1; 32], MAX_TASK_VRAM_GB, 1, FEE)
        .unwrap();
    net.nodes(&[10, 11, 12], 24);
    assert_eq!(net.c.queue(), vec![id], "no 80 GB node: it waits");
    net.at(net.now() + params().queue_ttl_ms + 1);
    net.nodes(&[13], 24);
    assert_eq!(
        net.c.task(id).unwrap().status,
        TaskStatus::Aborted(AbortReason::Expired)
    );
    assert!(net.c.queue().is_empty());
    assert_eq!(net.balance(acct(APP)), 2 * FEE, "expiry refunds in full");
}

/// Finding 8: VRAM figures fall into fixed classes, so a hundred made-up
/// sizes neither exhaust an index nor block an honest join.
#[ink::test]
fn made_up_vram_sizes_do_not_block_joins() {
    let mut net = Net::new();
    for (i, vram) in (4..104u32).enumerate() {
        let node = AccountId::from([(i + 10) as u8; 32]);
        net.fund(node, STAKE);
        net.join(node, vram).unwrap();
        net.as_(node).pause().unwrap();
        net.as_(node).resume().unwrap();
    }
    net.fund(acct(5), STAKE);
    net.join(acct(5), 13).unwrap();
    assert_eq!(net.join(acct(6), 3), Err(Error::InvalidGpu));
    // 12..=15 GB and the 13 GB node count as 12 GB: they serve 12 GB
    // tasks, not 16 GB ones.
    assert_eq!(
        net.c.available_capacity(12) - net.c.available_capacity(16),
        5
    );
}

/// Finding 9: a parameter change never applies to a running task: an honest
/// node that agreed under the task's threshold is paid, not slashed.
#[ink::test]
fn a_parameter_change_does_not_reach_running_tasks() {
    let mut net = Net::new();
    net.nodes(&[10, 11, 12], 24);
    let id = net.started_task(acct(APP), 1);
    let nodes = net.selected(id);
    let close = Outcome::Images(vec![5, 5, 5, 5, 5, 5, 5, 5 ^ 0b111]);
    net.commit(id, nodes[0], phash(1, 5)).unwrap();
    net.commit(id, nodes[1], phash(1, 5)).unwrap();
    net.commit(id, nodes[2], close).unwrap();
    net.reveal(id, nodes[0]).unwrap();
    net.reveal(id, nodes[1]).unwrap();
    net.as_(acct(OWNER))
        .set_params(Params {
            distance_threshold: 0,
            ..params()
        })
        .unwrap();
    net.reveal(id, nodes[2]).unwrap();
    assert_eq!(status(&net, nodes[2]), NodeStatus::Available);
    assert_eq!(net.c.burned(), 0);
    assert!(net.balance(nodes[2]) > 0, "paid under the task's own rules");
}

/// Finding 11: each batch takes exactly its designated contributions, so a
/// create/cancel loop cannot make every idle node pay for a transaction.
#[ink::test]
fn a_create_cancel_loop_costs_the_attacker_not_the_nodes() {
    let mut net = Net::new();
    net.nodes(&[10, 11, 12, 13, 14, 15], 24);
    net.fund(acct(APP), 10 * FEE);
    for _ in 0..10 {
        let id = net.create(acct(APP), 1, FEE).unwrap();
        assert_eq!(net.c.entropy_contributors().len(), 2);
        net.as_(acct(APP)).cancel(id).unwrap();
        assert!(!net.c.entropy_needed(), "nothing left to contribute to");
        for n in 10..16 {
            assert_eq!(
                net.contribute(acct(n)),
                Err(Error::EntropyNotNeeded),
                "refused in the dry run: no fee"
            );
        }
    }
    assert_eq!(net.balance(acct(APP)), 10 * FEE - 10 * (FEE / 100));
    assert_eq!(net.c.burned(), 10 * (FEE / 100));
}

/// Runs the audit queued for `task`: the drawn auditors commit and reveal
/// `outcomes` (in draw order; `None` stays silent), then the deadlines pass.
fn run_audit(net: &mut Net, task: TaskId, outcomes: [Option<Outcome>; 3]) -> Vec<AccountId> {
    let audit = net
        .c
        .task(task)
        .unwrap()
        .audit
        .expect("an audit was opened");
    net.ripen();
    let auditors = net.selected(audit);
    assert_eq!(auditors.len(), 3);
    let judged = net.c.task(task).unwrap().nodes;
    assert!(
        auditors.iter().all(|a| !judged.contains(a)),
        "an audit is run by other nodes"
    );
    for (a, o) in auditors.iter().zip(&outcomes) {
        if let Some(o) = o {
            net.commit(audit, *a, o.clone()).unwrap();
        }
    }
    let committed: Vec<AccountId> = auditors
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| o.is_some())
        .map(|(a, _)| *a)
        .collect();
    if committed.len() < 3 {
        // Reveals open at the deadline when a node stayed silent.
        net.at(net.c.task(audit).unwrap().deadline + 1);
    }
    if committed.len() >= 2 {
        for a in &committed {
            net.reveal(audit, *a).unwrap();
        }
    }
    if !net.c.task(audit).unwrap().status.is_final() {
        net.at(net.c.task(audit).unwrap().deadline + TIMEOUT + 1);
        net.as_(acct(STRANGER)).cancel(audit).unwrap();
    }
    auditors
}

/// A task decided by a colluding pair with a made-up result, against one
/// honest node that reveals the real one.
fn pair_decides(net: &mut Net) -> (TaskId, [AccountId; 2], AccountId) {
    net.nodes(&[10, 11, 12, 13, 14, 15, 16], 24);
    let id = net.started_task(acct(APP), 1);
    let s = net.selected(id);
    net.commit(id, s[0], phash(1, 0xff)).unwrap();
    net.commit(id, s[1], phash(1, 0xff)).unwrap();
    net.commit(id, s[2], phash(1, 0x00)).unwrap();
    for n in &s {
        net.reveal(id, *n).unwrap();
    }
    net.as_(s[0]).confirm_upload(id, None).unwrap();
    (id, [s[0], s[1]], s[2])
}

/// Finding 3: a colluding pair can no longer slash the honest third. The
/// honest node's contradicting reveal opens an audit; three other nodes
/// agree with it; the pair loses both stakes, which make the creator whole,
/// pay the honest node its share and the auditors theirs.
#[ink::test]
fn a_colluding_pair_is_caught_by_the_audit_and_pays_for_it() {
    let mut net = Net::new();
    let (id, pair, honest) = pair_decides(&mut net);
    assert_eq!(net.c.burned(), 0, "nobody slashed on the 2-vs-1");
    let pair_fees: u128 = pair.iter().map(|p| net.balance(*p)).sum();
    assert!(pair_fees > 0, "the pair was paid at decision time");
    let auditors = run_audit(&mut net, id, [Some(phash(1, 0)), Some(phash(1, 0)), None]);
    for p in pair {
        let info = net.c.node_info(p).unwrap();
        assert_eq!((info.status, info.stake), (NodeStatus::Quit, 0));
    }
    let info = net.c.node_info(honest).unwrap();
    assert_eq!((info.stake, info.disputes), (STAKE, 0));
    assert_eq!(net.balance(honest), fee_share(FEE, 2), "its share, late");
    assert_eq!(net.balance(acct(APP)), FEE, "the creator is made whole");
    let audit_pay: u128 = auditors.iter().map(|a| net.balance(*a)).sum();
    assert_eq!(audit_pay, fee_share(FEE, 0) + fee_share(FEE, 1));
    // The pair's net: fees taken minus two stakes.
    assert!(pair_fees < 2 * STAKE);
    // The two stakes paid the pair's fees back to the creator, the honest
    // node's share and the auditors' (together a fee and a half, give or
    // take rounding); the rest is burned.
    assert_eq!(net.c.burned(), 2 * STAKE - FEE - audit_pay);
}

/// Finding 3: a pair member that quits before the audit does not escape:
/// its stake is held until the audit resolves.
#[ink::test]
fn a_pair_member_cannot_quit_with_its_stake_before_the_audit() {
    let mut net = Net::new();
    let (id, pair, _) = pair_decides(&mut net);
    assert_eq!(net.c.node_info(pair[1]).unwrap().disputes, 1);
    net.as_(pair[1]).quit().unwrap();
    let info = net.c.node_info(pair[1]).unwrap();
    assert_eq!((info.status, info.stake), (NodeStatus::Quit, STAKE));
    assert_eq!(net.balance(pair[1]), fee_share(FEE, 1), "only its fee left");
    assert_eq!(net.join(pair[1], 24), Err(Error::InDispute));
    run_audit(&mut net, id, [Some(phash(1, 0)), Some(phash(1, 0)), None]);
    assert_eq!(net.c.node_info(pair[1]).unwrap().stake, 0, "slashed");
    assert_eq!(net.balance(pair[1]), fee_share(FEE, 1));
}

/// An audit that reaches no consensus judges nobody: every hold ends and
/// nobody is slashed.
#[ink::test]
fn an_inconclusive_audit_slashes_nobody() {
    let mut net = Net::new();
    let (id, pair, honest) = pair_decides(&mut net);
    run_audit(&mut net, id, [Some(phash(1, 0x0f)), None, None]);
    assert_eq!(net.c.burned(), 0);
    for n in [pair[0], pair[1], honest] {
        let info = net.c.node_info(n).unwrap();
        assert_eq!((info.stake, info.disputes), (STAKE, 0));
    }
}

/// A relay receipt key and a signer of receipts for it.
fn relay_key() -> (secp256k1::SecretKey, [u8; 33]) {
    let secret = secp256k1::SecretKey::from_slice(&[0x42; 32]).unwrap();
    let public = secp256k1::PublicKey::from_secret_key(secp256k1::SECP256K1, &secret);
    (secret, public.serialize())
}

fn receipt(secret: &secp256k1::SecretKey, task: TaskId, result: &[u8]) -> [u8; 65] {
    let hash = blake2_256(&hydrogen_types::upload_receipt_message(task, result));
    let message = secp256k1::Message::from_digest(hash);
    let (id, sig) = secp256k1::SECP256K1
        .sign_ecdsa_recoverable(&message, secret)
        .serialize_compact();
    let mut out = [0u8; 65];
    out[..64].copy_from_slice(&sig);
    out[64] = id.to_i32() as u8;
    out
}

/// Finding 6: with the relay's key registered, the uploader is paid only
/// against the relay's receipt for exactly this task's accepted result.
#[ink::test]
fn an_uploader_is_paid_only_against_the_relays_receipt() {
    let mut net = Net::new();
    let (secret, public) = relay_key();
    assert_eq!(
        net.as_(acct(STRANGER)).set_relay_key(Some(public)),
        Err(Error::NotOwner)
    );
    net.as_(acct(OWNER)).set_relay_key(Some(public)).unwrap();
    assert_eq!(net.c.relay_key(), Some(public));
    let (id, _) = all_agree(&mut net);
    let uploader = net.c.task(id).unwrap().uploader.unwrap();
    let result = vec![5u8; 8];
    let forged = {
        let other = secp256k1::SecretKey::from_slice(&[0x07; 32]).unwrap();
        receipt(&other, id, &result)
    };
    for bad in [
        None,
        Some(forged),
        Some(receipt(&secret, id + 1, &result)),
        Some(receipt(&secret, id, &[6u8; 8])),
    ] {
        assert_eq!(
            net.as_(uploader).confirm_upload(id, bad),
            Err(Error::BadReceipt)
        );
    }
    net.as_(uploader)
        .confirm_upload(id, Some(receipt(&secret, id, &result)))
        .unwrap();
    assert_eq!(net.c.task(id).unwrap().status, TaskStatus::Completed);
}

/// Finding 6: an uploader that withholds the images earns nothing, and the
/// other agreeing node uploads instead and earns the uploader's share.
#[ink::test]
fn a_withholding_uploader_is_replaced_by_the_other_agreeing_node() {
    let mut net = Net::new();
    let (id, nodes) = all_agree(&mut net);
    let first = net.c.task(id).unwrap().uploader.unwrap();
    assert_eq!(first, nodes[0], "the first committer uploads");
    let before = net.balance(nodes[1]);
    net.at(net.now() + TIMEOUT + 1);
    net.as_(acct(STRANGER)).cancel(id).unwrap();
    let stand_in = net.c.task(id).unwrap().uploader.unwrap();
    assert_eq!(stand_in, nodes[1]);
    assert!(net.events().contains(&Event::UploaderReplaced {
        task_id: id,
        uploader: nodes[1],
    }));
    assert_eq!(net.c.node_info(first).unwrap().missed, 1);
    net.as_(stand_in).confirm_upload(id, None).unwrap();
    assert_eq!(net.balance(nodes[1]) - before, fee_share(FEE, 0));
    assert_eq!(net.balance(first), 0, "nothing for withholding");
    assert_eq!(net.c.task(id).unwrap().status, TaskStatus::Completed);
}
