//! # The Hydrogen contract
//!
//! One contract holds the network's token (PSP22), the node registry with its
//! stakes, and the tasks with their escrow and consensus. Keeping them in one
//! contract makes every value movement an internal ledger update: a task fee
//! or a stake never needs an `approve` + `transfer_from` round trip, a slash
//! cannot fail half-way through a cross-contract call, and every rule runs in
//! the off-chain test engine. ARCHITECTURE.md explains the trade-off.
//!
//! The rules themselves live in plain modules: [`task`] (consensus state
//! machine), [`registry`] (nodes, the selection index and its warming
//! list), [`beacon`] (randomness), [`queue`] (waiting tasks). This module
//! applies them.
#![cfg_attr(not(feature = "std"), no_std, no_main)]

pub mod beacon;
pub mod queue;
pub mod registry;
pub mod task;

pub use hydrogen_types as types;

/// The carrier of every [`types::Event`]; its signature topic is pinned so
/// indexers can recognise it without the contract metadata. The task, node
/// and creator the event is about are topics too (`None` where it is not
/// about one), so an indexer can filter by any of them on chain; the data
/// is the event followed by the three.
#[ink::event(signature_topic = "ddde8e1db035e41a06e11d5121bdd3352d0d6601d918dd37c7bfbf2b776f748c")]
pub struct HydrogenEvent {
    pub event: types::Event,
    #[ink(topic)]
    pub task: Option<types::TaskId>,
    #[ink(topic)]
    pub node: Option<types::AccountId>,
    #[ink(topic)]
    pub creator: Option<types::AccountId>,
}

/// Tasks one batch may arm (and one call start), so a transaction's weight stays bounded.
pub const MAX_STARTS_PER_CALL: u32 = 4;
/// Draws one task's selection may take, skipping nodes an audit excludes:
/// with three eligible nodes besides at most three excluded, running out
/// is below 2^-16.
pub const MAX_DRAWS: usize = 48;

#[ink::contract]
mod hydrogen {
    use crate::beacon::{self, Beacon};
    use crate::queue::{self, Entry};
    use crate::registry::{Node, Registry};
    use crate::task::{Rules, Slot, Task, Verdict};
    use crate::{HydrogenEvent, MAX_DRAWS, MAX_STARTS_PER_CALL};
    use hydrogen_types::{
        commitment_preimage, fee_share, outcomes_agree, upload_receipt_message, AbortReason, Error,
        Event, Hash as Digest, NodeCounts, NodeInfo, NodeStatus, Outcome, Params, Receipt,
        RelayKey, TaskId, TaskInfo, TaskStatus, TaskType, CONTRIBUTORS_PER_BATCH,
        ENTROPY_WINDOW_MS, MAX_IMAGES, MAX_TASK_VRAM_GB, NODES_PER_TASK, PHASH_BYTES,
        QUEUED_CANCEL_FEE_PERCENT, TOKEN_DECIMALS,
    };
    use ink::prelude::{string::String, vec::Vec};
    use ink::storage::{Lazy, Mapping};
    use psp22::{PSP22Data, PSP22Error, PSP22Event, PSP22Metadata, PSP22};

    #[ink(storage)]
    pub struct Hydrogen {
        owner: AccountId,
        /// Offered ownership; takes it with `accept_ownership`.
        pending_owner: Option<AccountId>,
        /// Whether the owner may still mint (turned off for good by `disable_minting`).
        minting: bool,
        params: Params,
        token: PSP22Data,
        /// Tokens burned by slashes, forfeits and cancellation fees.
        burned: Balance,
        /// The relay's receipt key; `None` accepts uploads on the uploader's word.
        relay_key: Option<RelayKey>,
        registry: Registry,
        beacon: Beacon,
        next_task: TaskId,
        tasks: Mapping<TaskId, Task>,
        queue: Lazy<Vec<Entry>>,
        armed: Lazy<Armed>,
    }

    /// The batch of queued tasks armed for selection: its eligible nodes are
    /// the index as it was at arming; it is drawn once every designated
    /// contributor folded its secret into `acc`.
    #[derive(Debug, Default, Clone)]
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    pub struct Armed {
        tasks: Vec<TaskId>,
        /// The beacon at arming, then each designated secret folded in.
        acc: Digest,
        /// Designations so far (a withholder causes a new one).
        attempt: u64,
        /// When the current contributors were designated.
        since: Timestamp,
        contributors: Vec<AccountId>,
        contributed: Vec<bool>,
    }

    impl Armed {
        fn complete(&self) -> bool {
            self.contributed.iter().all(|&c| c)
        }
    }

    impl Hydrogen {
        /// Deploys the network with `params`, minting `initial_supply` to the
        /// deployer. Fails with `InvalidParams` when `params` are out of bounds.
        #[ink(constructor)]
        pub fn new(params: Params, initial_supply: Balance) -> Result<Self, Error> {
            params.validate()?;
            let owner = Self::env().caller();
            let (token, events) = PSP22Data::new(initial_supply, owner);
            let contract = Self {
                owner,
                pending_owner: None,
                minting: true,
                params,
                token,
                burned: 0,
                relay_key: None,
                registry: Registry::default(),
                beacon: Beacon::default(),
                next_task: 1,
                tasks: Mapping::default(),
                queue: Lazy::default(),
                armed: Lazy::default(),
            };
            contract.emit_psp22(events);
            Ok(contract)
        }

        // ---- governance ----

        /// The account that may change parameters, mint and register the relay key.
        #[ink(message)]
        pub fn owner(&self) -> AccountId {
            self.owner
        }

        /// The protocol parameters new tasks are created under (running tasks keep
        /// the rules they were created with).
        #[ink(message)]
        pub fn params(&self) -> Params {
            self.params
        }

        /// The relay key whose receipts `confirm_upload` requires, if any.
        #[ink(message)]
        pub fn relay_key(&self) -> Option<RelayKey> {
            self.relay_key
        }

        /// Registers (or clears) the relay's receipt key. Replicas of one
        /// relay share the key.
        #[ink(message)]
        pub fn set_relay_key(&mut self, key: Option<RelayKey>) -> Result<(), Error> {
            self.only_owner()?;
            self.relay_key = key;
            self.emit(Event::RelayKeySet { key });
            Ok(())
        }

        /// Tokens burned so far by slashes, forfeits and cancellation fees:
        /// nobody, the owner included, gains from a penalty.
        #[ink(message)]
        pub fn burned(&self) -> Balance {
            self.burned
        }

