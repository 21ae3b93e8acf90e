use crate::chain::ChainError;
use crate::relay::RelayError;
use crate::task::TaskArgsError;
use crate::types::{AbortReason, Balance, TaskId, TaskStatus};

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
    /// The task ended without images.
    #[error("task {task_id} aborted ({reason:?}); {refunded} plancks of the fee refunded so far")]
    Aborted {
        task_id: TaskId,
        reason: AbortReason,
        refunded: Balance,
    },
    #[error("task {task_id} has no images to download: it is {status:?}")]
    NotCompleted { task_id: TaskId, status: TaskStatus },
    /// The relay served images that do not match the agreed result.
    #[error("task {task_id}: the relay's images do not match the agreed result: {detail}")]
    WrongImages { task_id: TaskId, detail: String },
}
