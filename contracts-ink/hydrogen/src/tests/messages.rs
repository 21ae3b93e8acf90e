//! One test per message and per failure path.

use super::*;
use hydrogen_types::{fee_share, AbortReason, NodeCounts, NodeStatus, TaskStatus, MAX_IMAGES};
use psp22::{PSP22Error, PSP22Metadata, PSP22};

const APP: u8 = 1;
const APP2: u8 = 2;
const STRANGER: u8 = 99;

fn status(net: &Net, n: u8) -> NodeStatus {
    net.c
        .node_info(acct(n))
        .map(|i| i.status)
        .unwrap_or(NodeStatus::Quit)
}

/// Five nodes (10..=14), a started 1-image task from APP; returns (id, selected).
fn running_task(net: &mut Net) -> (TaskId, Vec<AccountId>) {
    net.nodes(&[10, 11, 12, 13, 14], 24);
    let id = net.started_task(acct(APP), 1);
    assert_eq!(net.c.task(id).unwrap().status, TaskStatus::Running);
    (id, net.selected(id))
}

#[ink::test]
fn constructor_mints_to_the_owner_and_stores_params() {
    let net = Net::new();
    assert_eq!(net.c.owner(), acct(OWNER));
    assert_eq!(net.c.params(), params());
    assert_eq!(net.c.total_supply(), 1_000_000 * UNIT);
    assert_eq!(net.balance(acct(OWNER)), 1_000_000 * UNIT);
    assert_eq!(net.c.token_symbol().as_deref(), Some("HYD"));
    assert_eq!(net.c.token_name().as_deref(), Some("Hydrogen"));
    assert_eq!(net.c.token_decimals(), 12);
    assert_eq!(net.c.burned(), 0);
}

#[ink::test]
fn constructor_refuses_invalid_params_with_an_error() {
    let bad = Params {
        max_queue: 0,
        ..params()
    };
    assert_eq!(
        Hydrogen::new(bad, 1).err(),
        Some(Error::InvalidParams),
        "an error other tools decode, not a trap"
    );
}

#[ink::test]
fn governance_is_owner_only() {
    let mut net = Net::new();
    let p = Params {
        distance_threshold: 12,
        ..params()
    };
    assert_eq!(net.as_(acct(STRANGER)).set_params(p), Err(Error::NotOwner));
    assert_eq!(
        net.as_(acct(STRANGER)).mint(acct(STRANGER), 1),
        Err(Error::NotOwner)
    );
    assert_eq!(
        net.as_(acct(STRANGER)).transfer_ownership(acct(STRANGER)),
        Err(Error::NotOwner)
    );
    assert_eq!(
        net.as_(acct(STRANGER)).disable_minting(),
        Err(Error::NotOwner)
    );
    assert_eq!(
        net.as_(acct(OWNER))
            .set_params(Params { timeout_ms: 0, ..p }),
        Err(Error::InvalidParams)
    );
    assert_eq!(
        net.as_(acct(OWNER)).set_params(Params {
            max_queue: 10_000,
            ..p
        }),
        Err(Error::InvalidParams)
    );
    assert_eq!(net.as_(acct(OWNER)).set_params(p), Ok(()));
    assert_eq!(net.c.params(), p);
    assert!(net.events().contains(&Event::ParamsUpdated { params: p }));
    // Two steps: an offer changes nothing until the offered account accepts.
    net.as_(acct(OWNER)).transfer_ownership(acct(APP)).unwrap();
    assert_eq!(net.c.owner(), acct(OWNER));
    assert_eq!(
        net.as_(acct(STRANGER)).accept_ownership(),
        Err(Error::NotPendingOwner)
    );
    net.as_(acct(APP)).accept_ownership().unwrap();
    assert_eq!(net.c.owner(), acct(APP));
    assert_eq!(
        net.as_(acct(APP)).accept_ownership(),
        Err(Error::NotPendingOwner),
        "an offer is used once"
    );
    assert_eq!(
        net.as_(acct(OWNER)).mint(acct(OWNER), 1),
        Err(Error::NotOwner)
    );
    net.as_(acct(APP)).mint(acct(STRANGER), 5).unwrap();
    assert_eq!(net.balance(acct(STRANGER)), 5);
    net.as_(acct(APP)).disable_minting().unwrap();
    assert_eq!(
        net.as_(acct(APP)).mint(acct(STRANGER), 5),
        Err(Error::MintingDisabled),
        "the supply is fixed for good"
    );
}