        /// Replaces the parameters (bounded by `Params::validate`). Tasks
        /// already created keep the rules they were created under.
        #[ink(message)]
        pub fn set_params(&mut self, params: Params) -> Result<(), Error> {
            self.only_owner()?;
            params.validate()?;
            self.params = params;
            self.emit(Event::ParamsUpdated { params });
            Ok(())
        }

        /// Offers ownership to `to`; it takes effect when `to` accepts, so a
        /// typo cannot hand the contract to an account nobody controls.
        #[ink(message)]
        pub fn transfer_ownership(&mut self, to: AccountId) -> Result<(), Error> {
            self.only_owner()?;
            self.pending_owner = Some(to);
            self.emit(Event::OwnershipOffered { to });
            Ok(())
        }

        /// The offered account takes ownership.
        #[ink(message)]
        pub fn accept_ownership(&mut self) -> Result<(), Error> {
            let caller = self.env().caller();
            if self.pending_owner != Some(caller) {
                return Err(Error::NotPendingOwner);
            }
            self.owner = caller;
            self.pending_owner = None;
            self.emit(Event::OwnershipTransferred { owner: caller });
            Ok(())
        }

        /// The dev faucet: the owner mints tokens, until minting is disabled.
        #[ink(message)]
        pub fn mint(&mut self, to: AccountId, value: Balance) -> Result<(), Error> {
            self.only_owner()?;
            if !self.minting {
                return Err(Error::MintingDisabled);
            }
            let events = self.token.mint(to, value).map_err(|_| Error::Overflow)?;
            self.emit_psp22(events);
            Ok(())
        }

        /// Ends minting for good: a production deployment calls it once the
        /// initial distribution is done, fixing the supply.
        #[ink(message)]
        pub fn disable_minting(&mut self) -> Result<(), Error> {
            self.only_owner()?;
            if self.minting {
                self.minting = false;
                self.emit(Event::MintingDisabled);
            }
            Ok(())
        }

        // ---- staking ----

        /// Stakes `required_stake` from the caller's balance and makes it
        /// available for tasks. `ticket` is `blake2_256` of the secret the
        /// node will reveal with its first [`Self::contribute_entropy`].
        #[ink(message)]
        pub fn join(
            &mut self,
            gpu_name: String,
            vram_gb: u32,
            engine_version: u32,
            ticket: Digest,
        ) -> Result<(), Error> {
            let caller = self.env().caller();
            let rejoin_after = match self.registry.get(caller) {
                Some(old) if old.status != NodeStatus::Quit => return Err(Error::AlreadyJoined),
                Some(old) if old.disputes > 0 => return Err(Error::InDispute),
                Some(old) => old.rejoin_after,
                None => 0,
            };
            if self.env().block_timestamp() < rejoin_after {
                return Err(Error::Cooldown);
            }
            Registry::validate_gpu(&gpu_name, vram_gb)?;
            let stake = self.params.required_stake;
            self.move_tokens(caller, self.env().account_id(), stake)?;
            let mut node = Node {
                status: NodeStatus::Quit,
                stake,
                gpu_name,
                vram_gb,
                engine_version,
                current_task: None,
                missed: 0,
                indexed: false,
                slot: 0,
                rejoin_after,
                disputes: 0,
                eligible_at: self
                    .env()
                    .block_timestamp()
                    .saturating_add(self.params.warmup_ms),
            };
            self.registry.set_ticket(caller, ticket);
            self.set_node_status(caller, &mut node, NodeStatus::Available);
            self.dispatch();
            Ok(())
        }

        /// Stops taking tasks; a busy node pauses when its task releases it.
        #[ink(message)]
        pub fn pause(&mut self) -> Result<(), Error> {
            let caller = self.env().caller();
            let mut node = self.registry.get_staked(caller)?;
            let next = match node.status {
                NodeStatus::Available => NodeStatus::Paused,
                NodeStatus::Busy => NodeStatus::PendingPause,
                _ => return Err(Error::WrongNodeStatus),
            };
            self.set_node_status(caller, &mut node, next);
            Ok(())
        }

        /// Takes tasks again. The node enters the draws of batches armed once
        /// `Params::warmup_ms` has passed, never one already armed.
        #[ink(message)]
        pub fn resume(&mut self) -> Result<(), Error> {
            let caller = self.env().caller();
            let mut node = self.registry.get_staked(caller)?;
            let next = match node.status {
                NodeStatus::Paused => NodeStatus::Available,
                NodeStatus::PendingPause => NodeStatus::Busy,
                _ => return Err(Error::WrongNodeStatus),
            };
            node.eligible_at = self
                .env()
                .block_timestamp()
                .saturating_add(self.params.warmup_ms);
            self.set_node_status(caller, &mut node, next);
            self.dispatch();
            Ok(())
        }

        /// Leaves the network. The stake comes back now, or when the running
        /// task releases the node.
        #[ink(message)]
        pub fn quit(&mut self) -> Result<(), Error> {
            let caller = self.env().caller();
            let mut node = self.registry.get_staked(caller)?;
            match node.status {
                NodeStatus::Available | NodeStatus::Paused => self.refund_stake(caller, &mut node),
                NodeStatus::Busy | NodeStatus::PendingPause => {
                    self.set_node_status(caller, &mut node, NodeStatus::PendingQuit)
                }
                _ => return Err(Error::WrongNodeStatus),
            }
            Ok(())
        }

        /// Reveals the secret behind the caller's ticket into the randomness
        /// beacon and registers the next ticket. Only the armed batch's
        /// designated contributors may ([`Self::entropy_contributors`]), each
        /// once; the batch is drawn when both did. Anyone else's call fails
        /// its dry run and costs no fee.
        #[ink(message)]
        pub fn contribute_entropy(
            &mut self,
            secret: Digest,
            next_ticket: Digest,
        ) -> Result<(), Error> {
            let caller = self.env().caller();
            let node = self.registry.get_staked(caller)?;
            // The ticket first: a node recovering from a crash dry-runs this
            // to learn which of its secrets the contract holds.
            if self.registry.ticket(caller) != Some(beacon::blake2_256(&secret)) {
                return Err(Error::TicketMismatch);
            }
            if !matches!(node.status, NodeStatus::Available | NodeStatus::Busy) {
                return Err(Error::WrongNodeStatus);
            }
            let mut armed = self.armed.get_or_default();
            let pending = armed
                .contributors
                .iter()
                .zip(&armed.contributed)
                .position(|(c, done)| *c == caller && !done);
            let (Some(i), false) = (pending, armed.tasks.is_empty()) else {
                return Err(Error::EntropyNotNeeded);
            };
            self.registry.set_ticket(caller, next_ticket);
            self.beacon.mix(caller, &secret);
            armed.acc = beacon::mix(&armed.acc, caller, &secret);
            armed.contributed[i] = true;
            self.armed.set(&armed);
            self.emit(Event::EntropyContributed { node: caller });
            self.dispatch();
            Ok(())
        }

