//! The Hydrogen protocol's on-chain vocabulary.
//!
//! Everything the `hydrogen` ink! contract and the off-chain world must agree
//! on byte for byte lives here, once: the events the contract emits, the
//! errors it returns, node and task statuses, governance parameters, the
//! commitment pre-image, and the pHash agreement rule. The crate is `no_std`
//! so the contract (Rust 1.86, wasm) and the SDK (Rust 1.95) compile the same
//! source.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod consensus;
mod event;

pub use consensus::*;
pub use event::*;

use alloc::string::String;
use alloc::vec::Vec;
use codec::{Decode, Encode};

/// A 32-byte account id: ink!'s own type, so the contract's metadata names it
/// `AccountId` and standard tools print it as an SS58 address. Encoded as
/// its 32 bytes, like `sp_core::crypto::AccountId32`.
pub use ink_primitives::AccountId;
pub type Balance = u128;
pub type TaskId = u64;
/// Milliseconds since the Unix epoch, as the chain's timestamp pallet counts.
pub type Timestamp = u64;
pub type Hash = [u8; 32];

/// Nodes that execute every task.
pub const NODES_PER_TASK: usize = 3;
/// Bytes of pHash per image in a revealed result.
pub const PHASH_BYTES: usize = 8;
/// Largest `num_images` a task may ask for.
pub const MAX_IMAGES: u8 = 10;
/// Fee weights by commit order (first, second, third): 40 %, 36 %, 24 %.
pub const ORDER_WEIGHTS: [u128; NODES_PER_TASK] = [10, 9, 6];
/// Sum of [`ORDER_WEIGHTS`]: a task fee is split in this many parts.
pub const ORDER_WEIGHT_TOTAL: u128 = 25;
/// Upper bound on `Params::max_queue`, so one dispatch pass stays within a block.
pub const MAX_QUEUE_LIMIT: u32 = 256;
/// The VRAM classes (GB) nodes are grouped in: a node counts as the largest
/// class at or below its VRAM, and a task's `min_vram_gb` may not exceed the
/// largest class. Fixed classes keep the availability index a constant size
/// however many distinct VRAM figures nodes claim.
pub const VRAM_CLASSES: [u32; 10] = [4, 6, 8, 10, 12, 16, 24, 32, 48, 80];
/// Largest `min_vram_gb` a task may ask for.
pub const MAX_TASK_VRAM_GB: u32 = 80;
/// Percent of a queued task's fee that cancelling it costs (burned), so the
/// queue's price floor cannot be held for free. Expiry and eviction refund all.
pub const QUEUED_CANCEL_FEE_PERCENT: u128 = 1;
/// Milliseconds a batch's designated contributors have to reveal their
/// entropy secrets before a withholder is penalised and replaced.
pub const ENTROPY_WINDOW_MS: Timestamp = 60_000;
/// Entropy contributors designated per armed batch.
pub const CONTRIBUTORS_PER_BATCH: usize = 2;
/// Largest `Params::distance_threshold`: unrelated images differ in 32 bits
/// on average, so a threshold near that would accept anything.
pub const MAX_DISTANCE_THRESHOLD: u8 = 24;

/// The VRAM class index of a node with `vram_gb`, if it reaches the smallest.
pub fn vram_class(vram_gb: u32) -> Option<usize> {
    VRAM_CLASSES.iter().rposition(|&c| c <= vram_gb)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "type-info", derive(scale_info::TypeInfo))]
#[cfg_attr(feature = "ink-std", derive(ink::storage::traits::StorageLayout))]
pub enum NodeStatus {
    /// Staked and waiting to be selected.
    Available,
    /// Selected for a task that has not released it yet.
    Busy,
    /// Staked but not taking tasks.
    Paused,
    /// Busy; becomes `Paused` when the task releases it.
    PendingPause,
    /// Busy; quits (stake refunded) when the task releases it.
    PendingQuit,
    /// Not in the network: never joined, quit, kicked out or slashed.
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "type-info", derive(scale_info::TypeInfo))]
#[cfg_attr(feature = "ink-std", derive(ink::storage::traits::StorageLayout))]
pub enum TaskType {
    /// Stable Diffusion text-to-image; the result is one pHash per image.
    StableDiffusion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "type-info", derive(scale_info::TypeInfo))]
#[cfg_attr(feature = "ink-std", derive(ink::storage::traits::StorageLayout))]
pub enum TaskStatus {
    /// Fee escrowed, waiting for fresh randomness and three suitable free nodes.
    Queued,
    /// Three nodes selected; commit and reveal under way.
    Running,
    /// Two results agreed; waiting for the designated node to confirm the upload.
    Succeeded,
    /// The images are on the relay and the uploader has been paid.
    Completed,
    /// Ended without a usable result.
    Aborted(AbortReason),
}