#[ink::test]
fn parameters_are_bounded() {
    let mut net = Net::new();
    for bad in [
        Params {
            required_stake: 0,
            ..params()
        },
        Params {
            distance_threshold: 64,
            ..params()
        },
        Params {
            max_missed: 200,
            ..params()
        },
        Params {
            silence_penalty_percent: 101,
            ..params()
        },
        Params {
            timeout_ms: 30 * 24 * 3_600_000,
            ..params()
        },
        Params {
            queue_ttl_ms: 0,
            ..params()
        },
    ] {
        assert_eq!(
            net.as_(acct(OWNER)).set_params(bad),
            Err(Error::InvalidParams),
            "{bad:?}"
        );
    }
}

#[ink::test]
fn psp22_transfers_and_allowances() {
    let mut net = Net::new();
    net.fund(acct(APP), 100);
    assert_eq!(
        net.as_(acct(APP)).transfer(acct(APP2), 101, vec![]),
        Err(PSP22Error::InsufficientBalance)
    );
    net.as_(acct(APP)).transfer(acct(APP2), 40, vec![]).unwrap();
    assert_eq!((net.balance(acct(APP)), net.balance(acct(APP2))), (60, 40));
    assert_eq!(
        net.as_(acct(STRANGER))
            .transfer_from(acct(APP), acct(STRANGER), 10, vec![]),
        Err(PSP22Error::InsufficientAllowance)
    );
    net.as_(acct(APP)).approve(acct(STRANGER), 10).unwrap();
    net.as_(acct(APP))
        .increase_allowance(acct(STRANGER), 5)
        .unwrap();
    net.as_(acct(APP))
        .decrease_allowance(acct(STRANGER), 3)
        .unwrap();
    assert_eq!(net.c.allowance(acct(APP), acct(STRANGER)), 12);
    net.as_(acct(STRANGER))
        .transfer_from(acct(APP), acct(STRANGER), 12, vec![])
        .unwrap();
    assert_eq!(net.balance(acct(STRANGER)), 12);
    assert_eq!(net.c.allowance(acct(APP), acct(STRANGER)), 0);
}

#[ink::test]
fn join_stakes_and_indexes_the_node() {
    let mut net = Net::new();
    assert_eq!(net.join(acct(10), 24), Err(Error::InsufficientBalance));
    net.fund(acct(10), STAKE + 5);
    assert_eq!(
        net.as_(acct(10)).join(String::new(), 24, 1, [0; 32]),
        Err(Error::InvalidGpu)
    );
    assert_eq!(
        net.as_(acct(10)).join("gpu".into(), 0, 1, [0; 32]),
        Err(Error::InvalidGpu)
    );
    assert_eq!(
        net.as_(acct(10)).join("x".repeat(65), 8, 1, [0; 32]),
        Err(Error::InvalidGpu)
    );
    net.join(acct(10), 24).unwrap();
    assert_eq!(net.join(acct(10), 24), Err(Error::AlreadyJoined));
    assert_eq!(net.balance(acct(10)), 5);
    assert_eq!(net.balance(acct(CONTRACT)), STAKE);
    let info = net.c.node_info(acct(10)).unwrap();
    assert_eq!(
        (info.status, info.stake, info.vram_gb, info.current_task),
        (NodeStatus::Available, STAKE, 24, None)
    );
    assert_eq!(
        net.c.node_counts(),
        NodeCounts {
            available: 1,
            busy: 0,
            paused: 0
        }
    );
    assert_eq!(net.c.available_capacity(24), 1);
    assert_eq!(net.c.available_capacity(25), 0);
    assert!(net.events().contains(&Event::NodeStatusChanged {
        node: acct(10),
        status: NodeStatus::Available
    }));
}

#[ink::test]
fn pause_resume_quit_when_idle() {
    let mut net = Net::new();
    assert_eq!(net.as_(acct(10)).pause(), Err(Error::NotJoined));
    assert_eq!(net.as_(acct(10)).resume(), Err(Error::NotJoined));
    assert_eq!(net.as_(acct(10)).quit(), Err(Error::NotJoined));
    net.nodes(&[10], 8);
    assert_eq!(net.as_(acct(10)).resume(), Err(Error::WrongNodeStatus));
    net.as_(acct(10)).pause().unwrap();
    assert_eq!(net.as_(acct(10)).pause(), Err(Error::WrongNodeStatus));
    assert_eq!(
        net.c.node_counts(),
        NodeCounts {
            available: 0,
            busy: 0,
            paused: 1
        }
    );
    assert_eq!(net.c.available_capacity(0), 0);
    net.as_(acct(10)).resume().unwrap();
    assert_eq!(net.c.available_capacity(0), 1);
    net.as_(acct(10)).quit().unwrap();
    assert_eq!(status(&net, 10), NodeStatus::Quit);
    assert_eq!(net.balance(acct(10)), STAKE, "stake refunded");
    assert_eq!(net.c.node_counts(), NodeCounts::default());
    // A node may come back.
    net.join(acct(10), 8).unwrap();
    assert_eq!(status(&net, 10), NodeStatus::Available);
}

