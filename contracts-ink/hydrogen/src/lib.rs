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
//! machine), [`registry`] (nodes and the availability index), [`beacon`]
//! (randomness), [`queue`] (waiting tasks). This module applies them.
#![cfg_attr(not(feature = "std"), no_std, no_main)]

pub mod beacon;
pub mod queue;
pub mod registry;
pub mod task;

pub use hydrogen_types as types;

/// The carrier of every [`types::Event`]; its signature topic is pinned so
/// indexers can recognise it without the contract metadata.
#[ink::event(signature_topic = "ddde8e1db035e41a06e11d5121bdd3352d0d6601d918dd37c7bfbf2b776f748c")]
pub struct HydrogenEvent {
    pub event: types::Event,
}

/// Tasks one call may start, so a single transaction's weight stays bounded.
pub const MAX_STARTS_PER_CALL: u32 = 4;

#[ink::contract]
mod hydrogen {
    use crate::beacon::{self, Beacon};
    use crate::queue::{self, Entry};
    use crate::registry::{Node, Registry};
    use crate::task::{Slot, Task, Verdict};
    use crate::{HydrogenEvent, MAX_STARTS_PER_CALL};
    use hydrogen_types::{
        commitment_preimage, fee_share, AbortReason, Error, Event, Hash as Digest, NodeCounts,
        NodeInfo, NodeStatus, Outcome, Params, TaskId, TaskInfo, TaskStatus, TaskType, MAX_IMAGES,
        NODES_PER_TASK, PHASH_BYTES, TOKEN_DECIMALS,
    };
    use ink::prelude::{string::String, vec::Vec};
    use ink::storage::{Lazy, Mapping};
    use psp22::{PSP22Data, PSP22Error, PSP22Event, PSP22Metadata, PSP22};

    #[ink(storage)]
    pub struct Hydrogen {
        owner: AccountId,
        params: Params,
        token: PSP22Data,
        /// Slashed stakes: the incentive pool.
        pool: Balance,
        registry: Registry,
        beacon: Beacon,
        next_task: TaskId,
        tasks: Mapping<TaskId, Task>,
        queue: Lazy<Vec<Entry>>,
    }

    fn raw(id: AccountId) -> [u8; 32] {
        *id.as_ref()
    }

    impl Hydrogen {
        /// Deploys the network with `params`, minting `initial_supply` to the deployer.
        #[ink(constructor)]
        pub fn new(params: Params, initial_supply: Balance) -> Self {
            let owner = Self::env().caller();
            let (token, events) = PSP22Data::new(initial_supply, owner);
            assert!(params.validate().is_ok(), "invalid params");
            let contract = Self {
                owner,
                params,
                token,
                pool: 0,
                registry: Registry::default(),
                beacon: Beacon::default(),
                next_task: 1,
                tasks: Mapping::default(),
                queue: Lazy::default(),
            };
            contract.emit_psp22(events);
            contract
        }

        // ---- governance ----

        #[ink(message)]
        pub fn owner(&self) -> AccountId {
            self.owner
        }

        #[ink(message)]
        pub fn params(&self) -> Params {
            self.params
        }

        /// The incentive pool: every slashed stake.
        #[ink(message)]
        pub fn pool(&self) -> Balance {
            self.pool
        }

        #[ink(message)]
        pub fn set_params(&mut self, params: Params) -> Result<(), Error> {
            self.only_owner()?;
            params.validate()?;
            self.params = params;
            self.emit(Event::ParamsUpdated { params });
            Ok(())
        }

        #[ink(message)]
        pub fn set_owner(&mut self, owner: AccountId) -> Result<(), Error> {
            self.only_owner()?;
            self.owner = owner;
            Ok(())
        }

        /// The dev faucet: the owner mints tokens.
        #[ink(message)]
        pub fn mint(&mut self, to: AccountId, value: Balance) -> Result<(), Error> {
            self.only_owner()?;
            let events = self.token.mint(to, value).map_err(|_| Error::Overflow)?;
            self.emit_psp22(events);
            Ok(())
        }

        // ---- staking ----

