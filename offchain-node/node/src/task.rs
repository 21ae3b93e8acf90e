//! A task as this node sees it: the persisted record and its states.
//!
//! ```text
//! Selected ─▶ ArgumentsFetched ─▶ Generated ─▶ Committed ─▶ Revealed ─┬─▶ ImagesUploaded ─▶ Settled
//!    │               │   (invalid args ─▶ Generated)                  └─▶ Settled
//!    └───────────────┴──▶ Aborted (local fault, deadline passed: the node stays silent)
//! ```
//!
//! Each state is written to the database before anything is sent on its
//! behalf; the outcome and the secret nonce are written together with
//! `Generated`, before the commitment leaves the node.

use hydrogen_sdk::types::{Hash, Outcome, TaskId, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum TaskState {
    /// The chain selected this node.
    Selected,
    /// The arguments are downloaded, match the on-chain hash and are valid.
    ArgumentsFetched,
    /// The outcome and the nonce are decided and stored.
    Generated,
    /// The commitment is on chain.
    Committed,
    /// The outcome is revealed on chain.
    Revealed,
    /// This node was the uploader and the images are on the relay.
    ImagesUploaded,
    /// Nothing more to do: the task is decided for this node.
    Settled,
    /// Given up without a chain call: a local fault or a missed deadline.
    Aborted(String),
}

impl TaskState {
    pub fn is_terminal(&self) -> bool {
        matches!(self, TaskState::Settled | TaskState::Aborted(_))
    }

    /// The name used in logs, metrics, the status endpoint and `HYDROGEN_NODE_CRASH_AT`.
    pub fn name(&self) -> &'static str {
        match self {
            TaskState::Selected => "selected",
            TaskState::ArgumentsFetched => "arguments_fetched",
            TaskState::Generated => "generated",
            TaskState::Committed => "committed",
            TaskState::Revealed => "revealed",
            TaskState::ImagesUploaded => "images_uploaded",
            TaskState::Settled => "settled",
            TaskState::Aborted(_) => "aborted",
        }
    }
}

/// The serde form of [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredOutcome {
    /// Hex of the concatenated big-endian 8-byte pHashes.
    Images(String),
    InvalidArgs,
}

impl From<&Outcome> for StoredOutcome {
    fn from(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Images(bytes) => StoredOutcome::Images(hex::encode(bytes)),
            Outcome::InvalidArgs => StoredOutcome::InvalidArgs,
        }
    }
}

impl StoredOutcome {
    pub fn outcome(&self) -> Outcome {
        match self {
            StoredOutcome::Images(h) => {
                Outcome::Images(hex::decode(h).expect("stored pHashes are hex"))
            }
            StoredOutcome::InvalidArgs => Outcome::InvalidArgs,
        }
    }
}

/// A chain call that may have been sent but not seen finalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingCall {
    Commit,
    Reveal,
    ConfirmUpload,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: TaskId,
    #[serde(flatten)]
    pub state: TaskState,
    /// Commit deadline (ms since the epoch, the chain's clock).
    pub deadline: Timestamp,
    /// The downloaded arguments (UTF-8 JSON), once fetched.
    pub args: Option<String>,
    pub outcome: Option<StoredOutcome>,
    /// The commitment's secret nonce, hex.
    pub nonce: Option<String>,
    /// Number of PNG files kept for upload under `data_dir/tasks/<id>/`.
    pub images: u32,
    pub pending: Option<PendingCall>,
}

impl TaskRecord {
    pub fn selected(id: TaskId, deadline: Timestamp) -> Self {
        TaskRecord {
            id,
            state: TaskState::Selected,
            deadline,
            args: None,
            outcome: None,
            nonce: None,
            images: 0,
            pending: None,
        }
    }

    pub fn nonce(&self) -> Option<Hash> {
        let bytes = hex::decode(self.nonce.as_ref()?).ok()?;
        bytes.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_json() {
        let mut record = TaskRecord::selected(3, 99);
        record.state = TaskState::Generated;
        record.outcome = Some(StoredOutcome::from(&Outcome::Images(vec![
            1, 2, 3, 4, 5, 6, 7, 8,
        ])));
        record.nonce = Some(hex::encode([9u8; 32]));
        record.pending = Some(PendingCall::Commit);
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains(r#""state":"generated""#), "{json}");
        let back: TaskRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, record);
        assert_eq!(back.nonce(), Some([9; 32]));
        assert_eq!(
            back.outcome.unwrap().outcome(),
            Outcome::Images(vec![1, 2, 3, 4, 5, 6, 7, 8])
        );
        let aborted = TaskState::Aborted("model missing".into());
        let json = serde_json::to_string(&aborted).unwrap();
        assert_eq!(serde_json::from_str::<TaskState>(&json).unwrap(), aborted);
        assert!(aborted.is_terminal() && !TaskState::Revealed.is_terminal());
    }
}
