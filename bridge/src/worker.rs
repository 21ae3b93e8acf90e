//! Carrying one task through the network after `create_task`: upload its
//! arguments, follow it on chain until it settles, download and verify the
//! images, store them. Every step is recorded, so a restarted bridge picks
//! the task up where it was ([`drive`] of a row in `created` or `uploaded`,
//! [`recover`] of one left `submitting`, both from [`maintain`]).

use crate::store::{TaskRow, TaskState};
use crate::Shared;
use hydrogen_sdk::app::{AppError, Client, PendingTask, Settled};
use hydrogen_sdk::chain::ss58;
use hydrogen_sdk::task::TaskArgs;
use hydrogen_sdk::types::AbortReason;
use std::sync::Arc;
use std::time::Duration;

/// Whether retrying later may help: the chain or the relay was unreachable.
fn transient(e: &AppError) -> bool {
    match e {
        AppError::Chain(e) => e.is_transport(),
        AppError::Relay(e) => e.is_retryable(),
        _ => false,
    }
}

/// Drives `row` (in `created` or `uploaded`) to a final state.
pub(crate) async fn drive(shared: Arc<Shared>, row: TaskRow) {
    let id = row.id.clone();
    if let Err(error) = run(&shared, row).await {
        let message = format!("{error:#}");
        tracing::warn!(id, error = message, "task failed");
        if let Err(e) = shared
            .store
            .set_state(&id, TaskState::Failed, Some(&message))
            .await
        {
            tracing::error!(id, error = format!("{e:#}"), "cannot record the failure");
        }
    }
}

