use crate::chain::ss58;
use crate::chain::ChainError;
use crate::relay::RelayError;
use crate::task::TaskArgsError;
use crate::types::{format_tokens, AbortReason, AccountId, Balance, TaskId, TaskStatus};

/// Why an app call failed. Every variant says what happened to the fee.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The arguments are invalid; nothing was sent to the chain.
    #[error("invalid task arguments: {0}")]
    Task(#[from] TaskArgsError),
    /// A chain call failed (its message names the contract's refusal).
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// A relay call failed.
    #[error(transparent)]
    Relay(RelayError),
    #[error("task {0} does not exist on chain")]
    NoSuchTask(TaskId),
    /// The task was created and paid for, but its arguments never reached
    /// the relay; it was cancelled (or will expire) so the fee comes back.
    #[error(
        "task {task_id} was created, but its arguments could not be uploaded to the relay: \
         {error}. {}",
        match cancelled {
            Ok(()) => "The task was cancelled: the fee came back, less the 1 % cancellation fee.".to_owned(),
            Err(e) => format!(
                "Cancelling it failed too ({e}); it is refunded in full once its queue time runs out."
            ),
        }
    )]
    UploadFailed {
        task_id: TaskId,
        error: RelayError,
        cancelled: Result<(), String>,
    },
    /// The task ended without images.
    #[error(
        "task {task_id} aborted: {}{}; {} of the fee refunded so far",
        reason.describe(),
        silent_nodes(*reason, nodes, *someone_committed),
        format_tokens(*refunded)
    )]
    Aborted {
        task_id: TaskId,
        reason: AbortReason,
        refunded: Balance,
        /// The nodes selected for it (none if it never left the queue).
        nodes: Vec<AccountId>,
        /// Whether any of them committed a result.
        someone_committed: bool,
    },
    #[error("task {task_id} has no images to download: it is {status:?}")]
    NotCompleted { task_id: TaskId, status: TaskStatus },
    /// The relay served images that do not match the agreed result.
    #[error("task {task_id}: the relay's images do not match the agreed result: {detail}")]
    WrongImages { task_id: TaskId, detail: String },
}

/// For a task that timed out with nobody committing: who was selected and
/// what that usually means.
fn silent_nodes(reason: AbortReason, nodes: &[AccountId], someone_committed: bool) -> String {
    if reason != AbortReason::Timeout || nodes.is_empty() || someone_committed {
        return String::new();
    }
    let names: Vec<String> = nodes.iter().map(ss58).collect();
    format!(
        " (none of the selected nodes {} committed a result: none of them could run it, \
         e.g. they lack its model or could not fetch its arguments from the relay)",
        names.join(", ")
    )
}