        /// Replaces the armed batch's silent contributors once
        /// [`ENTROPY_WINDOW_MS`] has passed (they forfeit). Anyone may call
        /// it; any other call past the window does the same on its way.
        #[ink(message)]
        pub fn redesignate(&mut self) -> Result<(), Error> {
            let armed = self.armed.get_or_default();
            if armed.tasks.is_empty() || armed.complete() {
                return Err(Error::EntropyNotNeeded);
            }
            if self.env().block_timestamp() <= armed.since.saturating_add(ENTROPY_WINDOW_MS) {
                return Err(Error::DeadlineNotReached);
            }
            self.dispatch();
            Ok(())
        }

        /// A node's status, stake, GPU and misses; `None` if it never joined.
        #[ink(message)]
        pub fn node_info(&self, node: AccountId) -> Option<NodeInfo> {
            self.registry.get(node).map(|n| n.info())
        }

        /// How many nodes are available, busy and paused.
        #[ink(message)]
        pub fn node_counts(&self) -> NodeCounts {
            self.registry.counts()
        }

        /// Available nodes with at least `min_vram_gb` of VRAM.
        #[ink(message)]
        pub fn available_capacity(&self, min_vram_gb: u32) -> u32 {
            self.registry.capacity(min_vram_gb)
        }

        // ---- tasks ----

        /// Escrows `fee` from the caller and queues the task. It is armed when
        /// three nodes with `min_vram_gb` are free, and starts once fresh
        /// entropy arrived after that.
        #[ink(message)]
        pub fn create_task(
            &mut self,
            task_type: TaskType,
            args_hash: Digest,
            min_vram_gb: u32,
            num_images: u8,
            fee: Balance,
        ) -> Result<TaskId, Error> {
            if num_images == 0 || num_images > MAX_IMAGES {
                return Err(Error::InvalidNumImages);
            }
            if min_vram_gb > MAX_TASK_VRAM_GB {
                return Err(Error::VramTooHigh);
            }
            if fee < self.params.min_fee {
                return Err(Error::FeeTooLow);
            }
            let price = fee.checked_div(u128::from(num_images)).unwrap_or(0);
            let mut waiting = self.queue.get_or_default();
            if !queue::admits(&waiting, price, self.params.max_queue) {
                return Err(Error::QueueFull);
            }
            let caller = self.env().caller();
            self.move_tokens(caller, self.env().account_id(), fee)?;

            let id = self.next_task;
            self.next_task = id.checked_add(1).ok_or(Error::Overflow)?;
            let now = self.env().block_timestamp();
            let task = Task::new(
                caller,
                task_type,
                args_hash,
                min_vram_gb,
                num_images,
                fee,
                now,
                Rules::from(&self.params),
            );
            self.tasks.insert(id, &task);
            self.emit(Event::TaskCreated {
                task_id: id,
                creator: caller,
                task_type,
                args_hash,
                min_vram_gb,
                num_images,
                fee,
            });
            let entry = Entry {
                task: id,
                price,
                min_vram_gb,
                expires_at: task.expires_at(),
                audit: false,
            };
            self.enqueue(&mut waiting, entry);
            self.dispatch();
            Ok(id)
        }

        /// Commits to an outcome: `blake2_256(commitment_preimage(task, node, outcome, nonce))`.
        #[ink(message)]
        pub fn commit(&mut self, task_id: TaskId, commitment: Digest) -> Result<(), Error> {
            let caller = self.env().caller();
            let mut task = self.tasks.get(task_id).ok_or(Error::TaskNotFound)?;
            if task.status != TaskStatus::Running {
                return Err(Error::WrongTaskStatus);
            }
            let i = task.slot_of(caller).ok_or(Error::NotSelected)?;
            if self.env().block_timestamp() > task.deadline {
                return Err(Error::DeadlinePassed);
            }
            if task.slots[i].commitment.is_some() {
                return Err(Error::AlreadyCommitted);
            }
            task.slots[i].commitment = Some(commitment);
            task.slots[i].order = task.commits;
            task.commits = task.commits.saturating_add(1);
            if usize::from(task.commits) == NODES_PER_TASK {
                self.emit(Event::CommitmentsReady { task_id });
            }
            self.tasks.insert(task_id, &task);
            Ok(())
        }

        /// Opens the caller's commitment. The nonce joins the randomness beacon.
        #[ink(message)]
        pub fn reveal(
            &mut self,
            task_id: TaskId,
            outcome: Outcome,
            nonce: Digest,
        ) -> Result<(), Error> {
            let caller = self.env().caller();
            let now = self.env().block_timestamp();
            let mut task = self.tasks.get(task_id).ok_or(Error::TaskNotFound)?;
            let i = task.slot_of(caller).ok_or(Error::NotSelected)?;
            let slot = &task.slots[i];
            if slot.outcome.is_some() {
                return Err(Error::AlreadyRevealed);
            }
            let Some(commitment) = slot.commitment else {
                return Err(Error::NotCommitted);
            };
            if slot.settled || now > task.reveal_deadline() {
                return Err(Error::DeadlinePassed);
            }
            if !task.reveal_open(now) {
                return Err(Error::RevealNotOpen);
            }
            if let Outcome::Images(bytes) = &outcome {
                if bytes.len() != usize::from(task.num_images).saturating_mul(PHASH_BYTES) {
                    return Err(Error::ResultLengthMismatch);
                }
            }
            let preimage = commitment_preimage(task_id, &caller, &outcome, &nonce);
            if beacon::blake2_256(&preimage) != commitment {
                return Err(Error::CommitmentMismatch);
            }
            task.slots[i].outcome = Some(outcome);
            self.beacon.mix(caller, &nonce);
            if let Some(mut node) = self.registry.get(caller) {
                node.missed = 0;
                self.registry.save(caller, &node);
            }
            self.emit(Event::ResultRevealed {
                task_id,
                node: caller,
            });
            self.advance(task_id, &mut task);
            self.dispatch();
            Ok(())
        }

