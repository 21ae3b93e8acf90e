//! The contract's events. Like a FRAME pallet, the contract has one event
//! enum; it is emitted inside an ink! event whose signature topic is pinned
//! to [`EVENT_SIGNATURE_TOPIC`], so an indexer tells it apart from the PSP22
//! `Transfer`/`Approval` events by the first topic and decodes the data as
//! [`Event`]. The carrier's other topics are the task, node and creator
//! the event is about ([`Event::task_id`], [`Event::node`],
//! [`Event::creator`]); its data is the event followed by those three as
//! options.

use crate::{
    AbortReason, AccountId, Balance, Hash, NodeStatus, Params, TaskId, TaskType, Timestamp,
};
use alloc::vec::Vec;
use codec::{Decode, Encode};

/// `blake2b_256("hydrogen::Event")`, hex; the first topic of every [`Event`].
pub const EVENT_SIGNATURE_TOPIC_HEX: &str =
    "ddde8e1db035e41a06e11d5121bdd3352d0d6601d918dd37c7bfbf2b776f748c";
pub const EVENT_SIGNATURE_TOPIC: Hash = [
    0xdd, 0xde, 0x8e, 0x1d, 0xb0, 0x35, 0xe4, 0x1a, 0x06, 0xe1, 0x1d, 0x51, 0x21, 0xbd, 0xd3, 0x35,
    0x2d, 0x0d, 0x66, 0x01, 0xd9, 0x18, 0xdd, 0x37, 0xc7, 0xbf, 0xbf, 0x2b, 0x77, 0x6f, 0x74, 0x8c,
];

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "type-info", derive(scale_info::TypeInfo))]
pub enum Event {
    /// A node staked and joined, or changed status by its own call or when a
    /// task released it.
    NodeStatusChanged {
        node: AccountId,
        status: NodeStatus,
    },
    /// A node left too many tasks silently; its stake was returned.
    NodeKickedOut {
        node: AccountId,
        stake_returned: Balance,
    },
    /// A task was created and its fee escrowed; it waits in the queue.
    TaskCreated {
        task_id: TaskId,
        creator: AccountId,
        task_type: TaskType,
        args_hash: Hash,
        min_vram_gb: u32,
        num_images: u8,
        fee: Balance,
    },
    /// One per selected node when a task starts.
    NodeSelected {
        task_id: TaskId,
        node: AccountId,
        deadline: Timestamp,
    },
    /// All three nodes committed; reveals are open.
    CommitmentsReady {
        task_id: TaskId,
    },
    /// A node revealed its outcome (the outcome is in the transaction).
    ResultRevealed {
        task_id: TaskId,
        node: AccountId,
    },
    /// Two results agreed. `uploader` puts the images on the relay.
    TaskSucceeded {
        task_id: TaskId,
        result: Vec<u8>,
        uploader: AccountId,
    },
    /// The uploader confirmed the images are on the relay.
    ResultsUploaded {
        task_id: TaskId,
        node: AccountId,
    },
    TaskAborted {
        task_id: TaskId,
        reason: AbortReason,
    },
    NodePaid {
        task_id: TaskId,
        node: AccountId,
        amount: Balance,
    },
    /// The node's revealed result contradicted the result an audit (a
    /// re-execution by three other nodes) accepted; its stake was burned,
    /// less what pays the audit and makes good the creator and the wronged node.
    NodeSlashed {
        task_id: TaskId,
        node: AccountId,
        amount: Balance,
    },
    /// The node stayed silent past a deadline: no fee, one more miss.
    NodeMissed {
        task_id: TaskId,
        node: AccountId,
        missed: u8,
    },
    /// Escrow returned to the task's creator.
    Refunded {
        task_id: TaskId,
        creator: AccountId,
        amount: Balance,
    },
    /// A node revealed an entropy ticket secret.
    EntropyContributed {
        node: AccountId,
    },
    ParamsUpdated {
        params: Params,
    },
    /// A node committed and then stayed silent while reveals were open: it
    /// forfeited `amount` of its stake (burned).
    StakeForfeited {
        task_id: TaskId,
        node: AccountId,
        amount: Balance,
    },
    /// Queued tasks were armed for selection: their eligible nodes are fixed
    /// now, and they start once both `contributors` revealed their entropy
    /// secrets. Emitted again with new contributors when one withheld.
    TasksArmed {
        tasks: Vec<TaskId>,
        contributors: Vec<AccountId>,
    },
    /// A designated contributor did not reveal its secret in time: it
    /// forfeited `forfeited` of its stake (burned) and one more miss.
    EntropyWithheld {
        node: AccountId,
        forfeited: Balance,
        missed: u8,
    },
    /// The owner offered ownership to `to`, who must accept it.
    OwnershipOffered {
        to: AccountId,
    },
    OwnershipTransferred {
        owner: AccountId,
    },
    /// The owner gave up minting for good.
    MintingDisabled,
    /// A revealed result contradicted the two that decided `task_id`:
    /// instead of slashing anyone on a 2-vs-1, the task is re-executed by
    /// three other nodes as task `audit`. The stakes of the three are held.
    AuditOpened {
        task_id: TaskId,
        audit: TaskId,
        disputed: AccountId,
    },
    /// The designated uploader missed its deadline; `uploader`, the other
    /// node that agreed, uploads instead (once per task).
    UploaderReplaced {
        task_id: TaskId,
        uploader: AccountId,
    },
    /// The owner registered the key whose receipts `confirm_upload` requires.
    RelayKeySet {
        key: Option<[u8; 33]>,
    },
    /// The audit of `task_id` ended. With a `result`, every revealed result
    /// of `task_id` that contradicts it was slashed; without one (the audit
    /// found no consensus), nobody was.
    AuditResolved {
        task_id: TaskId,
        audit: TaskId,
        result: Option<Vec<u8>>,
    },
}