#[ink::test]
fn entropy_needs_a_matching_ticket_and_a_node_taking_tasks() {
    let mut net = Net::new();
    assert_eq!(net.contribute(acct(10)), Err(Error::NotJoined));
    net.nodes(&[10, 11, 12, 13], 8);
    assert_eq!(
        net.as_(acct(10)).contribute_entropy([1; 32], [0; 32]),
        Err(Error::TicketMismatch)
    );
    net.fund(acct(APP), FEE);
    let id = net.create(acct(APP), 1, FEE).unwrap();
    assert!(net.c.entropy_needed());
    let designated = net.c.entropy_contributors();
    // A designated node that paused may not contribute (a paused Sybil
    // must not steer draws it takes no part in).
    net.as_(designated[0]).pause().unwrap();
    assert_eq!(net.contribute(designated[0]), Err(Error::WrongNodeStatus));
    net.as_(designated[0]).resume().unwrap();
    net.ripen();
    assert_eq!(net.c.task(id).unwrap().status, TaskStatus::Running);
    assert!(net.events().contains(&Event::EntropyContributed {
        node: designated[1]
    }));
}

#[ink::test]
fn create_task_validates_and_escrows() {
    let mut net = Net::new();
    net.fund(acct(APP), 3 * FEE);
    assert_eq!(net.create(acct(APP), 0, FEE), Err(Error::InvalidNumImages));
    assert_eq!(
        net.create(acct(APP), MAX_IMAGES + 1, FEE),
        Err(Error::InvalidNumImages)
    );
    assert_eq!(
        net.create(acct(APP), 1, params().min_fee - 1),
        Err(Error::FeeTooLow)
    );
    assert_eq!(
        net.create(acct(APP), 1, 4 * FEE),
        Err(Error::InsufficientBalance)
    );
    let id = net.create(acct(APP), 2, FEE).unwrap();
    assert_eq!(id, 1);
    assert_eq!(net.balance(acct(APP)), 2 * FEE);
    assert_eq!(net.balance(acct(CONTRACT)), FEE);
    let t = net.c.task(id).unwrap();
    assert_eq!(
        (t.status, t.fee, t.num_images, t.creator),
        (TaskStatus::Queued, FEE, 2, acct(APP))
    );
    assert_eq!(net.c.queue(), vec![id]);
    assert!(net.events().iter().any(|e| matches!(
        e,
        Event::TaskCreated {
            task_id: 1,
            fee: FEE,
            ..
        }
    )));
}

#[ink::test]
fn a_full_queue_evicts_the_cheapest_with_a_full_refund() {
    let mut net = Net::with(Params {
        max_queue: 2,
        ..params()
    });
    net.fund(acct(APP), 10 * FEE);
    let a = net.create(acct(APP), 1, FEE).unwrap();
    let b = net.create(acct(APP), 1, 2 * FEE).unwrap();
    assert_eq!(net.c.queue(), vec![b, a], "best price first");
    assert_eq!(net.create(acct(APP), 1, FEE), Err(Error::QueueFull));
    let c = net.create(acct(APP), 1, 3 * FEE).unwrap();
    assert_eq!(net.c.queue(), vec![c, b]);
    assert_eq!(
        net.c.task(a).unwrap().status,
        TaskStatus::Aborted(AbortReason::Evicted)
    );
    assert_eq!(
        net.balance(acct(APP)),
        10 * FEE - 5 * FEE,
        "a's fee came back"
    );
    let ev = net.events();
    assert!(ev.contains(&Event::Refunded {
        task_id: a,
        creator: acct(APP),
        amount: FEE
    }));
}

/// Indexers can filter by task, node and creator: they are topics of the
/// event carrier — the task id as a little-endian `u64`, zero-padded; an
/// account as its 32 bytes; 32 zero bytes where the event has none.
#[ink::test]
fn events_carry_task_node_and_creator_topics() {
    let mut net = Net::new();
    net.fund(acct(APP), FEE);
    let id = net.create(acct(APP), 1, FEE).unwrap();
    let topics: Vec<Vec<Vec<u8>>> = test::recorded_events()
        .filter(|e| {
            e.topics.first().map(|t| t.as_slice()) == Some(EVENT_SIGNATURE_TOPIC.as_slice())
        })
        .map(|e| e.topics)
        .collect();
    let mut task = vec![0u8; 32];
    task[..8].copy_from_slice(&id.to_le_bytes());
    assert_eq!(
        topics,
        vec![vec![
            EVENT_SIGNATURE_TOPIC.to_vec(),
            task,
            vec![0; 32],
            acct(APP).0.to_vec()
        ]],
        "TaskCreated: task {id}, no node, creator APP"
    );
}