        /// The designated node confirms the images are on the relay and is
        /// paid. With a relay key registered, `receipt` must be the relay's
        /// signature of `upload_receipt_message(task_id, result)`: nobody is
        /// paid for an upload the relay did not store.
        #[ink(message)]
        pub fn confirm_upload(
            &mut self,
            task_id: TaskId,
            receipt: Option<Receipt>,
        ) -> Result<(), Error> {
            let caller = self.env().caller();
            let mut task = self.tasks.get(task_id).ok_or(Error::TaskNotFound)?;
            if task.status != TaskStatus::Succeeded {
                return Err(Error::WrongTaskStatus);
            }
            let i = task
                .uploader
                .map(usize::from)
                .ok_or(Error::WrongTaskStatus)?;
            if task.slots[i].node != caller {
                return Err(Error::NotUploader);
            }
            if self.env().block_timestamp() > task.upload_deadline() {
                return Err(Error::DeadlinePassed);
            }
            if let Some(key) = self.relay_key {
                let result = match &task.accepted {
                    Some(Outcome::Images(r)) => r.as_slice(),
                    _ => &[],
                };
                let hash = beacon::blake2_256(&upload_receipt_message(task_id, result));
                let mut signer = [0u8; 33];
                let signature = receipt.ok_or(Error::BadReceipt)?;
                ink::env::ecdsa_recover(&signature, &hash, &mut signer)
                    .map_err(|_| Error::BadReceipt)?;
                if signer != key {
                    return Err(Error::BadReceipt);
                }
            }
            task.status = TaskStatus::Completed;
            task.slots[i].settled = true;
            self.emit(Event::ResultsUploaded {
                task_id,
                node: caller,
            });
            if !task.slots[i].paid {
                self.apply(task_id, &mut task, i, Verdict::Pay);
            }
            if task.fallback_used {
                // A stand-in also earns the share of the uploader that failed.
                let amount = fee_share(task.fee, usize::from(task.upload_order)).min(task.escrow);
                task.escrow = task.escrow.saturating_sub(amount);
                self.pay_node(task_id, caller, amount);
            }
            self.advance(task_id, &mut task);
            self.dispatch();
            Ok(())
        }

        /// Cancels a queued task (its creator; [`QUEUED_CANCEL_FEE_PERCENT`]
        /// of the fee is burned, the rest refunded; past its expiry anyone,
        /// for a full refund), or settles a started
        /// one past its deadlines (anyone: the outcome depends only on the
        /// clock): silent nodes are penalised and what is left is refunded.
        #[ink(message)]
        pub fn cancel(&mut self, task_id: TaskId) -> Result<(), Error> {
            let caller = self.env().caller();
            let mut task = self.tasks.get(task_id).ok_or(Error::TaskNotFound)?;
            if task.status == TaskStatus::Queued {
                if self.env().block_timestamp() > task.expires_at() {
                    // Expired: refunded in full, and anyone may make it so.
                    self.dispatch();
                    return Ok(());
                }
                if task.creator != caller {
                    return Err(Error::NotAllowed);
                }
                let mut waiting = self.queue.get_or_default();
                queue::remove(&mut waiting, task_id);
                self.queue.set(&waiting);
                self.unarm(task_id);
                let fee = task
                    .fee
                    .saturating_mul(QUEUED_CANCEL_FEE_PERCENT)
                    .checked_div(100)
                    .unwrap_or(0);
                self.abort_queued(task_id, AbortReason::Cancelled, fee);
                self.dispatch();
                return Ok(());
            }
            if task.status.is_final() && task.all_settled() {
                return Err(Error::WrongTaskStatus);
            }
            let now = self.env().block_timestamp();
            let past = match task.status {
                TaskStatus::Running => now > task.deadline,
                TaskStatus::Succeeded => now > task.upload_deadline(),
                _ => now > task.reveal_deadline(),
            };
            if !past {
                return Err(Error::DeadlineNotReached);
            }
            self.advance(task_id, &mut task);
            self.dispatch();
            Ok(())
        }

        /// A task's creator, fee, status, selected nodes, deadline and result;
        /// `None` for an id never issued.
        #[ink(message)]
        pub fn task(&self, task_id: TaskId) -> Option<TaskInfo> {
            self.tasks.get(task_id).map(|t| t.info(task_id))
        }

        /// Queued task ids, next to start first.
        #[ink(message)]
        pub fn queue(&self) -> Vec<TaskId> {
            self.queue.get_or_default().iter().map(|e| e.task).collect()
        }

        /// Whether an armed batch waits for entropy contributions.
        #[ink(message)]
        pub fn entropy_needed(&self) -> bool {
            !self.armed.get_or_default().tasks.is_empty()
        }

        /// The designated contributors that have yet to reveal their secret
        /// for the armed batch.
        #[ink(message)]
        pub fn entropy_contributors(&self) -> Vec<AccountId> {
            let armed = self.armed.get_or_default();
            if armed.tasks.is_empty() {
                return Vec::new();
            }
            armed
                .contributors
                .iter()
                .zip(&armed.contributed)
                .filter(|(_, done)| !**done)
                .map(|(c, _)| *c)
                .collect()
        }

        /// The tasks armed for the next draw.
        #[ink(message)]
        pub fn armed(&self) -> Vec<TaskId> {
            self.armed.get_or_default().tasks
        }

        // ---- internals ----

        fn only_owner(&self) -> Result<(), Error> {
            if self.env().caller() == self.owner {
                Ok(())
            } else {
                Err(Error::NotOwner)
            }
        }

        fn emit(&self, event: Event) {
            self.env().emit_event(HydrogenEvent {
                task: event.task_id(),
                node: event.node(),
                creator: event.creator(),
                event,
            });
        }

        fn emit_psp22(&self, events: Vec<PSP22Event>) {
            for event in events {
                match event {
                    PSP22Event::Transfer(e) => self.env().emit_event(e),
                    PSP22Event::Approval(e) => self.env().emit_event(e),
                }
            }
        }

        fn move_tokens(
            &mut self,
            from: AccountId,
            to: AccountId,
            value: Balance,
        ) -> Result<(), Error> {
            let events = self
                .token
                .transfer(from, to, value)
                .map_err(|_| Error::InsufficientBalance)?;
            self.emit_psp22(events);
            Ok(())
        }

        /// Pays out of the contract's own balance (escrow, stakes).
        fn pay_out(&mut self, to: AccountId, value: Balance) {
            // The contract's balance always covers escrow + stakes.
            let _ = self.move_tokens(self.env().account_id(), to, value);
        }

