//! Selection against Sybils, statistically: 3 Sybil nodes among 10 try each
//! strategy the contract leaves them (pausing and resuming, contributing
//! first or last, withholding designated secrets), over many tasks. The
//! share of tasks where they hold two or more of the three slots must not
//! exceed what a uniform draw of 3 from 10 gives:
//! `(C(3,2)·C(7,1) + C(3,3)) / C(10,3) = 22/120`.
//!
//! The draws are deterministic (fixed ticket secrets), so the test cannot
//! flake; the tolerance is four standard deviations of the sample share.

use super::*;
use hydrogen_types::{NodeStatus, TaskStatus, ENTROPY_WINDOW_MS};

const HONEST: [u8; 7] = [10, 11, 12, 13, 14, 15, 16];
const SYBILS: [u8; 3] = [20, 21, 22];
const APP: u8 = 1;
const TASKS: usize = 1_200;
/// P(a uniform 3-of-10 draw holds >= 2 of 3 given nodes).
const UNIFORM: f64 = 22.0 / 120.0;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Strategy {
    /// Always available, contributing as soon as designated.
    Prompt,
    /// Contribute only after the honest designated node did.
    Last,
    /// Never reveal a designated secret (forfeit each time).
    Withhold,
    /// Pause and resume at every task, hoping to be in the draw only when
    /// it pays.
    Churn,
}

fn is_sybil(n: &AccountId) -> bool {
    SYBILS.iter().any(|&s| acct(s) == *n)
}

/// Runs `TASKS` tasks; returns (tasks drawn, tasks where Sybils hold >= 2 slots).
fn play(strategy: Strategy) -> (usize, usize) {
    let mut net = Net::with(Params {
        warmup_ms: 2 * TIMEOUT,
        max_missed: 16,
        silence_penalty_percent: 1,
        ..params()
    });
    net.nodes(&HONEST, 24);
    // Sybils hold enough to rejoin after any forfeits.
    for &s in &SYBILS {
        net.fund(acct(s), 10 * STAKE);
        net.join(acct(s), 24).unwrap();
    }
    net.at(net.now() + 2 * TIMEOUT + 1);
    net.fund(acct(APP), 10 * FEE * TASKS as u128);
    let (mut drawn, mut captured) = (0, 0);
    for round in 0..TASKS {
        if strategy == Strategy::Churn {
            for (k, &s) in SYBILS.iter().enumerate() {
                let node = acct(s);
                let flip = (round + k) % 3 == 0;
                match net.c.node_info(node).map(|i| i.status) {
                    Some(NodeStatus::Available) if flip => net.as_(node).pause().unwrap(),
                    Some(NodeStatus::Paused) if !flip => net.as_(node).resume().unwrap(),
                    _ => {}
                }
            }
        }
        let id = net.create(acct(APP), 1, FEE).unwrap();
        let mut guard = 0;
        while net.c.task(id).unwrap().status == TaskStatus::Queued {
            guard += 1;
            assert!(guard < 50, "task {id} never started ({strategy:?})");
            let designated = net.c.entropy_contributors();
            if designated.is_empty() {
                // Not armed: let warm-ups end; any call re-runs dispatch.
                net.at(net.now() + TIMEOUT);
                let _ = net.join(acct(SYBILS[0]), 24);
                continue;
            }
            let (sybil, honest): (Vec<_>, Vec<_>) = designated.iter().partition(|n| is_sybil(n));
            let order: Vec<AccountId> = match strategy {
                Strategy::Prompt | Strategy::Churn => sybil.into_iter().chain(honest).collect(),
                Strategy::Last => honest.into_iter().chain(sybil).collect(),
                Strategy::Withhold => honest,
            };
            for n in order {
                net.contribute(n).unwrap();
            }
            if net.c.task(id).unwrap().status == TaskStatus::Queued {
                net.at(net.now() + ENTROPY_WINDOW_MS + 1);
                let _ = net.as_(acct(APP)).redesignate();
            }
        }
        drawn += 1;
        let selected = net.selected(id);
        if selected.iter().filter(|n| is_sybil(n)).count() >= 2 {
            captured += 1;
        }
        // Everyone computes honestly; the task settles and frees its nodes.
        for n in &selected {
            net.commit(id, *n, phash(1, 3)).unwrap();
        }
        for n in &selected {
            net.reveal(id, *n).unwrap();
        }
        let uploader = net.c.task(id).unwrap().uploader.unwrap();
        net.as_(uploader).confirm_upload(id, None).unwrap();
        // Kicked-out Sybils come back as soon as they may.
        for &s in &SYBILS {
            let node = acct(s);
            if net
                .c
                .node_info(node)
                .is_some_and(|i| i.status == NodeStatus::Quit)
            {
                let _ = net.join(node, 24);
            }
        }
        net.at(net.now() + TIMEOUT / 2);
    }
    (drawn, captured)
}

#[test]
fn sybils_hold_two_slots_no_more_often_than_a_uniform_draw_gives() {
    let mut report = Vec::new();
    for strategy in [
        Strategy::Prompt,
        Strategy::Last,
        Strategy::Withhold,
        Strategy::Churn,
    ] {
        let mut played = (0, 0);
        ink::env::test::run_test::<Env, _>(|_| {
            played = play(strategy);
            Ok(())
        })
        .expect("the engine runs");
        let (drawn, captured) = played;
        let share = captured as f64 / drawn as f64;
        let sigma = (UNIFORM * (1.0 - UNIFORM) / drawn as f64).sqrt();
        report.push(format!(
            "{strategy:?}: {captured}/{drawn} = {share:.3} (uniform {UNIFORM:.3} ± {sigma:.3})"
        ));
        assert!(
            share <= UNIFORM + 4.0 * sigma,
            "{strategy:?} beat the uniform draw: {report:?}"
        );
        if strategy == Strategy::Prompt {
            assert!(
                (share - UNIFORM).abs() <= 4.0 * sigma,
                "always-available Sybils should get exactly their share: {report:?}"
            );
        }
    }
    println!("{}", report.join("\n"));
}