#[ink::test]
fn cancelling_a_queued_task_refunds_all_but_the_cancellation_fee() {
    let mut net = Net::new();
    net.fund(acct(APP), FEE);
    let id = net.create(acct(APP), 1, FEE).unwrap();
    assert_eq!(net.as_(acct(STRANGER)).cancel(id), Err(Error::NotAllowed));
    assert_eq!(net.as_(acct(APP)).cancel(99), Err(Error::TaskNotFound));
    net.as_(acct(APP)).cancel(id).unwrap();
    assert_eq!(net.balance(acct(APP)), FEE - FEE / 100);
    assert_eq!(net.c.burned(), FEE / 100);
    assert_eq!(net.c.total_supply(), 1_000_000 * UNIT + FEE - FEE / 100);
    assert_eq!(
        net.c.task(id).unwrap().status,
        TaskStatus::Aborted(AbortReason::Cancelled)
    );
    assert!(net.c.queue().is_empty());
    assert_eq!(net.as_(acct(APP)).cancel(id), Err(Error::WrongTaskStatus));
}

#[ink::test]
fn selection_takes_three_distinct_nodes_with_enough_vram() {
    let mut net = Net::new();
    net.nodes(&[10, 11], 8);
    net.nodes(&[20, 21, 22], 24);
    net.fund(acct(APP), FEE);
    let id = net
        .as_(acct(APP))
        .create_task(TaskType::StableDiffusion, [1; 32], 16, 1, FEE)
        .unwrap();
    net.ripen();
    let mut chosen = net.selected(id);
    chosen.sort();
    assert_eq!(chosen, vec![acct(20), acct(21), acct(22)]);
    let t = net.c.task(id).unwrap();
    assert_eq!(t.deadline, net.now() + TIMEOUT);
    for n in [20, 21, 22] {
        assert_eq!(status(&net, n), NodeStatus::Busy);
        assert_eq!(net.c.node_info(acct(n)).unwrap().current_task, Some(id));
    }
    assert_eq!(
        net.c.node_counts(),
        NodeCounts {
            available: 2,
            busy: 3,
            paused: 0
        }
    );
    let selected = net
        .events()
        .iter()
        .filter(|e| matches!(e, Event::NodeSelected { .. }))
        .count();
    assert_eq!(selected, 3);
}

#[ink::test]
fn a_task_is_armed_when_three_nodes_are_free_and_drawn_after_two_fresh_contributions() {
    let mut net = Net::new();
    net.nodes(&[10, 11], 8);
    net.fund(acct(APP), FEE);
    let id = net.create(acct(APP), 1, FEE).unwrap();
    assert!(
        !net.c.entropy_needed(),
        "two nodes cannot serve it: not armed"
    );
    assert_eq!(net.contribute(acct(10)), Err(Error::EntropyNotNeeded));
    net.nodes(&[12], 8);
    assert_eq!(net.c.armed(), vec![id]);
    let designated = net.c.entropy_contributors();
    assert_eq!(designated.len(), 2);
    assert_ne!(designated[0], designated[1]);
    assert!(net.events().contains(&Event::TasksArmed {
        tasks: vec![id],
        contributors: designated.clone(),
    }));
    let other = [10, 11, 12]
        .map(acct)
        .into_iter()
        .find(|n| !designated.contains(n))
        .unwrap();
    assert_eq!(
        net.contribute(other),
        Err(Error::EntropyNotNeeded),
        "only the designated contribute"
    );
    net.contribute(designated[0]).unwrap();
    assert_eq!(
        net.contribute(designated[0]),
        Err(Error::EntropyNotNeeded),
        "each contributes once"
    );
    assert_eq!(
        net.c.task(id).unwrap().status,
        TaskStatus::Queued,
        "one node alone never completes the entropy"
    );
    net.contribute(designated[1]).unwrap();
    assert_eq!(net.c.task(id).unwrap().status, TaskStatus::Running);
    assert!(!net.c.entropy_needed());
    assert!(net.c.entropy_contributors().is_empty());
}