impl Event {
    /// The task the event is about, if it is about one (`TasksArmed` is
    /// about several). Also the event's task topic on chain.
    pub fn task_id(&self) -> Option<TaskId> {
        match self {
            Event::TaskCreated { task_id, .. }
            | Event::NodeSelected { task_id, .. }
            | Event::CommitmentsReady { task_id }
            | Event::ResultRevealed { task_id, .. }
            | Event::TaskSucceeded { task_id, .. }
            | Event::ResultsUploaded { task_id, .. }
            | Event::TaskAborted { task_id, .. }
            | Event::NodePaid { task_id, .. }
            | Event::NodeSlashed { task_id, .. }
            | Event::NodeMissed { task_id, .. }
            | Event::StakeForfeited { task_id, .. }
            | Event::AuditOpened { task_id, .. }
            | Event::AuditResolved { task_id, .. }
            | Event::UploaderReplaced { task_id, .. }
            | Event::Refunded { task_id, .. } => Some(*task_id),
            Event::TasksArmed { .. }
            | Event::NodeStatusChanged { .. }
            | Event::NodeKickedOut { .. }
            | Event::EntropyContributed { .. }
            | Event::EntropyWithheld { .. }
            | Event::ParamsUpdated { .. }
            | Event::OwnershipOffered { .. }
            | Event::OwnershipTransferred { .. }
            | Event::MintingDisabled
            | Event::RelayKeySet { .. } => None,
        }
    }

    /// The node the event is about, if any. Also its node topic on chain.
    pub fn node(&self) -> Option<AccountId> {
        match self {
            Event::NodeStatusChanged { node, .. }
            | Event::NodeKickedOut { node, .. }
            | Event::NodeSelected { node, .. }
            | Event::ResultRevealed { node, .. }
            | Event::ResultsUploaded { node, .. }
            | Event::NodePaid { node, .. }
            | Event::NodeSlashed { node, .. }
            | Event::NodeMissed { node, .. }
            | Event::EntropyContributed { node }
            | Event::StakeForfeited { node, .. }
            | Event::EntropyWithheld { node, .. } => Some(*node),
            Event::TaskSucceeded { uploader, .. } | Event::UploaderReplaced { uploader, .. } => {
                Some(*uploader)
            }
            Event::AuditOpened { disputed, .. } => Some(*disputed),
            _ => None,
        }
    }

    /// The task creator the event is about, if any. Also its creator topic.
    pub fn creator(&self) -> Option<AccountId> {
        match self {
            Event::TaskCreated { creator, .. } | Event::Refunded { creator, .. } => Some(*creator),
            _ => None,
        }
    }
}