impl TaskStatus {
    /// No more consensus decisions: the task's outcome is fixed (late
    /// reveals of still-busy nodes may yet be judged).
    pub fn is_final(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Aborted(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "type-info", derive(scale_info::TypeInfo))]
#[cfg_attr(feature = "ink-std", derive(ink::storage::traits::StorageLayout))]
pub enum AbortReason {
    /// The creator cancelled it while queued.
    Cancelled,
    /// Pushed out of a full queue by better-paying tasks.
    Evicted,
    /// Two nodes agreed that the task arguments are invalid.
    InvalidArgs,
    /// Every revealed result disagreed with every other.
    NoConsensus,
    /// The deadline passed before two results agreed.
    Timeout,
    /// Consensus was reached but the designated node never confirmed the upload.
    UploadMissed,
    /// Waited in the queue longer than `Params::queue_ttl_ms`; refunded in full.
    Expired,
}

impl AbortReason {
    /// What happened, in words, for people reading an app's or node's output.
    pub fn describe(self) -> &'static str {
        match self {
            AbortReason::Cancelled => "cancelled by its creator while queued",
            AbortReason::Evicted => "pushed out of the full queue by better-paying tasks",
            AbortReason::InvalidArgs => "two nodes judged its arguments invalid",
            AbortReason::NoConsensus => "the nodes' results disagreed",
            AbortReason::Timeout => {
                "the selected nodes did not deliver two agreeing results in time"
            }
            AbortReason::UploadMissed => "the nodes agreed, but the images were never uploaded",
            AbortReason::Expired => "no nodes took it before its queue time ran out",
        }
    }
}

/// `amount` in whole tokens with its unit: `25 HYD`, `0.25 HYD`.
#[cfg(feature = "std")]
pub fn format_tokens(amount: Balance) -> String {
    let whole = amount / UNIT;
    let fraction = amount % UNIT;
    if fraction == 0 {
        return alloc::format!("{whole} HYD");
    }
    let digits = alloc::format!("{fraction:012}");
    alloc::format!("{whole}.{} HYD", digits.trim_end_matches('0'))
}

/// What a node commits to and later reveals for a task.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "type-info", derive(scale_info::TypeInfo))]
#[cfg_attr(feature = "ink-std", derive(ink::storage::traits::StorageLayout))]
pub enum Outcome {
    /// [`PHASH_BYTES`] big-endian pHash bytes per image, in image order.
    Images(Vec<u8>),
    /// The task arguments failed validation: a vote to abort, hidden like a result.
    InvalidArgs,
}

/// Owner-governed protocol parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "type-info", derive(scale_info::TypeInfo))]
#[cfg_attr(feature = "ink-std", derive(ink::storage::traits::StorageLayout))]
pub struct Params {
    /// Two images agree when their pHashes differ in at most this many bits.
    pub distance_threshold: u8,
    /// Milliseconds the selected nodes have to commit; revealing gets as long again.
    pub timeout_ms: Timestamp,
    /// Stake a node locks on `join`.
    pub required_stake: Balance,
    /// Smallest fee a task may offer.
    pub min_fee: Balance,
    /// Most tasks waiting in the queue; at most [`MAX_QUEUE_LIMIT`].
    pub max_queue: u32,
    /// Consecutive tasks a node may leave silently before it is kicked out.
    pub max_missed: u8,
    /// Percent of its stake a node forfeits (burned) when it committed and
    /// then did not reveal although reveals were open to it.
    pub silence_penalty_percent: u8,
    /// Milliseconds a kicked-out node must wait before it may join again.
    pub rejoin_cooldown_ms: Timestamp,
    /// Milliseconds a task may wait in the queue before it expires (refunded).
    pub queue_ttl_ms: Timestamp,
    /// Milliseconds after `join` or `resume` before a node enters a draw, so
    /// a node cannot step in exactly when the free nodes favour it.
    pub warmup_ms: Timestamp,
}

impl Params {
    pub fn validate(&self) -> Result<(), Error> {
        const SECOND: Timestamp = 1_000;
        const DAY: Timestamp = 24 * 60 * 60 * SECOND;
        let ok = self.distance_threshold <= MAX_DISTANCE_THRESHOLD
            && (SECOND..=DAY).contains(&self.timeout_ms)
            && self.required_stake > 0
            && self.min_fee > 0
            && (1..=MAX_QUEUE_LIMIT).contains(&self.max_queue)
            && (1..=16).contains(&self.max_missed)
            && self.silence_penalty_percent <= 100
            && self.rejoin_cooldown_ms <= 7 * DAY
            && (SECOND..=7 * DAY).contains(&self.queue_ttl_ms)
            && self.warmup_ms <= DAY;
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidParams)
        }
    }
}

impl Default for Params {
    fn default() -> Self {
        Params {
            distance_threshold: DEFAULT_DISTANCE_THRESHOLD,
            timeout_ms: 10 * 60 * 1000,
            required_stake: 400 * UNIT,
            min_fee: UNIT,
            max_queue: 50,
            max_missed: 3,
            silence_penalty_percent: 10,
            rejoin_cooldown_ms: 60 * 60 * 1000,
            queue_ttl_ms: 60 * 60 * 1000,
            warmup_ms: 2 * 60 * 1000,
        }
    }
}