#[ink::test]
fn honest_lifecycle_pays_by_commit_order() {
    let mut net = Net::new();
    let (id, nodes) = running_task(&mut net);
    let before: Vec<u128> = nodes.iter().map(|n| net.balance(*n)).collect();
    // Commit order: nodes[2], nodes[0], nodes[1].
    for &i in &[2usize, 0, 1] {
        net.commit(id, nodes[i], phash(1, 0x5a)).unwrap();
    }
    assert!(net
        .events()
        .contains(&Event::CommitmentsReady { task_id: id }));
    net.reveal(id, nodes[0]).unwrap();
    net.reveal(id, nodes[2]).unwrap();
    let t = net.c.task(id).unwrap();
    assert_eq!(t.status, TaskStatus::Succeeded);
    assert_eq!(
        t.uploader,
        Some(nodes[2]),
        "the first committer of the agreeing pair uploads"
    );
    assert_eq!(t.result, Some(vec![0x5a; 8]));
    net.reveal(id, nodes[1]).unwrap();
    assert_eq!(
        net.as_(nodes[0]).confirm_upload(id, None),
        Err(Error::NotUploader)
    );
    net.as_(nodes[2]).confirm_upload(id, None).unwrap();
    assert_eq!(net.c.task(id).unwrap().status, TaskStatus::Completed);
    let gained: Vec<u128> = nodes
        .iter()
        .zip(&before)
        .map(|(n, b)| net.balance(*n) - b)
        .collect();
    assert_eq!(gained, vec![FEE * 9 / 25, FEE * 6 / 25, FEE * 10 / 25]);
    assert_eq!(
        net.balance(acct(APP)),
        0,
        "nothing left to refund: 40 + 36 + 24 = 100 %"
    );
    assert_eq!(net.balance(acct(CONTRACT)), 5 * STAKE, "only stakes remain");
    for n in &nodes {
        assert_eq!(net.c.node_info(*n).unwrap().status, NodeStatus::Available);
    }
    let ev = net.events();
    assert!(ev.contains(&Event::ResultsUploaded {
        task_id: id,
        node: nodes[2]
    }));
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::NodePaid { .. }))
            .count(),
        3
    );
    assert_eq!(
        net.as_(nodes[2]).confirm_upload(id, None),
        Err(Error::WrongTaskStatus)
    );
}

#[ink::test]
fn commit_failure_paths() {
    let mut net = Net::new();
    assert_eq!(
        net.as_(acct(10)).commit(1, [0; 32]),
        Err(Error::TaskNotFound)
    );
    net.nodes(&[10, 11, 12], 8);
    net.fund(acct(APP), FEE);
    let queued = net.create(acct(APP), 1, FEE).unwrap();
    assert_eq!(
        net.as_(acct(10)).commit(queued, [0; 32]),
        Err(Error::WrongTaskStatus)
    );
    net.ripen();
    let nodes = net.selected(queued);
    assert_eq!(
        net.as_(acct(STRANGER)).commit(queued, [0; 32]),
        Err(Error::NotSelected)
    );
    net.commit(queued, nodes[0], phash(1, 1)).unwrap();
    assert_eq!(
        net.commit(queued, nodes[0], phash(1, 1)),
        Err(Error::AlreadyCommitted)
    );
    net.at(net.now() + TIMEOUT + 1);
    assert_eq!(
        net.commit(queued, nodes[1], phash(1, 1)),
        Err(Error::DeadlinePassed)
    );
}

#[ink::test]
fn reveal_failure_paths() {
    let mut net = Net::new();
    let (id, nodes) = running_task(&mut net);
    assert_eq!(
        net.as_(acct(STRANGER)).reveal(id, phash(1, 0), [0; 32]),
        Err(Error::NotSelected)
    );
    assert_eq!(
        net.as_(nodes[0]).reveal(id, phash(1, 0), [0; 32]),
        Err(Error::NotCommitted)
    );
    assert_eq!(
        net.as_(nodes[0]).reveal(77, phash(1, 0), [0; 32]),
        Err(Error::TaskNotFound)
    );
    net.commit(id, nodes[0], phash(1, 3)).unwrap();
    net.commit(id, nodes[1], phash(1, 3)).unwrap();
    assert_eq!(
        net.reveal(id, nodes[0]),
        Err(Error::RevealNotOpen),
        "a reveal before all commit could be copied"
    );
    net.commit(id, nodes[2], phash(1, 3)).unwrap();
    assert_eq!(
        net.as_(nodes[0]).reveal(id, phash(1, 4), [0; 32]),
        Err(Error::CommitmentMismatch)
    );
    assert_eq!(
        net.as_(nodes[0]).reveal(id, phash(2, 3), [0; 32]),
        Err(Error::ResultLengthMismatch)
    );
    net.reveal(id, nodes[0]).unwrap();
    assert_eq!(net.reveal(id, nodes[0]), Err(Error::AlreadyRevealed));
    net.at(net.c.task(id).unwrap().deadline + TIMEOUT + 1);
    assert_eq!(net.reveal(id, nodes[1]), Err(Error::DeadlinePassed));
}