        /// Stakes `required_stake` from the caller's balance and makes it
        /// available for tasks. `ticket` is `blake2_256` of the secret the
        /// node will reveal with its first [`Self::contribute_entropy`].
        #[ink(message)]
        pub fn join(
            &mut self,
            gpu_name: Vec<u8>,
            vram_gb: u32,
            engine_version: u32,
            ticket: Digest,
        ) -> Result<(), Error> {
            let caller = self.env().caller();
            if self.registry.get_staked(caller).is_ok() {
                return Err(Error::AlreadyJoined);
            }
            self.registry.validate_gpu(&gpu_name, vram_gb)?;
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
                slot: 0,
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

        #[ink(message)]
        pub fn resume(&mut self) -> Result<(), Error> {
            let caller = self.env().caller();
            let mut node = self.registry.get_staked(caller)?;
            let next = match node.status {
                NodeStatus::Paused => NodeStatus::Available,
                NodeStatus::PendingPause => NodeStatus::Busy,
                _ => return Err(Error::WrongNodeStatus),
            };
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
        /// beacon and registers the next ticket. Nodes call it while tasks
        /// wait for entropy ([`Self::entropy_needed`]).
        #[ink(message)]
        pub fn contribute_entropy(
            &mut self,
            secret: Digest,
            next_ticket: Digest,
        ) -> Result<(), Error> {
            let caller = self.env().caller();
            self.registry.get_staked(caller)?;
            if self.registry.ticket(caller) != Some(beacon::blake2_256(&secret)) {
                return Err(Error::TicketMismatch);
            }
            self.registry.set_ticket(caller, next_ticket);
            self.beacon.mix(caller, &secret);
            self.emit(Event::EntropyContributed { node: raw(caller) });
            self.dispatch();
            Ok(())
        }

        #[ink(message)]
        pub fn node_info(&self, node: AccountId) -> Option<NodeInfo> {
            self.registry.get(node).map(|n| n.info())
        }

        #[ink(message)]
        pub fn node_counts(&self) -> NodeCounts {
            self.registry.counts()
        }

        /// Available nodes with at least `min_vram_gb` of VRAM.
        #[ink(message)]
        pub fn available_capacity(&self, min_vram_gb: u32) -> u32 {
            self.registry.eligible(min_vram_gb)
        }

        // ---- tasks ----

        /// Escrows `fee` from the caller and queues the task. It starts once
        /// fresh entropy arrived and three nodes with `min_vram_gb` are free.
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
                self.beacon.epoch(),
            );
            self.tasks.insert(id, &task);
            self.emit(Event::TaskCreated {
                task_id: id,
                creator: raw(caller),
                task_type,
                args_hash,
                min_vram_gb,
                num_images,
                fee,
            });
            let evicted = queue::insert(
                &mut waiting,
                Entry { task: id, price },
                self.params.max_queue,
            );
            self.queue.set(&waiting);
            for entry in evicted {
                self.abort_queued(entry.task, AbortReason::Evicted);
            }
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
            if slot.settled || now > task.reveal_deadline(self.params.timeout_ms) {
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
            let preimage = commitment_preimage(task_id, &raw(caller), &outcome, &nonce);
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
                node: raw(caller),
            });
            self.advance(task_id, &mut task);
            self.dispatch();
            Ok(())
        }

        /// The designated node confirms the images are on the relay and is paid.
        #[ink(message)]
        pub fn confirm_upload(&mut self, task_id: TaskId) -> Result<(), Error> {
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
            if self.env().block_timestamp() > task.upload_deadline(self.params.timeout_ms) {
                return Err(Error::DeadlinePassed);
            }
            task.status = TaskStatus::Completed;
            task.slots[i].settled = true;
            self.emit(Event::ResultsUploaded {
                task_id,
                node: raw(caller),
            });
            self.apply(task_id, &mut task, i, Verdict::Pay);
            self.advance(task_id, &mut task);
            self.dispatch();
            Ok(())
        }

