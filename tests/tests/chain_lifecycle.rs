//! Whole task lifecycles against the real contract on a real dev node.
//!
//! All tests of this binary share one `substrate-contracts-node`, started on
//! first use and stopped when the process exits; each deploys its own
//! contract and signs with its own keys, so they run in parallel. Every test
//! checks balances, statuses and the pool read back from the chain, and the
//! exact events of each transaction in the finalized event stream. Without
//! a node binary or a contract bundle the tests print why and pass, unless
//! `HYDROGEN_REQUIRE_CHAIN=1` makes them fail.
//!
//! `cargo test -p hydrogen-tests --test chain_lifecycle`

use hydrogen_sdk::types::{
    fee_share, AbortReason, AccountId, Error, Event, NodeCounts, NodeStatus, Params, TaskStatus,
    TaskType,
};
use hydrogen_tests::{phash, test_params, Network, ARGS_HASH, CREATOR_TOKENS, FEE, MIN_VRAM_GB};

/// Parameters for tests that never reach a deadline.
fn patient() -> Params {
    test_params()
}

/// Parameters for tests that wait for deadlines: short, but long enough for
/// a few transactions on a busy machine.
fn hasty(timeout_ms: u64) -> Params {
    Params {
        timeout_ms,
        ..test_params()
    }
}