#[ink::test]
fn another_nodes_commitment_cannot_be_replayed() {
    let mut net = Net::new();
    let (id, nodes) = running_task(&mut net);
    net.commit(id, nodes[0], phash(1, 3)).unwrap();
    net.commit(id, nodes[2], phash(1, 3)).unwrap();
    // nodes[1] copies nodes[0]'s commitment and, after the reveal, its outcome and nonce.
    let (outcome, nonce) = net.nonces.get(&(id, nodes[0])).cloned().unwrap();
    let copied = blake2_256(&commitment_preimage(id, &nodes[0], &outcome, &nonce));
    net.as_(nodes[1]).commit(id, copied).unwrap();
    net.reveal(id, nodes[0]).unwrap();
    assert_eq!(
        net.as_(nodes[1]).reveal(id, outcome, nonce),
        Err(Error::CommitmentMismatch)
    );
}

#[ink::test]
fn a_cheater_is_audited_then_slashed_and_the_audit_paid_from_its_stake() {
    let mut net = Net::new();
    net.nodes(&[10, 11, 12, 13, 14, 15], 24);
    let id = net.started_task(acct(APP), 1);
    let nodes = net.selected(id);
    net.commit(id, nodes[0], phash(1, 0x00)).unwrap();
    net.commit(id, nodes[1], phash(1, 0xff)).unwrap();
    net.commit(id, nodes[2], phash(1, 0x01)).unwrap();
    for n in &nodes {
        net.reveal(id, *n).unwrap();
    }
    // A 2-vs-1 slashes nobody by itself: an audit is queued instead.
    assert_eq!(net.c.burned(), 0);
    let audit = net.c.task(id).unwrap().audit.expect("an audit");
    assert!(net.events().contains(&Event::AuditOpened {
        task_id: id,
        audit,
        disputed: nodes[1],
    }));
    let cheater = net.c.node_info(nodes[1]).unwrap();
    assert_eq!((cheater.stake, cheater.disputes), (STAKE, 1));
    net.as_(nodes[0]).confirm_upload(id, None).unwrap();
    assert_eq!(
        net.balance(acct(APP)),
        FEE * 9 / 25,
        "the disputed (second) share goes back"
    );
    // Three other nodes re-execute the task and agree with the majority.
    assert_eq!(net.c.task(audit).unwrap().audit_of, Some(id));
    net.ripen();
    let auditors = net.selected(audit);
    assert!(auditors.iter().all(|a| !nodes.contains(a)));
    for a in &auditors {
        net.commit(audit, *a, phash(1, 0x00)).unwrap();
    }
    for a in &auditors {
        net.reveal(audit, *a).unwrap();
    }
    assert_eq!(net.c.task(audit).unwrap().status, TaskStatus::Completed);
    let cheater = net.c.node_info(nodes[1]).unwrap();
    assert_eq!((cheater.status, cheater.stake), (NodeStatus::Quit, 0));
    assert!(net.events().contains(&Event::NodeSlashed {
        task_id: id,
        node: nodes[1],
        amount: STAKE
    }));
    // The auditors are paid the task's shares out of the slashed stake; the
    // rest is burned.
    let paid: u128 = auditors.iter().map(|a| net.balance(*a)).sum();
    assert_eq!(paid, (0..3).map(|o| fee_share(FEE, o)).sum::<u128>());
    assert_eq!(net.c.burned(), STAKE - paid);
    assert_eq!(net.balance(nodes[1]), 0);
    for n in [nodes[0], nodes[2]] {
        assert_eq!(net.c.node_info(n).unwrap().disputes, 0, "holds end");
    }
}

#[ink::test]
fn all_different_refunds_and_slashes_nobody() {
    let mut net = Net::new();
    let (id, nodes) = running_task(&mut net);
    for (n, b) in nodes.iter().zip([0x00, 0x0f, 0xf0]) {
        net.commit(id, *n, phash(1, b)).unwrap();
    }
    for n in &nodes {
        net.reveal(id, *n).unwrap();
    }
    assert_eq!(
        net.c.task(id).unwrap().status,
        TaskStatus::Aborted(AbortReason::NoConsensus)
    );
    assert_eq!(net.balance(acct(APP)), FEE);
    assert_eq!(net.c.burned(), 0);
    assert!(nodes
        .iter()
        .all(|n| net.c.node_info(*n).unwrap().status == NodeStatus::Available));
}