        /// Burns `value` of the contract's own balance (a penalty or fee).
        fn burn(&mut self, value: Balance) {
            if value == 0 {
                return;
            }
            if let Ok(events) = self.token.burn(self.env().account_id(), value) {
                self.burned = self.burned.saturating_add(value);
                self.emit_psp22(events);
            }
        }

        fn set_node_status(&mut self, id: AccountId, node: &mut Node, status: NodeStatus) {
            self.registry.set_status(id, node, status);
            self.emit(Event::NodeStatusChanged { node: id, status });
        }

        /// Leaves the network with the stake, or without it while an audit
        /// of a task it revealed in is open (the audit pays it back).
        fn refund_stake(&mut self, id: AccountId, node: &mut Node) {
            if node.disputes == 0 {
                let stake = core::mem::take(&mut node.stake);
                self.pay_out(id, stake);
            }
            self.set_node_status(id, node, NodeStatus::Quit);
        }

        /// The task no longer needs the node: its pending pause or quit takes effect.
        fn release(&mut self, id: AccountId) {
            let Some(mut node) = self.registry.get(id) else {
                return;
            };
            node.current_task = None;
            // A released node skips the warm-up: it did not choose the moment.
            node.eligible_at = self.env().block_timestamp();
            match node.status {
                NodeStatus::Busy => self.set_node_status(id, &mut node, NodeStatus::Available),
                NodeStatus::PendingPause => self.set_node_status(id, &mut node, NodeStatus::Paused),
                NodeStatus::PendingQuit => self.refund_stake(id, &mut node),
                _ => self.registry.save(id, &node),
            }
        }

        /// Ends a queued task: `fee` burned, the rest refunded.
        fn abort_queued(&mut self, task_id: TaskId, reason: AbortReason, fee: Balance) {
            if let Some(mut task) = self.tasks.get(task_id) {
                task.status = TaskStatus::Aborted(reason);
                self.emit(Event::TaskAborted { task_id, reason });
                let fee = fee.min(task.escrow);
                task.escrow = task.escrow.saturating_sub(fee);
                self.burn(fee);
                self.refund(task_id, &mut task);
                if task.audit_of.is_some() {
                    // An audit that never ran judges nobody.
                    self.resolve(task_id, &mut task);
                }
                self.tasks.insert(task_id, &task);
            }
        }

        /// Takes a task out of the armed batch (cancelled or evicted).
        fn unarm(&mut self, task_id: TaskId) {
            let mut armed = self.armed.get_or_default();
            if armed.tasks.contains(&task_id) {
                armed.tasks.retain(|&t| t != task_id);
                self.armed.set(&armed);
            }
        }

        fn refund(&mut self, task_id: TaskId, task: &mut Task) {
            let amount = core::mem::take(&mut task.escrow);
            self.refund_to(task_id, task.creator, amount);
        }

        fn refund_to(&mut self, task_id: TaskId, creator: AccountId, amount: Balance) {
            if amount > 0 {
                self.pay_out(creator, amount);
                self.emit(Event::Refunded {
                    task_id,
                    creator,
                    amount,
                });
            }
        }

        /// Runs the consensus state machine and applies its verdicts; refunds
        /// the rest once the task is over for every node. Stores the task.
        fn advance(&mut self, task_id: TaskId, task: &mut Task) {
            let uploader = task.uploader;
            let (changed, verdicts) = task.advance(self.env().block_timestamp());
            if uploader.is_some() && task.uploader != uploader {
                if let Some(i) = task.uploader {
                    self.emit(Event::UploaderReplaced {
                        task_id,
                        uploader: task.slots[usize::from(i)].node,
                    });
                }
            }
            match changed {
                Some(TaskStatus::Succeeded) => {
                    let uploader = task.uploader.map(|i| task.slots[usize::from(i)].node);
                    if let (Some(Outcome::Images(result)), Some(uploader)) =
                        (&task.accepted, uploader)
                    {
                        self.emit(Event::TaskSucceeded {
                            task_id,
                            result: result.clone(),
                            uploader,
                        });
                    }
                }
                Some(TaskStatus::Aborted(reason)) => {
                    self.emit(Event::TaskAborted { task_id, reason })
                }
                _ => {}
            }
            for (i, verdict) in verdicts {
                self.apply(task_id, task, i, verdict);
            }
            if task.status.is_final() && task.all_settled() {
                self.refund(task_id, task);
                if task.audit_of.is_some() {
                    self.resolve(task_id, task);
                }
            }
            self.tasks.insert(task_id, task);
        }

        /// Holds slot `i`'s node's stake for the task's audit (once).
        fn hold(&mut self, task: &mut Task, i: usize) {
            if task.slots[i].held {
                return;
            }
            task.slots[i].held = true;
            let id = task.slots[i].node;
            if let Some(mut node) = self.registry.get(id) {
                node.disputes = node.disputes.saturating_add(1);
                self.registry.save(id, &node);
            }
        }

        /// Ends one hold; a node that left meanwhile gets its stake now.
        fn unhold(&mut self, id: AccountId) {
            let Some(mut node) = self.registry.get(id) else {
                return;
            };
            node.disputes = node.disputes.saturating_sub(1);
            if node.disputes == 0 && node.status == NodeStatus::Quit {
                let stake = core::mem::take(&mut node.stake);
                self.pay_out(id, stake);
            }
            self.registry.save(id, &node);
        }

        /// A revealed result contradicts the two that decided `task`. Nobody
        /// is slashed on a 2-vs-1: the first time, three other nodes are
        /// queued (ahead of every task) to re-execute it, and the stakes of
        /// everyone who revealed are held until that audit resolves.
        fn dispute(&mut self, task_id: TaskId, task: &mut Task, i: usize) {
            let disputed = task.slots[i].node;
            if task.audit.is_some() {
                self.hold(task, i);
                return;
            }
            for j in 0..task.slots.len() {
                if task.slots[j].outcome.is_some() {
                    self.hold(task, j);
                }
            }
            let audit_id = self.next_task;
            self.next_task = audit_id.saturating_add(1);
            let mut audit = Task::new(
                self.env().account_id(),
                task.task_type,
                task.args_hash,
                task.min_vram_gb,
                task.num_images,
                0,
                self.env().block_timestamp(),
                task.rules,
            );
            audit.audit_of = Some(task_id);
            task.audit = Some(audit_id);
            self.tasks.insert(audit_id, &audit);
            self.emit(Event::TaskCreated {
                task_id: audit_id,
                creator: self.env().account_id(),
                task_type: task.task_type,
                args_hash: task.args_hash,
                min_vram_gb: task.min_vram_gb,
                num_images: task.num_images,
                fee: 0,
            });
            self.emit(Event::AuditOpened {
                task_id,
                audit: audit_id,
                disputed,
            });
            let mut waiting = self.queue.get_or_default();
            let entry = Entry {
                task: audit_id,
                price: u128::MAX,
                min_vram_gb: task.min_vram_gb,
                expires_at: audit.expires_at(),
                audit: true,
            };
            self.enqueue(&mut waiting, entry);
        }