fn paid(task_id: u64, node: AccountId, order: usize) -> Event {
    Event::NodePaid {
        task_id,
        node,
        amount: fee_share(FEE, order),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_nodes_are_paid_by_commit_order() {
    let Some(mut net) = Network::new("honest", patient(), 3).await else {
        return;
    };
    let id = net.start_task(FEE).await;
    assert_eq!(
        net.tokens(net.creator_account()).await,
        CREATOR_TOKENS - FEE
    );

    // Commit order 0, 1, 2 decides the shares: 10, 9 and 6 units.
    for i in 0..3 {
        let committed = net.commit(id, i, phash(0)).await.expect("commit");
        let events = if i == 2 {
            vec![Event::CommitmentsReady { task_id: id }]
        } else {
            vec![]
        };
        net.expect(&format!("commit node{i}"), &committed, events);
    }

    // Node 2 reveals first; node 0's agreeing reveal decides the task, and
    // node 0, the earlier committer of the pair, uploads.
    let revealed = net.reveal(id, 2).await.expect("reveal");
    let events = vec![Event::ResultRevealed {
        task_id: id,
        node: net.node(2),
    }];
    net.expect("reveal node2", &revealed, events);
    let revealed = net.reveal(id, 0).await.expect("reveal");
    let events = vec![
        Event::ResultRevealed {
            task_id: id,
            node: net.node(0),
        },
        Event::TaskSucceeded {
            task_id: id,
            result: vec![0; 8],
            uploader: net.node(0),
        },
        paid(id, net.node(2), 2),
        net.status_event(2, NodeStatus::Available),
    ];
    net.expect("reveal node0", &revealed, events);
    let task = net.task(id).await;
    assert_eq!(task.status, TaskStatus::Succeeded);
    assert_eq!(task.uploader, Some(net.node(0)));
    assert_eq!(task.result, Some(vec![0; 8]));

    let revealed = net.reveal(id, 1).await.expect("reveal");
    let events = vec![
        Event::ResultRevealed {
            task_id: id,
            node: net.node(1),
        },
        paid(id, net.node(1), 1),
        net.status_event(1, NodeStatus::Available),
    ];
    net.expect("reveal node1", &revealed, events);

    // Only the uploader may confirm.
    let err = net
        .hydrogen
        .confirm_upload(&net.nodes[1], id, None)
        .await
        .unwrap_err();
    assert_eq!(err.contract_error(), Some(Error::NotUploader), "{err}");
    let confirmed = net
        .hydrogen
        .confirm_upload(&net.nodes[0], id, None)
        .await
        .expect("confirm_upload");
    let events = vec![
        Event::ResultsUploaded {
            task_id: id,
            node: net.node(0),
        },
        paid(id, net.node(0), 0),
        net.status_event(0, NodeStatus::Available),
    ];
    net.expect("confirm_upload", &confirmed, events);

    assert_eq!(net.task(id).await.status, TaskStatus::Completed);
    let stake = net.params.required_stake;
    for i in 0..3 {
        assert_eq!(net.tokens(net.node(i)).await, fee_share(FEE, i));
        assert_eq!(net.node_status(i).await, (NodeStatus::Available, stake));
    }
    // The whole fee went to the nodes: nothing is refunded.
    assert_eq!(
        net.tokens(net.creator_account()).await,
        CREATOR_TOKENS - FEE
    );
    assert_eq!(net.tokens(net.contract()).await, 3 * stake);
    assert_eq!(
        net.hydrogen.node_counts().await.unwrap(),
        NodeCounts {
            available: 3,
            busy: 0,
            paused: 0
        }
    );
    assert_eq!(net.hydrogen.burned().await.unwrap(), 0);
    net.check_events().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheater_on_a_two_to_one_is_audited_not_slashed_outright() {
    let Some(mut net) = Network::new("cheater", patient(), 3).await else {
        return;
    };
    let id = net.start_task(FEE).await;
    // Node 1 commits second (a 9-unit share) to a result far from the others'.
    for (i, outcome) in [(0, phash(0)), (1, phash(0xff)), (2, phash(0))] {
        let committed = net.commit(id, i, outcome).await.expect("commit");
        let events = if i == 2 {
            vec![Event::CommitmentsReady { task_id: id }]
        } else {
            vec![]
        };
        net.expect(&format!("commit node{i}"), &committed, events);
    }
    // The cheater reveals first: one result decides nothing, two that
    // disagree neither.
    for i in [1, 0] {
        let revealed = net.reveal(id, i).await.expect("reveal");
        let events = vec![Event::ResultRevealed {
            task_id: id,
            node: net.node(i),
        }];
        net.expect(&format!("reveal node{i}"), &revealed, events);
        assert_eq!(net.task(id).await.status, TaskStatus::Running);
    }
    let stake = net.params.required_stake;
    let audit = id + 1;
    let revealed = net.reveal(id, 2).await.expect("reveal");
    let events = vec![
        Event::ResultRevealed {
            task_id: id,
            node: net.node(2),
        },
        Event::TaskSucceeded {
            task_id: id,
            result: vec![0; 8],
            uploader: net.node(0),
        },
        net.status_event(1, NodeStatus::Available),
        Event::TaskCreated {
            task_id: audit,
            creator: net.contract(),
            task_type: TaskType::StableDiffusion,
            args_hash: ARGS_HASH,
            min_vram_gb: MIN_VRAM_GB,
            num_images: 1,
            fee: 0,
        },
        Event::AuditOpened {
            task_id: id,
            audit,
            disputed: net.node(1),
        },
        paid(id, net.node(2), 2),
        net.status_event(2, NodeStatus::Available),
    ];
    net.expect("reveal node2", &revealed, events);
    // Nobody is slashed on a 2-vs-1; the three stakes are held for the audit.
    assert_eq!(net.hydrogen.burned().await.unwrap(), 0);
    let info = net.hydrogen.node_info(net.node(1)).await.unwrap().unwrap();
    assert_eq!((info.stake, info.disputes), (stake, 1));
    let task = net.task(id).await;
    assert_eq!(task.audit, Some(audit));
    assert_eq!(net.task(audit).await.audit_of, Some(id));
    assert_eq!(net.task(audit).await.status, TaskStatus::Queued);

    let confirmed = net
        .hydrogen
        .confirm_upload(&net.nodes[0], id, None)
        .await
        .expect("confirm_upload");
    let cheater_share = fee_share(FEE, 1);
    let events = vec![
        Event::ResultsUploaded {
            task_id: id,
            node: net.node(0),
        },
        paid(id, net.node(0), 0),
        net.status_event(0, NodeStatus::Available),
        Event::Refunded {
            task_id: id,
            creator: net.creator_account(),
            amount: cheater_share,
        },
    ];
    net.expect("confirm_upload", &confirmed, events);
    assert_eq!(net.task(id).await.status, TaskStatus::Completed);
    assert_eq!(
        net.tokens(net.creator_account()).await,
        CREATOR_TOKENS - FEE + cheater_share
    );

    // The cheater cannot leave with its stake while the audit is open.
    let quit = net.hydrogen.quit(&net.nodes[1]).await.expect("quit");
    net.expect(
        "quit node1",
        &quit,
        vec![net.status_event(1, NodeStatus::Quit)],
    );
    assert_eq!(net.tokens(net.node(1)).await, 0, "its stake is held");
    assert_eq!(net.node_status(1).await, (NodeStatus::Quit, stake));
    assert_eq!(net.tokens(net.contract()).await, 3 * stake);
    net.check_events().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_node_is_missed_and_its_share_refunded() {
    let Some(mut net) = Network::new("silent", hasty(8_000), 3).await else {
        return;
    };
    let id = net.start_task(FEE).await;
    // Nodes 0 and 2 commit (orders 0 and 1); node 1 stays silent.
    for i in [0, 2] {
        let committed = net.commit(id, i, phash(0)).await.expect("commit");
        net.expect(&format!("commit node{i}"), &committed, vec![]);
    }
    let err = net.reveal(id, 0).await.unwrap_err();
    assert_eq!(err.contract_error(), Some(Error::RevealNotOpen), "{err}");
    let err = net.hydrogen.cancel(&net.creator, id).await.unwrap_err();
    assert_eq!(
        err.contract_error(),
        Some(Error::DeadlineNotReached),
        "{err}"
    );

    let deadline = net.task(id).await.deadline;
    net.pass(deadline).await;
    let err = net.commit(id, 1, phash(0)).await.unwrap_err();
    assert_eq!(err.contract_error(), Some(Error::DeadlinePassed), "{err}");
    let cancelled = net.hydrogen.cancel(&net.creator, id).await.expect("cancel");
    let events = vec![
        Event::NodeMissed {
            task_id: id,
            node: net.node(1),
            missed: 1,
        },
        net.status_event(1, NodeStatus::Available),
    ];
    net.expect("cancel", &cancelled, events);
    assert_eq!(net.task(id).await.status, TaskStatus::Running);

    // Past the deadline, two commitments open the reveals.
    let revealed = net.reveal(id, 0).await.expect("reveal");
    let events = vec![Event::ResultRevealed {
        task_id: id,
        node: net.node(0),
    }];
    net.expect("reveal node0", &revealed, events);
    let revealed = net.reveal(id, 2).await.expect("reveal");
    let events = vec![
        Event::ResultRevealed {
            task_id: id,
            node: net.node(2),
        },
        Event::TaskSucceeded {
            task_id: id,
            result: vec![0; 8],
            uploader: net.node(0),
        },
        paid(id, net.node(2), 1),
        net.status_event(2, NodeStatus::Available),
    ];
    net.expect("reveal node2", &revealed, events);
    let confirmed = net
        .hydrogen
        .confirm_upload(&net.nodes[0], id, None)
        .await
        .expect("confirm_upload");
    let silent_share = fee_share(FEE, 2);
    let events = vec![
        Event::ResultsUploaded {
            task_id: id,
            node: net.node(0),
        },
        paid(id, net.node(0), 0),
        net.status_event(0, NodeStatus::Available),
        Event::Refunded {
            task_id: id,
            creator: net.creator_account(),
            amount: silent_share,
        },
    ];
    net.expect("confirm_upload", &confirmed, events);

    assert_eq!(net.task(id).await.status, TaskStatus::Completed);
    assert_eq!(net.tokens(net.node(0)).await, fee_share(FEE, 0));
    assert_eq!(net.tokens(net.node(1)).await, 0);
    assert_eq!(net.tokens(net.node(2)).await, fee_share(FEE, 1));
    assert_eq!(
        net.tokens(net.creator_account()).await,
        CREATOR_TOKENS - FEE + silent_share
    );
    let info = net.hydrogen.node_info(net.node(1)).await.unwrap().unwrap();
    assert_eq!(
        (info.status, info.stake, info.missed),
        (NodeStatus::Available, net.params.required_stake, 1)
    );
    assert_eq!(net.hydrogen.burned().await.unwrap(), 0);
    net.check_events().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_task_times_out_with_a_full_refund() {
    let Some(mut net) = Network::new("unanswered", hasty(3_000), 3).await else {
        return;
    };
    let id = net.start_task(FEE).await;
    let deadline = net.task(id).await.deadline;
    net.pass(deadline).await;

    // A selected node may settle the task too, not only its creator.
    let cancelled = net
        .hydrogen
        .cancel(&net.nodes[2], id)
        .await
        .expect("cancel");
    let mut events = vec![
        Event::TaskAborted {
            task_id: id,
            reason: AbortReason::Timeout,
        },
        Event::Refunded {
            task_id: id,
            creator: net.creator_account(),
            amount: FEE,
        },
    ];
    // Nobody committed: the task could not be run, so nobody is charged a miss.
    for i in 0..3 {
        events.push(net.status_event(i, NodeStatus::Available));
    }
    net.expect("cancel", &cancelled, events);

    assert_eq!(
        net.task(id).await.status,
        TaskStatus::Aborted(AbortReason::Timeout)
    );
    assert_eq!(net.tokens(net.creator_account()).await, CREATOR_TOKENS);
    let stake = net.params.required_stake;
    for i in 0..3 {
        let info = net.hydrogen.node_info(net.node(i)).await.unwrap().unwrap();
        assert_eq!(
            (info.status, info.stake, info.missed),
            (NodeStatus::Available, stake, 0)
        );
        assert_eq!(net.tokens(net.node(i)).await, 0);
    }
    assert_eq!(net.tokens(net.contract()).await, 3 * stake);
    // Settled once: a second cancel has nothing left to do.
    let err = net.hydrogen.cancel(&net.creator, id).await.unwrap_err();
    assert_eq!(err.contract_error(), Some(Error::WrongTaskStatus), "{err}");
    net.check_events().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_task_waits_in_the_queue_until_nodes_are_free() {
    let Some(mut net) = Network::new("queue", patient(), 3).await else {
        return;
    };
    let first = net.start_task(FEE).await;
    let created = net.create_task(FEE).await.expect("create_task");
    let second = created.value;
    net.expect(
        "create second task",
        &created,
        vec![net.created_event(second, FEE)],
    );
    assert_eq!(net.task(second).await.status, TaskStatus::Queued);
    assert_eq!(net.hydrogen.queue().await.unwrap(), vec![second]);
    assert!(
        !net.hydrogen.entropy_needed().await.unwrap(),
        "not armed while its nodes are busy"
    );

    for i in 0..3 {
        let committed = net.commit(first, i, phash(0)).await.expect("commit");
        let events = if i == 2 {
            vec![Event::CommitmentsReady { task_id: first }]
        } else {
            vec![]
        };
        net.expect(&format!("commit node{i}"), &committed, events);
    }
    // Two nodes are free after the reveals, one short of arming the second
    // task: the uploader is busy until it confirms.
    let revealed = net.reveal(first, 0).await.expect("reveal");
    let events = vec![Event::ResultRevealed {
        task_id: first,
        node: net.node(0),
    }];
    net.expect("reveal node0", &revealed, events);
    for i in [1, 2] {
        let revealed = net.reveal(first, i).await.expect("reveal");
        let mut events = vec![
            Event::ResultRevealed {
                task_id: first,
                node: net.node(i),
            },
            paid(first, net.node(i), i),
            net.status_event(i, NodeStatus::Available),
        ];
        if i == 1 {
            events.push(Event::TaskSucceeded {
                task_id: first,
                result: vec![0; 8],
                uploader: net.node(0),
            });
        }
        net.expect(&format!("reveal node{i}"), &revealed, events);
    }
    assert!(!net.hydrogen.entropy_needed().await.unwrap());
    assert_eq!(net.task(second).await.status, TaskStatus::Queued);
    assert_eq!(net.hydrogen.queue().await.unwrap(), vec![second]);
    assert_eq!(
        net.hydrogen.node_counts().await.unwrap(),
        NodeCounts {
            available: 2,
            busy: 1,
            paused: 0
        }
    );

    // The confirmation frees the uploader and arms the second task in the
    // same transaction; it starts once two nodes contributed entropy.
    let confirmed = net
        .hydrogen
        .confirm_upload(&net.nodes[0], first, None)
        .await
        .expect("confirm_upload");
    let events = vec![
        Event::ResultsUploaded {
            task_id: first,
            node: net.node(0),
        },
        paid(first, net.node(0), 0),
        net.status_event(0, NodeStatus::Available),
        net.armed_event(vec![second]).await,
    ];
    net.expect("confirm_upload", &confirmed, events);
    assert!(net.hydrogen.entropy_needed().await.unwrap());
    net.ripen(second).await;

    let task = net.task(second).await;
    assert_eq!(task.status, TaskStatus::Running);
    let mut selected: Vec<usize> = task.nodes.iter().map(|n| net.index_of(n)).collect();
    selected.sort();
    assert_eq!(selected, vec![0, 1, 2]);
    assert!(task.deadline > task.created_at);
    assert_eq!(net.hydrogen.queue().await.unwrap(), Vec::<u64>::new());
    assert_eq!(
        net.hydrogen.node_counts().await.unwrap(),
        NodeCounts {
            available: 0,
            busy: 3,
            paused: 0
        }
    );
    assert_eq!(
        net.tokens(net.creator_account()).await,
        CREATOR_TOKENS - 2 * FEE
    );
    net.check_events().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quitting_while_busy_returns_the_stake_when_released() {
    let Some(mut net) = Network::new("quit", patient(), 3).await else {
        return;
    };
    let stake = net.params.required_stake;
    let id = net.start_task(FEE).await;

    let quit = net.hydrogen.quit(&net.nodes[0]).await.expect("quit");
    let events = vec![net.status_event(0, NodeStatus::PendingQuit)];
    net.expect("quit node0", &quit, events);
    assert_eq!(net.node_status(0).await, (NodeStatus::PendingQuit, stake));
    assert_eq!(net.tokens(net.node(0)).await, 0, "the stake stays locked");
    let err = net.hydrogen.quit(&net.nodes[0]).await.unwrap_err();
    assert_eq!(err.contract_error(), Some(Error::WrongNodeStatus), "{err}");
    assert_eq!(net.hydrogen.node_counts().await.unwrap().busy, 3);

    // The quitting node still does its job: it commits last (6 units).
    for (order, i) in [1, 2, 0].into_iter().enumerate() {
        let committed = net.commit(id, i, phash(0)).await.expect("commit");
        let events = if order == 2 {
            vec![Event::CommitmentsReady { task_id: id }]
        } else {
            vec![]
        };
        net.expect(&format!("commit node{i}"), &committed, events);
    }
    let revealed = net.reveal(id, 1).await.expect("reveal");
    let events = vec![Event::ResultRevealed {
        task_id: id,
        node: net.node(1),
    }];
    net.expect("reveal node1", &revealed, events);
    let revealed = net.reveal(id, 2).await.expect("reveal");
    let events = vec![
        Event::ResultRevealed {
            task_id: id,
            node: net.node(2),
        },
        Event::TaskSucceeded {
            task_id: id,
            result: vec![0; 8],
            uploader: net.node(1),
        },
        paid(id, net.node(2), 1),
        net.status_event(2, NodeStatus::Available),
    ];
    net.expect("reveal node2", &revealed, events);

    // Its reveal releases it: paid, then out with its stake.
    let revealed = net.reveal(id, 0).await.expect("reveal");
    let events = vec![
        Event::ResultRevealed {
            task_id: id,
            node: net.node(0),
        },
        paid(id, net.node(0), 2),
        net.status_event(0, NodeStatus::Quit),
    ];
    net.expect("reveal node0", &revealed, events);
    assert_eq!(net.node_status(0).await, (NodeStatus::Quit, 0));
    assert_eq!(net.tokens(net.node(0)).await, stake + fee_share(FEE, 2));
    assert_eq!(
        net.hydrogen.node_counts().await.unwrap(),
        NodeCounts {
            available: 1,
            busy: 1,
            paused: 0
        }
    );
    assert_eq!(
        net.tokens(net.contract()).await,
        2 * stake + fee_share(FEE, 0)
    );

    let confirmed = net
        .hydrogen
        .confirm_upload(&net.nodes[1], id, None)
        .await
        .expect("confirm_upload");
    let events = vec![
        Event::ResultsUploaded {
            task_id: id,
            node: net.node(1),
        },
        paid(id, net.node(1), 0),
        net.status_event(1, NodeStatus::Available),
    ];
    net.expect("confirm_upload", &confirmed, events);
    assert_eq!(net.tokens(net.contract()).await, 2 * stake);
    assert_eq!(net.hydrogen.node_counts().await.unwrap().available, 2);
    net.check_events().await;
}