#[ink::test]
fn two_invalid_args_votes_abort_earn_nothing_and_never_slash_the_real_result() {
    let mut net = Net::new();
    let (id, nodes) = running_task(&mut net);
    net.commit(id, nodes[0], phash(1, 9)).unwrap();
    net.commit(id, nodes[1], Outcome::InvalidArgs).unwrap();
    net.commit(id, nodes[2], Outcome::InvalidArgs).unwrap();
    for n in &nodes {
        net.reveal(id, *n).unwrap();
    }
    assert_eq!(
        net.c.task(id).unwrap().status,
        TaskStatus::Aborted(AbortReason::InvalidArgs)
    );
    assert_eq!(net.c.burned(), 0);
    assert!(
        nodes.iter().all(|n| net.balance(*n) == 0),
        "nobody is paid for an invalid-arguments decision"
    );
    assert_eq!(
        net.balance(acct(APP)),
        FEE,
        "the creator gets all of it back"
    );
    assert!(nodes
        .iter()
        .all(|n| status(&net, n.0[0]) == NodeStatus::Available));
}

#[ink::test]
fn a_silent_node_is_missed_and_the_task_settles_after_the_deadline() {
    let mut net = Net::new();
    let (id, nodes) = running_task(&mut net);
    net.commit(id, nodes[0], phash(1, 0)).unwrap();
    net.commit(id, nodes[1], phash(1, 0)).unwrap();
    assert_eq!(
        net.as_(acct(APP)).cancel(id),
        Err(Error::DeadlineNotReached)
    );
    net.at(net.c.task(id).unwrap().deadline + 1);
    // Past the deadline the outcome depends only on the clock: anyone may settle.
    net.as_(acct(STRANGER)).cancel(id).unwrap();
    let silent = net.c.node_info(nodes[2]).unwrap();
    assert_eq!((silent.status, silent.missed), (NodeStatus::Available, 1));
    // The two that committed may now reveal and settle.
    net.reveal(id, nodes[0]).unwrap();
    net.reveal(id, nodes[1]).unwrap();
    assert_eq!(net.c.task(id).unwrap().status, TaskStatus::Succeeded);
    net.as_(nodes[0]).confirm_upload(id, None).unwrap();
    assert_eq!(
        net.balance(acct(APP)),
        FEE * 6 / 25,
        "the silent node's share is refunded"
    );
    assert!(net.events().contains(&Event::NodeMissed {
        task_id: id,
        node: nodes[2],
        missed: 1
    }));
}

#[ink::test]
fn a_task_nobody_answers_times_out_with_a_full_refund_and_no_misses() {
    let mut net = Net::new();
    let (id, nodes) = running_task(&mut net);
    net.at(net.c.task(id).unwrap().deadline + 1);
    net.as_(acct(STRANGER)).cancel(id).unwrap();
    assert_eq!(
        net.c.task(id).unwrap().status,
        TaskStatus::Aborted(AbortReason::Timeout)
    );
    assert_eq!(net.balance(acct(APP)), FEE);
    assert_eq!(net.as_(acct(APP)).cancel(id), Err(Error::WrongTaskStatus));
    // Nobody committed: the task could not be run (arguments that never
    // arrived, a model nobody has), so nobody is charged a miss.
    for n in &nodes {
        let info = net.c.node_info(*n).unwrap();
        assert_eq!((info.status, info.missed), (NodeStatus::Available, 0));
    }
    assert!(!net
        .events()
        .iter()
        .any(|e| matches!(e, Event::NodeMissed { .. })));
}

#[ink::test]
fn repeatedly_silent_nodes_are_kicked_out_with_their_stake_and_wait_to_rejoin() {
    let mut net = Net::with(Params {
        max_missed: 2,
        rejoin_cooldown_ms: 10 * TIMEOUT,
        ..params()
    });
    net.nodes(&[10, 11, 12], 8);
    for round in 0..2 {
        let id = net.started_task(acct(APP), 1);
        net.commit(id, acct(10), phash(1, 3)).unwrap();
        net.commit(id, acct(11), phash(1, 3)).unwrap();
        net.at(net.c.task(id).unwrap().deadline + 1);
        net.as_(acct(APP)).cancel(id).unwrap();
        net.reveal(id, acct(10)).unwrap();
        net.reveal(id, acct(11)).unwrap();
        let uploader = net.c.task(id).unwrap().uploader.unwrap();
        net.as_(uploader).confirm_upload(id, None).unwrap();
        let expected = if round == 0 {
            NodeStatus::Available
        } else {
            NodeStatus::Quit
        };
        assert_eq!(status(&net, 12), expected);
    }
    assert_eq!(net.balance(acct(12)), STAKE);
    assert!(net.events().contains(&Event::NodeKickedOut {
        node: acct(12),
        stake_returned: STAKE
    }));
    // Silence must not be free: no rejoining at once with a clean record.
    let until = net.c.node_info(acct(12)).unwrap().rejoin_after;
    assert_eq!(until, net.now() + 10 * TIMEOUT);
    assert_eq!(net.join(acct(12), 8), Err(Error::Cooldown));
    net.at(until);
    net.join(acct(12), 8).unwrap();
    assert_eq!(net.c.node_info(acct(12)).unwrap().missed, 0);
}