        /// Inserts `entry` in price order; tasks pushed out of a full queue
        /// are refunded in full.
        fn enqueue(&mut self, waiting: &mut Vec<Entry>, entry: Entry) {
            let evicted = queue::insert(waiting, entry, self.params.max_queue);
            self.queue.set(waiting);
            for entry in evicted {
                self.unarm(entry.task);
                self.abort_queued(entry.task, AbortReason::Evicted, 0);
            }
        }

        /// The audit `audit_id` has ended: judge the task it re-executed.
        /// With a result, every revealed result of that task contradicting
        /// it is slashed; the slashed stakes pay the audit's agreeing nodes
        /// their share of the task's fee, give the creator back its fee if
        /// the decided result was wrong, and pay the wronged node its share;
        /// the rest is burned. Without a result nobody is slashed.
        fn resolve(&mut self, audit_id: TaskId, audit: &mut Task) {
            let Some(task_id) = audit.audit_of else {
                return;
            };
            if audit.resolved {
                return;
            }
            audit.resolved = true;
            let Some(task) = self.tasks.get(task_id) else {
                return;
            };
            let result = match &audit.accepted {
                Some(Outcome::Images(r)) => Some(r.clone()),
                _ => None,
            };
            self.emit(Event::AuditResolved {
                task_id,
                audit: audit_id,
                result: result.clone(),
            });
            let revealed: Vec<(AccountId, Outcome, u8, bool)> = task
                .slots
                .iter()
                .filter_map(|s| s.outcome.clone().map(|o| (s.node, o, s.order, s.paid)))
                .collect();
            let held: Vec<AccountId> = task
                .slots
                .iter()
                .filter(|s| s.held)
                .map(|s| s.node)
                .collect();
            if let Some(result) = result {
                let truth = Outcome::Images(result);
                let threshold = task.rules.distance_threshold;
                let agrees = |o: &Outcome| outcomes_agree(o, &truth, threshold);
                let mut funds: Balance = 0;
                for (id, outcome, _, _) in &revealed {
                    if !agrees(outcome) {
                        funds = funds.saturating_add(self.slash(task_id, *id));
                    }
                }
                for slot in audit.slots.iter() {
                    if slot.outcome.as_ref().is_some_and(agrees) {
                        let share = fee_share(task.fee, usize::from(slot.order));
                        self.pay_from(&mut funds, slot.node, share, audit_id);
                    }
                }
                // The creator gets back what it paid for a wrong result.
                let wrongly_paid: Balance = revealed
                    .iter()
                    .filter(|(_, o, _, paid)| *paid && !agrees(o))
                    .map(|(_, _, order, _)| fee_share(task.fee, usize::from(*order)))
                    .sum();
                if wrongly_paid > 0 {
                    let amount = wrongly_paid.min(funds);
                    funds = funds.saturating_sub(amount);
                    self.refund_to(task_id, task.creator, amount);
                }
                for (id, outcome, order, paid) in &revealed {
                    if agrees(outcome) && !paid {
                        let share = fee_share(task.fee, usize::from(*order));
                        self.pay_from(&mut funds, *id, share, task_id);
                    }
                }
                self.burn(funds);
            }
            for id in held {
                self.unhold(id);
            }
        }

        /// Pays `to` its fee for `task_id` out of the contract's balance.
        fn pay_node(&mut self, task_id: TaskId, to: AccountId, amount: Balance) {
            self.pay_out(to, amount);
            self.emit(Event::NodePaid {
                task_id,
                node: to,
                amount,
            });
        }

        /// Pays up to `want` out of `funds` (slashed stakes) as `task_id`'s fee.
        fn pay_from(&mut self, funds: &mut Balance, to: AccountId, want: Balance, task_id: TaskId) {
            let amount = want.min(*funds);
            *funds = funds.saturating_sub(amount);
            if amount > 0 {
                self.pay_node(task_id, to, amount);
            }
        }

        /// Takes a node's whole stake for a result an audit contradicted;
        /// returns the amount. A busy node leaves when its task releases it.
        fn slash(&mut self, task_id: TaskId, id: AccountId) -> Balance {
            let Some(mut node) = self.registry.get(id) else {
                return 0;
            };
            let amount = core::mem::take(&mut node.stake);
            self.emit(Event::NodeSlashed {
                task_id,
                node: id,
                amount,
            });
            match node.status {
                NodeStatus::Available | NodeStatus::Paused => {
                    self.set_node_status(id, &mut node, NodeStatus::Quit)
                }
                NodeStatus::Busy | NodeStatus::PendingPause => {
                    self.set_node_status(id, &mut node, NodeStatus::PendingQuit)
                }
                _ => self.registry.save(id, &node),
            }
            amount
        }

        fn apply(&mut self, task_id: TaskId, task: &mut Task, i: usize, verdict: Verdict) {
            let Slot {
                node: id, order, ..
            } = task.slots[i].clone();
            match verdict {
                Verdict::Pay => {
                    let amount = fee_share(task.fee, usize::from(order)).min(task.escrow);
                    task.escrow = task.escrow.saturating_sub(amount);
                    task.slots[i].paid = true;
                    self.pay_node(task_id, id, amount);
                    self.release(id);
                    if task.audit.is_some() {
                        self.hold(task, i);
                    }
                }
                Verdict::Dispute => {
                    self.release(id);
                    self.dispute(task_id, task, i);
                }
                Verdict::Forfeit => {
                    if let Some(mut node) = self.registry.get(id) {
                        let amount = node
                            .stake
                            .saturating_mul(u128::from(task.rules.silence_penalty_percent))
                            .checked_div(100)
                            .unwrap_or(0);
                        node.stake = node.stake.saturating_sub(amount);
                        self.registry.save(id, &node);
                        self.burn(amount);
                        self.emit(Event::StakeForfeited {
                            task_id,
                            node: id,
                            amount,
                        });
                    }
                    self.miss(task_id, id);
                }
                Verdict::Miss => self.miss(task_id, id),
                Verdict::Release => self.release(id),
            }
        }

