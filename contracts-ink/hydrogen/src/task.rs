//! A task's record and its consensus state machine.
//!
//! [`Task::advance`] is pure: given the clock it decides consensus when it
//! can and says what each selected node has earned. The contract applies
//! those verdicts (moving tokens, freeing nodes, emitting events), so the
//! rules live in one place and are tested without an environment.

use hydrogen_types::{
    outcomes_agree, AbortReason, Balance, Hash, Outcome, Params, TaskId, TaskInfo, TaskStatus,
    TaskType, Timestamp, NODES_PER_TASK,
};
use ink::prelude::vec::Vec;
use ink::primitives::AccountId;

#[derive(Debug, Clone, PartialEq, Eq)]
#[ink::scale_derive(Encode, Decode, TypeInfo)]
#[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
pub struct Slot {
    pub node: AccountId,
    pub commitment: Option<Hash>,
    /// 0-based commit order; meaningful once committed.
    pub order: u8,
    pub outcome: Option<Outcome>,
    /// The node has received its verdict and been released.
    pub settled: bool,
    /// Its stake is held for this task's audit.
    pub held: bool,
    /// It received its fee share.
    pub paid: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[ink::scale_derive(Encode, Decode, TypeInfo)]
#[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
pub struct Task {
    pub creator: AccountId,
    pub task_type: TaskType,
    pub args_hash: Hash,
    pub min_vram_gb: u32,
    pub num_images: u8,
    pub fee: Balance,
    /// What is still held for this task.
    pub escrow: Balance,
    pub status: TaskStatus,
    pub created_at: Timestamp,
    /// Commit deadline; reveals may come until one timeout later.
    pub deadline: Timestamp,
    /// When two results agreed; the upload is due one timeout later.
    pub decided_at: Timestamp,
    pub slots: Vec<Slot>,
    pub commits: u8,
    pub accepted: Option<Outcome>,
    pub uploader: Option<u8>,
    /// The rules in force when the task was created: a later parameter
    /// change never alters a task already paid for.
    pub rules: Rules,
    /// For an audit: the task it re-executes.
    pub audit_of: Option<TaskId>,
    /// The audit opened on this task's 2-vs-1 split.
    pub audit: Option<TaskId>,
    /// For an audit: whether it has judged the audited task.
    pub resolved: bool,
    /// The first uploader missed its deadline and another agreeing node
    /// took over; it is paid the first uploader's share (`upload_order`).
    pub fallback_used: bool,
    pub upload_order: u8,
}

/// The parameters a task is judged by, copied from [`Params`] at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[ink::scale_derive(Encode, Decode, TypeInfo)]
#[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
pub struct Rules {
    pub timeout_ms: Timestamp,
    pub distance_threshold: u8,
    pub silence_penalty_percent: u8,
    pub queue_ttl_ms: Timestamp,
}

impl From<&Params> for Rules {
    fn from(p: &Params) -> Self {
        Rules {
            timeout_ms: p.timeout_ms,
            distance_threshold: p.distance_threshold,
            silence_penalty_percent: p.silence_penalty_percent,
            queue_ttl_ms: p.queue_ttl_ms,
        }
    }
}

/// What a selected node gets when its part in a task ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Its fee share: it agreed with an accepted image result.
    Pay,
    /// Judgement deferred to an audit: it revealed a result that contradicts
    /// the two that decided the task. A 2-vs-1 split slashes nobody until
    /// three other nodes re-executed the task.
    Dispute,
    /// Nothing, and a miss: it stayed silent past a deadline it had to meet.
    Miss,
    /// Part of its stake and a miss: it committed, reveals were open to it,
    /// and it stayed silent — what a node that sees it lost would do.
    Forfeit,
    /// Nothing, no penalty: no consensus, an invalid-arguments decision, or
    /// it could never reveal.
    Release,
}

