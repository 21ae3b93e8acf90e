//! Retention: what the relay deletes, and when.
//!
//! A sweep walks every task in the store — also those stored through other
//! replicas — and reads each at the finalized block:
//!
//! - a finished task (Completed or Aborted) is stamped with the time the
//!   relay first saw it finished (persisted, so a restart does not reset
//!   it); its blobs are deleted `ttl_secs` after that stamp;
//! - an unfinished task whose deadline passed more than `grace_secs` ago is
//!   deleted too: it will never need its blobs (a stuck task, or one the
//!   relay never saw finish);
//! - a task the chain does not know (the relay pointed at a new contract)
//!   is left alone and logged: deleting on a lagging view would lose data.
//!
//! Replicas sweeping one store at once agree: the finished stamp is a
//! conditional first write (the earliest wins, the others read it),
//! and deleting what another sweep already deleted is not an error. (A
//! replica may stamp a task just as another deletes it: that lone stamp
//! goes one TTL later.) The sweep
//! also drops the replay guard's stale signatures.

use crate::State;
use hydrogen_sdk::types::TaskId;

/// Why a task's blobs were deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepReason {
    /// Finished more than the TTL ago.
    Finished,
    /// Unfinished, past its deadline plus the grace period.
    PastDeadline,
}

impl SweepReason {
    fn label(self) -> &'static str {
        match self {
            SweepReason::Finished => "finished",
            SweepReason::PastDeadline => "past_deadline",
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Tasks whose blobs were deleted, in id order.
    pub deleted: Vec<(TaskId, SweepReason)>,
    /// Tasks whose blobs were kept.
    pub kept: Vec<TaskId>,
}

/// One sweep at wall-clock time `now_ms`.
pub async fn sweep(state: &State, now_ms: u64) -> anyhow::Result<SweepReport> {
    let retention = state.config.retention;
    let mut report = SweepReport::default();
    for id in state.store.stored_tasks().await? {
        let task = state
            .chain
            .finalized_task(id)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        let reason = match task {
            None => {
                tracing::warn!(task = id, "the chain has no such task; keeping its blobs");
                None
            }
            Some(task) if task.status.is_final() => {
                // None: another replica's sweep deleted it just now.
                let Some(finished_at) = state.store.mark_finished(id, now_ms).await? else {
                    continue;
                };
                (now_ms >= finished_at.saturating_add(retention.ttl_secs * 1000))
                    .then_some(SweepReason::Finished)
            }
            Some(task) => (task.deadline != 0
                && now_ms > task.deadline.saturating_add(retention.grace_secs * 1000))
            .then_some(SweepReason::PastDeadline),
        };
        match reason {
            Some(reason) if state.store.delete_task(id).await? => {
                tracing::info!(task = id, reason = reason.label(), "blobs deleted");
                state
                    .metrics
                    .swept
                    .with_label_values(&[reason.label()])
                    .inc();
                report.deleted.push((id, reason));
            }
            _ => report.kept.push(id),
        }
    }
    state.store.forget_signatures(now_ms).await?;
    state
        .metrics
        .stored_tasks
        .set(state.store.tasks().len() as i64);
    Ok(report)
}