        /// One more silent task for the node; past `max_missed` in a row it
        /// is kicked out with what is left of its stake and may rejoin only
        /// after the cooldown.
        fn miss(&mut self, task_id: TaskId, id: AccountId) {
            let Some(mut node) = self.registry.get(id) else {
                return;
            };
            node.missed = node.missed.saturating_add(1);
            self.emit(Event::NodeMissed {
                task_id,
                node: id,
                missed: node.missed,
            });
            if node.missed >= self.params.max_missed {
                node.current_task = None;
                self.kick_out(id, &mut node);
            } else {
                self.registry.save(id, &node);
                self.release(id);
            }
        }

        /// Out with what is left of its stake; it may rejoin after the cooldown.
        fn kick_out(&mut self, id: AccountId, node: &mut Node) {
            node.rejoin_after = self
                .env()
                .block_timestamp()
                .saturating_add(self.params.rejoin_cooldown_ms);
            let stake_returned = node.stake;
            self.refund_stake(id, node);
            self.emit(Event::NodeKickedOut {
                node: id,
                stake_returned,
            });
        }

        /// Selection, in two steps so that nobody can know a draw while they
        /// can still change who is in it:
        ///
        /// 1. *Arm*: with no batch armed, the warming nodes whose warm-up
        ///    ended join the index, the best-paying queued tasks the index
        ///    can serve are armed, and two indexed nodes are designated to
        ///    contribute entropy (chosen by the public beacon).
        /// 2. *Draw*: once both revealed their pre-committed secrets, each
        ///    armed task draws its three nodes from the index. Nodes that
        ///    became available after arming are warming, not indexed. A
        ///    contributor silent for [`ENTROPY_WINDOW_MS`] forfeits and is
        ///    replaced.
        ///
        /// Expired queued tasks are refunded on the way.
        fn dispatch(&mut self) {
            let now = self.env().block_timestamp();
            let mut waiting = self.queue.get_or_default();
            let mut armed = self.armed.get_or_default();
            let mut queue_changed = self.expire(&mut waiting);
            // An expired task leaves its batch too: nothing waits forever.
            armed.tasks.retain(|t| waiting.iter().any(|e| e.task == *t));
            if !armed.tasks.is_empty() {
                if armed.complete() {
                    for &id in &armed.tasks {
                        let Some(mut task) = self.tasks.get(id) else {
                            continue;
                        };
                        let need = self.nodes_needed(id);
                        if task.status != TaskStatus::Queued
                            || (self.registry.eligible(task.min_vram_gb) as usize) < need
                        {
                            // Left the queue, or its nodes paused since: re-armed later.
                            continue;
                        }
                        queue::remove(&mut waiting, id);
                        queue_changed = true;
                        self.start(id, &mut task, &armed.acc);
                    }
                    armed.tasks.clear();
                } else if now > armed.since.saturating_add(ENTROPY_WINDOW_MS) {
                    let silent: Vec<AccountId> = armed
                        .contributors
                        .iter()
                        .zip(&armed.contributed)
                        .filter(|(_, done)| !**done)
                        .map(|(c, _)| *c)
                        .collect();
                    for id in silent {
                        self.entropy_withheld(id);
                    }
                    armed.attempt = armed.attempt.saturating_add(1);
                    if !self.designate(&mut armed, now) {
                        armed.tasks.clear();
                    }
                }
                if !armed.tasks.is_empty() {
                    self.armed.set(&armed);
                    if queue_changed {
                        self.queue.set(&waiting);
                    }
                    return;
                }
            }
            self.registry.admit_warming(now);
            let mut reserved = 0usize;
            for entry in waiting.iter() {
                if armed.tasks.len() >= MAX_STARTS_PER_CALL as usize {
                    break;
                }
                // Conservative: the nodes reserved by tasks armed before
                // may all have been in this task's classes.
                let free = self.registry.eligible(entry.min_vram_gb) as usize;
                let need = if entry.audit {
                    self.nodes_needed(entry.task)
                } else {
                    NODES_PER_TASK
                };
                if free >= reserved.saturating_add(need) {
                    armed.tasks.push(entry.task);
                    reserved = reserved.saturating_add(NODES_PER_TASK);
                }
            }
            if !armed.tasks.is_empty() {
                armed.acc = self.beacon.value();
                armed.attempt = 0;
                if !self.designate(&mut armed, now) {
                    armed.tasks.clear();
                }
            }
            self.armed.set(&armed);
            if queue_changed {
                self.queue.set(&waiting);
            }
        }

        /// Designates the batch's contributors: distinct indexed nodes drawn
        /// from the batch accumulator and the attempt. False when the index
        /// has too few nodes.
        fn designate(&mut self, armed: &mut Armed, now: Timestamp) -> bool {
            let n = self.registry.eligible(0);
            if (n as usize) < CONTRIBUTORS_PER_BATCH {
                return false;
            }
            let seed = beacon::derive(&armed.acc, b"designat", armed.attempt);
            let mut picked: Vec<u32> = Vec::new();
            for k in 0..CONTRIBUTORS_PER_BATCH {
                // The k-th pick among the nodes not picked yet.
                let left = n.saturating_sub(u32::try_from(k).unwrap_or(u32::MAX));
                let mut index = beacon::draw(&seed, k, left);
                picked.sort_unstable();
                for &p in &picked {
                    if index >= p {
                        index = index.saturating_add(1);
                    }
                }
                picked.push(index);
            }
            armed.contributors = picked
                .iter()
                .filter_map(|&i| self.registry.pick(0, i))
                .collect();
            armed.contributed = armed.contributors.iter().map(|_| false).collect();
            armed.since = now;
            self.emit(Event::TasksArmed {
                tasks: armed.tasks.clone(),
                contributors: armed.contributors.clone(),
            });
            true
        }

        /// A designated contributor stayed silent: it forfeits like a node
        /// that withholds a reveal, and counts a miss.
        fn entropy_withheld(&mut self, id: AccountId) {
            let Some(mut node) = self.registry.get(id) else {
                return;
            };
            if node.status == NodeStatus::Quit {
                return;
            }
            let forfeited = node
                .stake
                .saturating_mul(u128::from(self.params.silence_penalty_percent))
                .checked_div(100)
                .unwrap_or(0);
            node.stake = node.stake.saturating_sub(forfeited);
            node.missed = node.missed.saturating_add(1);
            self.burn(forfeited);
            self.emit(Event::EntropyWithheld {
                node: id,
                forfeited,
                missed: node.missed,
            });
            if node.missed >= self.params.max_missed {
                self.kick_out(id, &mut node);
            } else {
                self.registry.save(id, &node);
            }
        }