        /// Cancels a queued task (creator, any time, full refund), or settles
        /// a started one past its deadlines (creator or a selected node):
        /// silent nodes are penalised and what is left is refunded.
        #[ink(message)]
        pub fn cancel(&mut self, task_id: TaskId) -> Result<(), Error> {
            let caller = self.env().caller();
            let mut task = self.tasks.get(task_id).ok_or(Error::TaskNotFound)?;
            let is_creator = task.creator == caller;
            if !is_creator && task.slot_of(caller).is_none() {
                return Err(Error::NotAllowed);
            }
            if task.status == TaskStatus::Queued {
                let mut waiting = self.queue.get_or_default();
                queue::remove(&mut waiting, task_id);
                self.queue.set(&waiting);
                self.abort_queued(task_id, AbortReason::Cancelled);
                return Ok(());
            }
            if task.status.is_final() && task.all_settled() {
                return Err(Error::WrongTaskStatus);
            }
            let now = self.env().block_timestamp();
            let timeout = self.params.timeout_ms;
            let past = match task.status {
                TaskStatus::Running => now > task.deadline,
                TaskStatus::Succeeded => now > task.upload_deadline(timeout),
                _ => now > task.reveal_deadline(timeout),
            };
            if !past {
                return Err(Error::DeadlineNotReached);
            }
            self.advance(task_id, &mut task);
            self.dispatch();
            Ok(())
        }

        #[ink(message)]
        pub fn task(&self, task_id: TaskId) -> Option<TaskInfo> {
            self.tasks.get(task_id).map(|t| t.info(task_id))
        }

        /// Queued task ids, next to start first.
        #[ink(message)]
        pub fn queue(&self) -> Vec<TaskId> {
            self.queue.get_or_default().iter().map(|e| e.task).collect()
        }

        /// Whether a queued task waits for entropy contributions.
        #[ink(message)]
        pub fn entropy_needed(&self) -> bool {
            let waiting = self.queue.get_or_default();
            waiting.iter().any(|e| {
                self.tasks
                    .get(e.task)
                    .is_some_and(|t| !self.beacon.ripe_since(t.created_epoch))
            })
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
            self.env().emit_event(HydrogenEvent { event });
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
            // The contract's balance always covers escrow + stakes + pool.
            let _ = self.move_tokens(self.env().account_id(), to, value);
        }

        fn set_node_status(&mut self, id: AccountId, node: &mut Node, status: NodeStatus) {
            self.registry.set_status(id, node, status);
            self.emit(Event::NodeStatusChanged {
                node: raw(id),
                status,
            });
        }

        fn refund_stake(&mut self, id: AccountId, node: &mut Node) {
            let stake = core::mem::take(&mut node.stake);
            self.pay_out(id, stake);
            self.set_node_status(id, node, NodeStatus::Quit);
        }

        /// The task no longer needs the node: its pending pause or quit takes effect.
        fn release(&mut self, id: AccountId) {
            let Some(mut node) = self.registry.get(id) else {
                return;
            };
            node.current_task = None;
            match node.status {
                NodeStatus::Busy => self.set_node_status(id, &mut node, NodeStatus::Available),
                NodeStatus::PendingPause => self.set_node_status(id, &mut node, NodeStatus::Paused),
                NodeStatus::PendingQuit => self.refund_stake(id, &mut node),
                _ => self.registry.save(id, &node),
            }
        }

        fn abort_queued(&mut self, task_id: TaskId, reason: AbortReason) {
            if let Some(mut task) = self.tasks.get(task_id) {
                task.status = TaskStatus::Aborted(reason);
                self.emit(Event::TaskAborted { task_id, reason });
                self.refund(task_id, &mut task);
                self.tasks.insert(task_id, &task);
            }
        }

        fn refund(&mut self, task_id: TaskId, task: &mut Task) {
            let amount = core::mem::take(&mut task.escrow);
            if amount > 0 {
                self.pay_out(task.creator, amount);
                self.emit(Event::Refunded {
                    task_id,
                    creator: raw(task.creator),
                    amount,
                });
            }
        }