impl Task {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        creator: AccountId,
        task_type: TaskType,
        args_hash: Hash,
        min_vram_gb: u32,
        num_images: u8,
        fee: Balance,
        now: Timestamp,
        rules: Rules,
    ) -> Self {
        Task {
            creator,
            task_type,
            args_hash,
            min_vram_gb,
            num_images,
            fee,
            escrow: fee,
            status: TaskStatus::Queued,
            created_at: now,
            deadline: 0,
            decided_at: 0,
            slots: Vec::new(),
            commits: 0,
            accepted: None,
            uploader: None,
            rules,
            audit_of: None,
            audit: None,
            resolved: false,
            fallback_used: false,
            upload_order: 0,
        }
    }

    pub fn info(&self, id: TaskId) -> TaskInfo {
        TaskInfo {
            id,
            creator: self.creator,
            task_type: self.task_type,
            args_hash: self.args_hash,
            min_vram_gb: self.min_vram_gb,
            num_images: self.num_images,
            fee: self.fee,
            status: self.status,
            created_at: self.created_at,
            deadline: self.deadline,
            nodes: self.slots.iter().map(|s| s.node).collect(),
            result: match &self.accepted {
                Some(Outcome::Images(bytes)) => Some(bytes.clone()),
                _ => None,
            },
            uploader: self.uploader.map(|i| self.slots[i as usize].node),
            distance_threshold: self.rules.distance_threshold,
            audit_of: self.audit_of,
            audit: self.audit,
        }
    }

    pub fn slot_of(&self, node: AccountId) -> Option<usize> {
        self.slots.iter().position(|s| s.node == node)
    }

    pub fn reveal_deadline(&self) -> Timestamp {
        self.deadline.saturating_add(self.rules.timeout_ms)
    }

    pub fn upload_deadline(&self) -> Timestamp {
        self.decided_at.saturating_add(self.rules.timeout_ms)
    }

    /// When a queued task expires.
    pub fn expires_at(&self) -> Timestamp {
        self.created_at.saturating_add(self.rules.queue_ttl_ms)
    }

    /// Reveals open once all nodes committed, or after the deadline once two
    /// did: a reveal never lets a node that has not committed copy it.
    pub fn reveal_open(&self, now: Timestamp) -> bool {
        usize::from(self.commits) == NODES_PER_TASK || (now > self.deadline && self.commits >= 2)
    }

    /// Whether slot `i` can still commit or reveal at `now`.
    fn may_act(&self, i: usize, now: Timestamp) -> bool {
        let s = &self.slots[i];
        if s.settled || s.outcome.is_some() {
            return false;
        }
        match s.commitment {
            None => now <= self.deadline,
            Some(_) if self.commits >= 2 => now <= self.reveal_deadline(),
            Some(_) => now <= self.deadline,
        }
    }

    /// For a slot that can no longer act: the duty it failed, if any. Not
    /// committing is a miss — unless nobody committed, which says the task
    /// could not be run (its arguments never arrived, no node has its
    /// model), not that this node was lazy. Committing and then not
    /// revealing once reveals were open forfeits part of the stake.
    fn silence(&self, i: usize) -> Option<Verdict> {
        let s = &self.slots[i];
        match (&s.outcome, &s.commitment) {
            (Some(_), _) => None,
            (None, None) if self.commits == 0 => None,
            (None, None) => Some(Verdict::Miss),
            (None, Some(_)) if self.commits >= 2 => Some(Verdict::Forfeit),
            (None, Some(_)) => None,
        }
    }

    /// Two revealed outcomes that agree, earliest committer first.
    fn agreeing_pair(&self) -> Option<usize> {
        let threshold = self.rules.distance_threshold;
        let mut revealed: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].outcome.is_some())
            .collect();
        revealed.sort_by_key(|&i| self.slots[i].order);
        for (n, &a) in revealed.iter().enumerate() {
            for &b in revealed.iter().skip(n.saturating_add(1)) {
                if let (Some(x), Some(y)) = (&self.slots[a].outcome, &self.slots[b].outcome) {
                    if outcomes_agree(x, y, threshold) {
                        return Some(a);
                    }
                }
            }
        }
        None
    }

    /// Advances consensus at `now`. Returns the new status if it changed, and
    /// the verdicts of the slots that can be judged (marked settled here).
    pub fn advance(&mut self, now: Timestamp) -> (Option<TaskStatus>, Vec<(usize, Verdict)>) {
        let threshold = self.rules.distance_threshold;
        let before = self.status;
        if self.status == TaskStatus::Running {
            if let Some(first) = self.agreeing_pair() {
                let accepted = self.slots[first].outcome.clone();
                self.status = match accepted {
                    // An audit needs no upload: its result only judges.
                    Some(Outcome::Images(_)) if self.audit_of.is_some() => TaskStatus::Completed,
                    Some(Outcome::Images(_)) => {
                        self.uploader = u8::try_from(first).ok();
                        self.decided_at = now;
                        TaskStatus::Succeeded
                    }
                    _ => TaskStatus::Aborted(AbortReason::InvalidArgs),
                };
                self.accepted = accepted;
            } else if !(0..self.slots.len()).any(|i| self.may_act(i, now)) {
                let revealed = self.slots.iter().filter(|s| s.outcome.is_some()).count();
                let reason = if revealed >= 2 {
                    AbortReason::NoConsensus
                } else {
                    AbortReason::Timeout
                };
                self.status = TaskStatus::Aborted(reason);
            }
        }
        let mut verdicts = Vec::new();
        if self.status == TaskStatus::Succeeded && now > self.upload_deadline() {
            // Once, the other agreeing node takes over the upload; the one
            // that missed it gets a miss and nothing.
            match (self.uploader.map(usize::from), self.fallback()) {
                (Some(missed), Some(next)) if !self.fallback_used => {
                    self.fallback_used = true;
                    self.upload_order = self.slots[missed].order;
                    self.uploader = u8::try_from(next).ok();
                    self.decided_at = now;
                    self.slots[missed].settled = true;
                    verdicts.push((missed, Verdict::Miss));
                }
                _ => self.status = TaskStatus::Aborted(AbortReason::UploadMissed),
            }
        }

        for i in 0..self.slots.len() {
            if self.slots[i].settled {
                continue;
            }
            let is_uploader = self.uploader.map(usize::from) == Some(i);
            let verdict = match (self.status, &self.slots[i].outcome, &self.accepted) {
                // Undecided: only a missed commit is already final (and
                // only once somebody else committed: see `silence`).
                (TaskStatus::Running, _, _) => {
                    (self.slots[i].commitment.is_none() && self.commits > 0 && now > self.deadline)
                        .then_some(Verdict::Miss)
                }
                (TaskStatus::Succeeded, _, _) if is_uploader => None,
                (TaskStatus::Aborted(AbortReason::UploadMissed), _, _) if is_uploader => {
                    Some(Verdict::Miss)
                }
                // Arguments voted invalid: nobody did paid work, so nobody
                // is paid (two colluders must not farm the fee this way),
                // and a real result against the vote is not slashed.
                (_, Some(_), Some(Outcome::InvalidArgs)) => Some(Verdict::Release),
                // An audit's nodes are paid when it resolves the task it
                // audits; none of them is judged by the audit itself.
                (_, Some(_), Some(_)) if self.audit_of.is_some() => Some(Verdict::Release),
                (_, Some(outcome), Some(accepted)) => {
                    if outcomes_agree(outcome, accepted, threshold) {
                        Some(Verdict::Pay)
                    } else {
                        Some(Verdict::Dispute)
                    }
                }
                (_, Some(_), None) => Some(Verdict::Release),
                (_, None, _) if self.may_act(i, now) => None,
                (_, None, _) => Some(self.silence(i).unwrap_or(Verdict::Release)),
            };
            if let Some(v) = verdict {
                self.slots[i].settled = true;
                verdicts.push((i, v));
            }
        }
        let changed = (self.status != before).then_some(self.status);
        (changed, verdicts)
    }

    /// Another revealed node whose result agrees with the accepted one.
    fn fallback(&self) -> Option<usize> {
        let accepted = self.accepted.as_ref()?;
        let uploader = self.uploader.map(usize::from);
        (0..self.slots.len()).find(|&j| {
            Some(j) != uploader
                && self.slots[j]
                    .outcome
                    .as_ref()
                    .is_some_and(|o| outcomes_agree(o, accepted, self.rules.distance_threshold))
        })
    }

    pub fn all_settled(&self) -> bool {
        self.slots.iter().all(|s| s.settled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timestamp = 100;

    fn running(commits: &[Option<u8>]) -> Task {
        let mut t = Task::new(
            AccountId::from([9; 32]),
            TaskType::StableDiffusion,
            [0; 32],
            0,
            1,
            2500,
            0,
            Rules {
                timeout_ms: T,
                distance_threshold: 3,
                silence_penalty_percent: 10,
                queue_ttl_ms: T,
            },
        );
        t.status = TaskStatus::Running;
        t.deadline = 1000;
        for (i, order) in commits.iter().enumerate() {
            t.slots.push(Slot {
                node: AccountId::from([i as u8 + 1; 32]),
                commitment: order.map(|_| [1; 32]),
                order: order.unwrap_or(0),
                outcome: None,
                settled: false,
                held: false,
                paid: false,
            });
        }
        t.commits = commits.iter().filter(|o| o.is_some()).count() as u8;
        t
    }

    fn img(b: u8) -> Option<Outcome> {
        Some(Outcome::Images(vec![0, 0, 0, 0, 0, 0, 0, b]))
    }

    #[test]
    fn two_agreeing_reveals_succeed_and_the_earlier_committer_uploads() {
        let mut t = running(&[Some(1), Some(0), Some(2)]);
        t.slots[0].outcome = img(0b1);
        assert_eq!(t.advance(10), (None, vec![]));
        t.slots[1].outcome = img(0b11);
        let (status, verdicts) = t.advance(11);
        assert_eq!(status, Some(TaskStatus::Succeeded));
        assert_eq!(t.uploader, Some(1), "slot 1 committed first");
        assert_eq!(verdicts, vec![(0, Verdict::Pay)]);
        // The third reveals a far result: disputed (an audit decides).
        t.slots[2].outcome = img(0xff);
        assert_eq!(t.advance(12), (None, vec![(2, Verdict::Dispute)]));
        assert!(!t.all_settled(), "the uploader waits for its confirmation");
    }

    #[test]
    fn all_different_aborts_without_slashing() {
        let mut t = running(&[Some(0), Some(1), Some(2)]);
        t.slots[0].outcome = img(0x00);
        t.slots[1].outcome = img(0x0f);
        assert_eq!(t.advance(10).0, None, "the third may still break the tie");
        t.slots[2].outcome = img(0xf0);
        let (status, verdicts) = t.advance(11);
        assert_eq!(status, Some(TaskStatus::Aborted(AbortReason::NoConsensus)));
        assert!(verdicts.iter().all(|(_, v)| *v == Verdict::Release));
        assert!(t.all_settled());
    }

    #[test]
    fn two_error_votes_earn_nothing_and_never_slash_a_real_result() {
        let mut t = running(&[Some(0), Some(1), Some(2)]);
        t.slots[0].outcome = img(0);
        t.slots[1].outcome = Some(Outcome::InvalidArgs);
        t.slots[2].outcome = Some(Outcome::InvalidArgs);
        let (status, mut verdicts) = t.advance(10);
        verdicts.sort();
        assert_eq!(status, Some(TaskStatus::Aborted(AbortReason::InvalidArgs)));
        assert_eq!(
            verdicts,
            vec![
                (0, Verdict::Release),
                (1, Verdict::Release),
                (2, Verdict::Release)
            ]
        );
    }

    #[test]
    fn an_error_vote_against_two_agreeing_results_is_disputed() {
        let mut t = running(&[Some(0), Some(1), Some(2)]);
        t.slots[0].outcome = Some(Outcome::InvalidArgs);
        t.slots[1].outcome = img(0);
        t.slots[2].outcome = img(1);
        let (status, mut verdicts) = t.advance(10);
        verdicts.sort();
        assert_eq!(status, Some(TaskStatus::Succeeded));
        assert_eq!(t.uploader, Some(1));
        assert_eq!(verdicts, vec![(0, Verdict::Dispute), (2, Verdict::Pay)]);
    }

    #[test]
    fn a_silent_committer_is_missed_and_the_other_two_settle_after_the_deadline() {
        let mut t = running(&[Some(0), None, Some(1)]);
        assert!(!t.reveal_open(1000));
        assert_eq!(t.advance(1000), (None, vec![]));
        assert!(t.reveal_open(1001));
        assert_eq!(t.advance(1001), (None, vec![(1, Verdict::Miss)]));
        t.slots[0].outcome = img(0);
        t.slots[2].outcome = img(0);
        let (status, verdicts) = t.advance(1002);
        assert_eq!(status, Some(TaskStatus::Succeeded));
        assert_eq!(verdicts, vec![(2, Verdict::Pay)]);
    }

    #[test]
    fn nobody_revealing_times_out_and_penalises_only_the_silent() {
        // One committed; reveals could never open for it: released, not missed.
        let mut t = running(&[Some(0), None, None]);
        let (status, mut verdicts) = t.advance(1001);
        verdicts.sort();
        assert_eq!(status, Some(TaskStatus::Aborted(AbortReason::Timeout)));
        assert_eq!(
            verdicts,
            vec![
                (0, Verdict::Release),
                (1, Verdict::Miss),
                (2, Verdict::Miss)
            ]
        );

        // All committed, one revealed, the reveal window closed: the two
        // others withheld their reveals and forfeit.
        let mut t = running(&[Some(0), Some(1), Some(2)]);
        t.slots[1].outcome = img(0);
        assert_eq!(
            t.advance(1100),
            (None, vec![]),
            "reveals are open until deadline + timeout"
        );
        let (status, mut verdicts) = t.advance(1101);
        verdicts.sort();
        assert_eq!(status, Some(TaskStatus::Aborted(AbortReason::Timeout)));
        assert_eq!(
            verdicts,
            vec![
                (0, Verdict::Forfeit),
                (1, Verdict::Release),
                (2, Verdict::Forfeit)
            ]
        );
    }

    #[test]
    fn nobody_is_missed_when_nobody_committed() {
        // Arguments that never arrived, a model no node has: all three silent.
        let mut t = running(&[None, None, None]);
        assert_eq!(t.advance(1000), (None, vec![]));
        let (status, verdicts) = t.advance(1001);
        assert_eq!(status, Some(TaskStatus::Aborted(AbortReason::Timeout)));
        assert!(verdicts.iter().all(|(_, v)| *v == Verdict::Release));
        assert!(t.all_settled());
    }

    #[test]
    fn a_missed_upload_passes_to_the_other_agreeing_node_once() {
        let mut t = running(&[Some(0), Some(1), Some(2)]);
        t.slots[0].outcome = img(0);
        t.slots[1].outcome = img(0);
        t.slots[2].outcome = img(0);
        let (_, verdicts) = t.advance(10);
        assert_eq!(verdicts, vec![(1, Verdict::Pay), (2, Verdict::Pay)]);
        assert_eq!(t.advance(110), (None, vec![]));
        // The uploader missed: slot 1 takes over, with a fresh deadline.
        assert_eq!(t.advance(111), (None, vec![(0, Verdict::Miss)]));
        assert_eq!(
            (t.uploader, t.fallback_used, t.upload_order),
            (Some(1), true, 0)
        );
        assert_eq!(t.advance(211), (None, vec![]));
        // It missed too: no second fallback.
        assert_eq!(
            t.advance(212),
            (Some(TaskStatus::Aborted(AbortReason::UploadMissed)), vec![])
        );
        assert!(t.all_settled());
    }
}