        /// Indexed nodes a task's draw needs: three, plus for an audit the
        /// audited task's nodes that are indexed (it must skip them).
        fn nodes_needed(&self, task_id: TaskId) -> usize {
            let excluded = self
                .tasks
                .get(task_id)
                .and_then(|t| t.audit_of)
                .and_then(|of| self.tasks.get(of))
                .map_or(0, |t| {
                    t.slots
                        .iter()
                        .filter(|s| {
                            self.registry
                                .get(s.node)
                                .is_some_and(|n| n.status == NodeStatus::Available && n.indexed)
                        })
                        .count()
                });
            NODES_PER_TASK.saturating_add(excluded)
        }

        /// Refunds queued tasks past their expiry (armed ones too: a batch
        /// whose draw keeps failing must not hold a task forever). Returns
        /// whether the queue changed.
        fn expire(&mut self, waiting: &mut Vec<Entry>) -> bool {
            let now = self.env().block_timestamp();
            let expired: Vec<TaskId> = waiting
                .iter()
                .filter(|e| now > e.expires_at)
                .map(|e| e.task)
                .collect();
            for &id in &expired {
                queue::remove(waiting, id);
                self.abort_queued(id, AbortReason::Expired, 0);
            }
            !expired.is_empty()
        }

        fn start(&mut self, task_id: TaskId, task: &mut Task, acc: &Digest) {
            let now = self.env().block_timestamp();
            let seed = beacon::seed(acc, task_id);
            task.status = TaskStatus::Running;
            task.deadline = now.saturating_add(task.rules.timeout_ms);
            // An audit must not be run by the nodes it judges.
            let excluded: Vec<AccountId> = task
                .audit_of
                .and_then(|t| self.tasks.get(t))
                .map(|t| t.slots.iter().map(|s| s.node).collect())
                .unwrap_or_default();
            let mut draws = 0usize;
            for _ in 0..NODES_PER_TASK {
                let mut chosen = None;
                while chosen.is_none() && draws < MAX_DRAWS {
                    let eligible = self.registry.eligible(task.min_vram_gb);
                    chosen = self
                        .registry
                        .pick(task.min_vram_gb, beacon::draw(&seed, draws, eligible))
                        .filter(|id| !excluded.contains(id));
                    draws = draws.saturating_add(1);
                }
                let Some(id) = chosen else {
                    break;
                };
                if let Some(mut node) = self.registry.get(id) {
                    node.current_task = Some(task_id);
                    self.set_node_status(id, &mut node, NodeStatus::Busy);
                }
                task.slots.push(Slot {
                    node: id,
                    commitment: None,
                    order: 0,
                    outcome: None,
                    settled: false,
                    held: false,
                    paid: false,
                });
                self.emit(Event::NodeSelected {
                    task_id,
                    node: id,
                    deadline: task.deadline,
                });
            }
            self.tasks.insert(task_id, task);
        }
    }

    impl PSP22 for Hydrogen {
        /// PSP22: HYD in existence (minted less burned).
        #[ink(message)]
        fn total_supply(&self) -> u128 {
            self.token.total_supply()
        }

        /// PSP22: `owner`'s free HYD (stakes and escrows are held by the contract).
        #[ink(message)]
        fn balance_of(&self, owner: AccountId) -> u128 {
            self.token.balance_of(owner)
        }

        /// PSP22: how much `spender` may still move from `owner`.
        #[ink(message)]
        fn allowance(&self, owner: AccountId, spender: AccountId) -> u128 {
            self.token.allowance(owner, spender)
        }

        /// PSP22: moves `value` HYD from the caller to `to`.
        #[ink(message)]
        fn transfer(
            &mut self,
            to: AccountId,
            value: u128,
            _data: Vec<u8>,
        ) -> Result<(), PSP22Error> {
            let events = self.token.transfer(self.env().caller(), to, value)?;
            self.emit_psp22(events);
            Ok(())
        }

        /// PSP22: moves `value` HYD from `from` to `to` within the caller's allowance.
        #[ink(message)]
        fn transfer_from(
            &mut self,
            from: AccountId,
            to: AccountId,
            value: u128,
            _data: Vec<u8>,
        ) -> Result<(), PSP22Error> {
            let events = self
                .token
                .transfer_from(self.env().caller(), from, to, value)?;
            self.emit_psp22(events);
            Ok(())
        }

        /// PSP22: sets `spender`'s allowance over the caller's HYD to `value`.
        #[ink(message)]
        fn approve(&mut self, spender: AccountId, value: u128) -> Result<(), PSP22Error> {
            let events = self.token.approve(self.env().caller(), spender, value)?;
            self.emit_psp22(events);
            Ok(())
        }

        /// PSP22: raises `spender`'s allowance by `delta_value`.
        #[ink(message)]
        fn increase_allowance(
            &mut self,
            spender: AccountId,
            delta_value: u128,
        ) -> Result<(), PSP22Error> {
            let events =
                self.token
                    .increase_allowance(self.env().caller(), spender, delta_value)?;
            self.emit_psp22(events);
            Ok(())
        }

        /// PSP22: lowers `spender`'s allowance by `delta_value`.
        #[ink(message)]
        fn decrease_allowance(
            &mut self,
            spender: AccountId,
            delta_value: u128,
        ) -> Result<(), PSP22Error> {
            let events =
                self.token
                    .decrease_allowance(self.env().caller(), spender, delta_value)?;
            self.emit_psp22(events);
            Ok(())
        }
    }

    impl PSP22Metadata for Hydrogen {
        /// PSP22 metadata: "Hydrogen".
        #[ink(message)]
        fn token_name(&self) -> Option<String> {
            Some(String::from("Hydrogen"))
        }

        /// PSP22 metadata: "HYD".
        #[ink(message)]
        fn token_symbol(&self) -> Option<String> {
            Some(String::from("HYD"))
        }

        /// PSP22 metadata: 12 decimals.
        #[ink(message)]
        fn token_decimals(&self) -> u8 {
            TOKEN_DECIMALS
        }
    }
}

pub use self::hydrogen::{Hydrogen, HydrogenRef};

#[cfg(test)]
mod tests;