        /// Runs the consensus state machine and applies its verdicts; refunds
        /// the rest once the task is over for every node. Stores the task.
        fn advance(&mut self, task_id: TaskId, task: &mut Task) {
            let (changed, verdicts) = task.advance(
                self.env().block_timestamp(),
                self.params.timeout_ms,
                self.params.distance_threshold,
            );
            match changed {
                Some(TaskStatus::Succeeded) => {
                    let uploader = task.uploader.map(|i| raw(task.slots[usize::from(i)].node));
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
            }
            self.tasks.insert(task_id, task);
        }

        fn apply(&mut self, task_id: TaskId, task: &mut Task, i: usize, verdict: Verdict) {
            let Slot {
                node: id, order, ..
            } = task.slots[i].clone();
            match verdict {
                Verdict::Pay => {
                    let amount = fee_share(task.fee, usize::from(order)).min(task.escrow);
                    task.escrow = task.escrow.saturating_sub(amount);
                    self.pay_out(id, amount);
                    self.emit(Event::NodePaid {
                        task_id,
                        node: raw(id),
                        amount,
                    });
                    self.release(id);
                }
                Verdict::Slash => {
                    if let Some(mut node) = self.registry.get(id) {
                        let amount = core::mem::take(&mut node.stake);
                        self.pool = self.pool.saturating_add(amount);
                        node.current_task = None;
                        self.emit(Event::NodeSlashed {
                            task_id,
                            node: raw(id),
                            amount,
                        });
                        self.set_node_status(id, &mut node, NodeStatus::Quit);
                    }
                }
                Verdict::Miss => {
                    let Some(mut node) = self.registry.get(id) else {
                        return;
                    };
                    node.missed = node.missed.saturating_add(1);
                    self.emit(Event::NodeMissed {
                        task_id,
                        node: raw(id),
                        missed: node.missed,
                    });
                    if node.missed >= self.params.max_missed {
                        node.current_task = None;
                        let stake_returned = node.stake;
                        self.refund_stake(id, &mut node);
                        self.emit(Event::NodeKickedOut {
                            node: raw(id),
                            stake_returned,
                        });
                    } else {
                        self.registry.save(id, &node);
                        self.release(id);
                    }
                }
                Verdict::Release => self.release(id),
            }
        }

        /// Starts every queued task that is ripe and has three suitable free
        /// nodes, best price first, up to [`MAX_STARTS_PER_CALL`].
        fn dispatch(&mut self) {
            let mut waiting = self.queue.get_or_default();
            let (mut i, mut started) = (0, 0);
            while i < waiting.len() && started < MAX_STARTS_PER_CALL {
                let id = waiting[i].task;
                let Some(mut task) = self.tasks.get(id) else {
                    waiting.remove(i);
                    continue;
                };
                let ready = self.beacon.ripe_since(task.created_epoch)
                    && self.registry.eligible(task.min_vram_gb) as usize >= NODES_PER_TASK;
                if !ready {
                    i = i.saturating_add(1);
                    continue;
                }
                waiting.remove(i);
                self.start(id, &mut task);
                started = started.saturating_add(1);
            }
            if started > 0 {
                self.queue.set(&waiting);
            }
        }

        fn start(&mut self, task_id: TaskId, task: &mut Task) {
            let now = self.env().block_timestamp();
            let seed = self.beacon.seed(task_id, self.env().block_number(), now);
            task.status = TaskStatus::Running;
            task.deadline = now.saturating_add(self.params.timeout_ms);
            for k in 0..NODES_PER_TASK {
                let eligible = self.registry.eligible(task.min_vram_gb);
                let Some(id) = self
                    .registry
                    .pick(task.min_vram_gb, beacon::draw(&seed, k, eligible))
                else {
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
                });
                self.emit(Event::NodeSelected {
                    task_id,
                    node: raw(id),
                    deadline: task.deadline,
                });
            }
            self.tasks.insert(task_id, task);
        }
    }

    impl PSP22 for Hydrogen {
        #[ink(message)]
        fn total_supply(&self) -> u128 {
            self.token.total_supply()
        }

        #[ink(message)]
        fn balance_of(&self, owner: AccountId) -> u128 {
            self.token.balance_of(owner)
        }

        #[ink(message)]
        fn allowance(&self, owner: AccountId, spender: AccountId) -> u128 {
            self.token.allowance(owner, spender)
        }

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

        #[ink(message)]
        fn approve(&mut self, spender: AccountId, value: u128) -> Result<(), PSP22Error> {
            let events = self.token.approve(self.env().caller(), spender, value)?;
            self.emit_psp22(events);
            Ok(())
        }

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
        #[ink(message)]
        fn token_name(&self) -> Option<String> {
            Some(String::from("Hydrogen"))
        }

        #[ink(message)]
        fn token_symbol(&self) -> Option<String> {
            Some(String::from("HYD"))
        }

        #[ink(message)]
        fn token_decimals(&self) -> u8 {
            TOKEN_DECIMALS
        }
    }
}

pub use self::hydrogen::{Hydrogen, HydrogenRef};

#[cfg(test)]
mod tests;