/// One whole token (the token has 12 decimals, like the chain's native unit).
pub const UNIT: Balance = 1_000_000_000_000;
pub const TOKEN_DECIMALS: u8 = 12;

/// A registered node as the contract reports it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "type-info", derive(scale_info::TypeInfo))]
pub struct NodeInfo {
    pub status: NodeStatus,
    pub stake: Balance,
    pub gpu_name: String,
    pub vram_gb: u32,
    pub engine_version: u32,
    pub current_task: Option<TaskId>,
    /// Consecutive tasks this node left without committing or revealing.
    pub missed: u8,
    /// When a kicked-out node may join again (0: no cooldown).
    pub rejoin_after: Timestamp,
    /// Audits open on tasks where this node revealed: its stake is held
    /// (it cannot quit with it) until they are resolved.
    pub disputes: u8,
}

/// Node numbers by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "type-info", derive(scale_info::TypeInfo))]
#[cfg_attr(feature = "ink-std", derive(ink::storage::traits::StorageLayout))]
pub struct NodeCounts {
    pub available: u32,
    pub busy: u32,
    pub paused: u32,
}

/// A task as the contract reports it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "type-info", derive(scale_info::TypeInfo))]
pub struct TaskInfo {
    pub id: TaskId,
    pub creator: AccountId,
    pub task_type: TaskType,
    pub args_hash: Hash,
    pub min_vram_gb: u32,
    pub num_images: u8,
    pub fee: Balance,
    pub status: TaskStatus,
    pub created_at: Timestamp,
    /// Commit deadline; zero until the task starts.
    pub deadline: Timestamp,
    pub nodes: Vec<AccountId>,
    /// The accepted result once two nodes agreed.
    pub result: Option<Vec<u8>>,
    /// The node that uploads the images and confirms it on chain.
    pub uploader: Option<AccountId>,
    /// The agreement threshold this task is judged by (fixed at creation).
    pub distance_threshold: u8,
    /// For an audit: the task whose 2-vs-1 split it re-executes.
    pub audit_of: Option<TaskId>,
    /// The audit opened on this task's split, if any.
    pub audit: Option<TaskId>,
}

/// Every way a contract call can fail. The SDK prints the variant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "type-info", derive(scale_info::TypeInfo))]
pub enum Error {
    NotOwner,
    InvalidParams,
    InsufficientBalance,
    InsufficientAllowance,
    AlreadyJoined,
    NotJoined,
    /// The node's status does not allow this call.
    WrongNodeStatus,
    InvalidGpu,
    InvalidNumImages,
    FeeTooLow,
    /// The queue is full of tasks paying at least as much per image.
    QueueFull,
    TaskNotFound,
    /// The caller is not one of the task's selected nodes.
    NotSelected,
    /// The task's status does not allow this call.
    WrongTaskStatus,
    AlreadyCommitted,
    /// Reveals open when all three committed, or after the deadline with two.
    RevealNotOpen,
    NotCommitted,
    AlreadyRevealed,
    CommitmentMismatch,
    /// An `Outcome::Images` whose length is not `num_images * 8`.
    ResultLengthMismatch,
    DeadlinePassed,
    DeadlineNotReached,
    /// Only the creator or a selected node may cancel.
    NotAllowed,
    NotUploader,
    /// The secret does not match the node's entropy ticket.
    TicketMismatch,
    Overflow,
    /// No armed task waits for entropy, or this batch already has its two
    /// contributions: the call would only cost the node a fee.
    EntropyNotNeeded,
    /// A task's `min_vram_gb` above [`MAX_TASK_VRAM_GB`].
    VramTooHigh,
    /// A kicked-out node joins again before `NodeInfo::rejoin_after`.
    Cooldown,
    /// `accept_ownership` by an account that was not offered ownership.
    NotPendingOwner,
    /// The owner gave up minting for good.
    MintingDisabled,
    /// The node revealed in a task whose audit is still open: its stake is
    /// held until the audit is resolved.
    InDispute,
    /// `confirm_upload` without a receipt signed by the registered relay
    /// key for this task's accepted result.
    BadReceipt,
}

/// A compressed secp256k1 public key: the relay's receipt key.
pub type RelayKey = [u8; 33];
/// A recoverable secp256k1 signature (r ‖ s ‖ v) over a receipt's Blake2b-256.
pub type Receipt = [u8; 65];

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn tokens_print_in_whole_units() {
        assert_eq!(format_tokens(25 * UNIT), "25 HYD");
        assert_eq!(format_tokens(UNIT / 4), "0.25 HYD");
        assert_eq!(format_tokens(1), "0.000000000001 HYD");
        assert_eq!(format_tokens(0), "0 HYD");
    }
}