async fn run(shared: &Shared, row: TaskRow) -> anyhow::Result<()> {
    let client = shared
        .client
        .get()
        .ok_or_else(|| anyhow::anyhow!("not connected to the network"))?;
    let (Some(task_id), Some(created_in)) = (row.task_id, row.created_in) else {
        anyhow::bail!("the task has no chain task id");
    };
    let pending = PendingTask {
        task_id,
        created_in,
    };
    let config = &shared.config;
    if row.state == TaskState::Created {
        let args = TaskArgs::from_json(&row.args)?;
        match client.upload(task_id, &args, config.upload_timeout).await {
            Ok(()) => {
                shared
                    .store
                    .set_state(&row.id, TaskState::Uploaded, None)
                    .await?;
            }
            Err(e @ AppError::UploadFailed { .. }) => {
                let state = match &e {
                    AppError::UploadFailed {
                        cancelled: Ok(()), ..
                    } => TaskState::Cancelled,
                    _ => TaskState::Failed,
                };
                shared
                    .store
                    .set_state(&row.id, state, Some(&e.to_string()))
                    .await?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    }
    let settled = retry("follow", &row.id, || {
        client.wait(&pending, config.queue_timeout)
    })
    .await?;
    match settled {
        Settled::Completed(task) => {
            let nodes: Vec<String> = task.nodes.iter().map(ss58).collect();
            shared.store.set_nodes(&row.id, &nodes).await?;
            let done = retry("download", &row.id, || client.download(&task)).await?;
            shared
                .store
                .complete(&row.id, &done.result, &nodes, &done.images)
                .await?;
            tracing::info!(
                id = row.id,
                task_id,
                images = done.images.len(),
                "task completed"
            );
        }
        Settled::Aborted {
            task,
            reason,
            refunded,
            someone_committed,
        } => {
            let nodes: Vec<String> = task.nodes.iter().map(ss58).collect();
            shared.store.set_nodes(&row.id, &nodes).await?;
            let state = if reason == AbortReason::Cancelled {
                TaskState::Cancelled
            } else {
                TaskState::Aborted
            };
            let error = AppError::Aborted {
                task_id,
                reason,
                refunded,
                nodes: task.nodes,
                someone_committed,
            };
            if shared
                .store
                .set_state(&row.id, state, Some(&error.to_string()))
                .await?
            {
                // Once only: the state moved just now.
                shared.store.credit(&row.api_key_id, refunded).await?;
            }
            tracing::info!(id = row.id, task_id, ?reason, refunded, "task aborted");
        }
    }
    Ok(())
}

/// Runs `step` until it succeeds or fails for good, pausing (up to 30 s)
/// while the network is unreachable.
async fn retry<T, F, Fut>(what: &str, id: &str, mut step: F) -> Result<T, AppError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AppError>>,
{
    let mut pause = Duration::from_secs(1);
    loop {
        match step().await {
            Ok(value) => return Ok(value),
            Err(e) if transient(&e) => {
                tracing::warn!(id, error = %e, "{what} failed; retrying in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sends `create_task` for a row already written as `submitting`, and
/// records the outcome: `created` with the chain's task id, or `failed`.
/// The caller holds [`Shared::submitting`].
pub(crate) async fn create(
    shared: &Shared,
    client: &Client,
    row: &TaskRow,
    args: &TaskArgs,
) -> Result<PendingTask, AppError> {
    match client.create(args, row.fee).await {
        Ok(pending) => {
            if let Err(e) = shared
                .store
                .set_created(&row.id, pending.task_id, pending.created_in)
                .await
            {
                // The fee is escrowed but the record is not: say so loudly;
                // the task is refunded when its queue time runs out.
                tracing::error!(
                    id = row.id,
                    task_id = pending.task_id,
                    error = format!("{e:#}"),
                    "create_task succeeded but the database did not record it"
                );
            }
            Ok(pending)
        }
        Err(e) => {
            // A refusal by the contract or the node before inclusion paid
            // nothing: give the quota back. A transport failure may have
            // left the transaction on its way: keep the quota counted.
            let paid_nothing = !matches!(&e, AppError::Chain(c) if c.is_transport());
            let message = if paid_nothing {
                format!("create_task failed: {e}")
            } else {
                format!(
                    "create_task's outcome is unknown ({e}); check the account's tasks before \
                     trying again"
                )
            };
            if let Err(db) = shared
                .store
                .set_state(&row.id, TaskState::Failed, Some(&message))
                .await
            {
                tracing::error!(
                    id = row.id,
                    error = format!("{db:#}"),
                    "cannot record the failure"
                );
            }
            if paid_nothing {
                if let Err(db) = shared.store.release(&row.api_key_id, row.fee).await {
                    tracing::error!(
                        id = row.id,
                        error = format!("{db:#}"),
                        "cannot release the quota"
                    );
                }
            }
            Err(e)
        }
    }
}

/// How long [`Client::find_created`] waits for a `create_task` that a
/// block or the transaction pool may still hold: the SDK waits up to 120 s
/// for a call to be final, plus a margin.
const FIND_PATIENCE: Duration = Duration::from_secs(180);

/// For as long as the bridge runs: renews its leases on its unfinished
/// tasks, resumes the tasks it may carry on with (its own from a previous
/// run, and those of bridges whose lease ran out: they died), and settles
/// the rows left `submitting` by a stopped bridge (this one's previous run,
/// at once; another's once its lease ran out). Rows that cannot be settled
/// now (the chain is unreachable) are tried again next round.
pub(crate) async fn maintain(shared: Arc<Shared>, client: Client, started_ms: i64) {
    loop {
        if let Err(e) = shared.store.renew_leases().await {
            tracing::error!(error = format!("{e:#}"), "cannot renew the task leases");
        }
        match shared.store.resumable().await {
            Ok(rows) => {
                for row in rows {
                    if shared.is_driving(&row.id) {
                        continue;
                    }
                    match shared.store.claim(&row.id).await {
                        Ok(true) => {
                            tracing::info!(id = row.id, task_id = ?row.task_id, state = row.state.as_str(), "resuming task");
                            shared.drive(row);
                        }
                        Ok(false) => {}
                        Err(e) => tracing::error!(
                            id = row.id,
                            error = format!("{e:#}"),
                            "cannot claim a task"
                        ),
                    }
                }
            }
            Err(e) => tracing::error!(error = format!("{e:#}"), "cannot list the tasks to resume"),
        }
        match shared.store.interrupted(started_ms).await {
            Ok(rows) => {
                for row in rows {
                    if let Err(e) = recover(&shared, &client, &row).await {
                        tracing::warn!(
                            id = row.id,
                            error = format!("{e:#}"),
                            "cannot settle an interrupted task yet"
                        );
                    }
                }
            }
            Err(e) => tracing::error!(error = format!("{e:#}"), "cannot list interrupted tasks"),
        }
        // A third of the lease: renewals keep it held through one missed round.
        tokio::time::sleep(shared.store.lease() / 3).await;
    }
}

/// One row left `submitting`: finds its `create_task` on chain and follows
/// the task, or, when the call is in no block, fails the row and gives the
/// quota back (nothing was paid).
async fn recover(shared: &Arc<Shared>, client: &Client, row: &TaskRow) -> anyhow::Result<()> {
    let store = &shared.store;
    if !store.claim(&row.id).await? {
        return Ok(()); // another bridge took it first
    }
    let Some(after) = row.created_in else {
        store
            .fail_submitting(&row.id, crate::store::INTERRUPTED)
            .await?;
        tracing::warn!(
            id = row.id,
            "task left submitting with no block to search from: failed"
        );
        return Ok(());
    };
    let args = TaskArgs::from_json(&row.args)?;
    let skip = store.task_ids_after(after).await?;
    let found = client
        .find_created(&args, row.fee, after, &skip, FIND_PATIENCE)
        .await?;
    match found {
        Some(pending) => {
            if store
                .set_created(&row.id, pending.task_id, pending.created_in)
                .await?
            {
                tracing::info!(
                    id = row.id,
                    task_id = pending.task_id,
                    "found the create_task of a task left submitting; following it"
                );
                let mut row = row.clone();
                row.task_id = Some(pending.task_id);
                row.created_in = Some(pending.created_in);
                row.state = TaskState::Created;
                shared.drive(row);
            }
        }
        None => {
            let message = format!(
                "the bridge stopped while submitting, and no create_task for this task is in a \
                 block after #{after}: nothing was paid"
            );
            if store.fail_submitting(&row.id, &message).await? {
                store.release(&row.api_key_id, row.fee).await?;
                tracing::warn!(
                    id = row.id,
                    "task left submitting was never created: failed, quota released"
                );
            }
        }
    }
    Ok(())
}