#[ink::test]
fn a_twice_missed_upload_refunds_the_uploaders_share() {
    let mut net = Net::new();
    let (id, nodes) = running_task(&mut net);
    for n in &nodes {
        net.commit(id, *n, phash(1, 1)).unwrap();
    }
    for n in &nodes {
        net.reveal(id, *n).unwrap();
    }
    assert_eq!(
        net.as_(acct(APP)).cancel(id),
        Err(Error::DeadlineNotReached)
    );
    net.at(net.now() + TIMEOUT + 1);
    assert_eq!(
        net.as_(nodes[0]).confirm_upload(id, None),
        Err(Error::DeadlinePassed)
    );
    net.as_(acct(APP)).cancel(id).unwrap();
    // The other agreeing node gets the upload once; it misses it too.
    assert_eq!(
        net.c.task(id).unwrap().uploader,
        Some(nodes[1]),
        "a stand-in uploads"
    );
    net.at(net.now() + TIMEOUT + 1);
    net.as_(acct(APP)).cancel(id).unwrap();
    assert_eq!(
        net.c.task(id).unwrap().status,
        TaskStatus::Aborted(AbortReason::UploadMissed)
    );
    assert_eq!(net.balance(acct(APP)), FEE * 10 / 25);
}

#[ink::test]
fn pause_and_quit_while_busy_take_effect_on_release() {
    let mut net = Net::new();
    let (id, nodes) = running_task(&mut net);
    net.as_(nodes[0]).pause().unwrap();
    net.as_(nodes[1]).quit().unwrap();
    assert_eq!(
        net.c.node_info(nodes[0]).unwrap().status,
        NodeStatus::PendingPause
    );
    assert_eq!(
        net.c.node_info(nodes[1]).unwrap().status,
        NodeStatus::PendingQuit
    );
    assert_eq!(net.as_(nodes[1]).pause(), Err(Error::WrongNodeStatus));
    net.as_(nodes[0]).resume().unwrap();
    assert_eq!(net.c.node_info(nodes[0]).unwrap().status, NodeStatus::Busy);
    net.as_(nodes[0]).pause().unwrap();
    for n in &nodes {
        net.commit(id, *n, phash(1, 1)).unwrap();
    }
    for n in &nodes {
        net.reveal(id, *n).unwrap();
    }
    net.as_(nodes[0]).confirm_upload(id, None).unwrap();
    assert_eq!(
        net.c.node_info(nodes[0]).unwrap().status,
        NodeStatus::Paused
    );
    let quitter = net.c.node_info(nodes[1]).unwrap();
    assert_eq!((quitter.status, quitter.stake), (NodeStatus::Quit, 0));
    assert_eq!(
        net.balance(nodes[1]),
        STAKE + FEE * 9 / 25,
        "stake back plus its fee"
    );
    assert_eq!(net.c.node_counts().busy, 0);
}

#[ink::test]
fn a_queued_task_starts_when_a_busy_node_is_released() {
    let mut net = Net::new();
    net.nodes(&[10, 11, 12], 8);
    let first = net.started_task(acct(APP), 1);
    net.fund(acct(APP2), FEE);
    let second = net.create(acct(APP2), 1, FEE).unwrap();
    assert_eq!(
        net.c.task(second).unwrap().status,
        TaskStatus::Queued,
        "all three nodes are busy"
    );
    assert!(!net.c.entropy_needed(), "not armed while no nodes are free");
    let nodes = net.selected(first);
    for n in &nodes {
        net.commit(first, *n, phash(1, 1)).unwrap();
    }
    for n in &nodes {
        net.reveal(first, *n).unwrap();
    }
    // Two nodes are free; the uploader is still busy until it confirms.
    assert_eq!(net.c.task(second).unwrap().status, TaskStatus::Queued);
    let uploader = net.c.task(first).unwrap().uploader.unwrap();
    net.as_(uploader).confirm_upload(first, None).unwrap();
    assert_eq!(net.c.armed(), vec![second]);
    net.ripen();
    assert_eq!(net.c.task(second).unwrap().status, TaskStatus::Running);
}
