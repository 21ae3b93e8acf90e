//! [`Hydrogen`]: a handle on a deployed `hydrogen` contract with one method
//! per contract message, and [`msg`], the messages themselves (for dry runs
//! and weight measurements of any message).

use super::client::{ChainClient, DryRun, Submitted};
use super::deploy::{ContractBundle, Deployed};
use super::error::ChainError;
use super::events::BlockEvents;
use super::message::{selector, Message};
use codec::{Decode, Encode};
use futures::Stream;
use hydrogen_types::{
    AccountId, Balance, Event, Hash, NodeCounts, NodeInfo, Outcome, Params, Receipt, RelayKey,
    TaskId, TaskInfo, TaskType,
};
use subxt_signer::sr25519::Keypair;

/// The contract's messages. Each function builds the call; the return type
/// parameter is what the message returns on success.
pub mod msg {
    use super::*;

    // PSP22 and PSP22Metadata.
    /// Tokens in existence.
    pub fn total_supply() -> Message<Balance> {
        Message::infallible("PSP22::total_supply", ())
    }
    /// `owner`'s token balance.
    pub fn balance_of(owner: AccountId) -> Message<Balance> {
        Message::infallible("PSP22::balance_of", (owner,))
    }
    /// What `spender` may still move from `owner`.
    pub fn allowance(owner: AccountId, spender: AccountId) -> Message<Balance> {
        Message::infallible("PSP22::allowance", (owner, spender))
    }
    /// Moves `value` tokens from the caller to `to`.
    pub fn transfer(to: AccountId, value: Balance, data: Vec<u8>) -> Message<()> {
        Message::psp22("PSP22::transfer", (to, value, data))
    }
    /// Moves `value` of `from`'s tokens to `to`, spending the caller's allowance.
    pub fn transfer_from(
        from: AccountId,
        to: AccountId,
        value: Balance,
        data: Vec<u8>,
    ) -> Message<()> {
        Message::psp22("PSP22::transfer_from", (from, to, value, data))
    }
    /// Lets `spender` move up to `value` of the caller's tokens.
    pub fn approve(spender: AccountId, value: Balance) -> Message<()> {
        Message::psp22("PSP22::approve", (spender, value))
    }
    /// Raises `spender`'s allowance by `delta_value`.
    pub fn increase_allowance(spender: AccountId, delta_value: Balance) -> Message<()> {
        Message::psp22("PSP22::increase_allowance", (spender, delta_value))
    }
    /// Lowers `spender`'s allowance by `delta_value`.
    pub fn decrease_allowance(spender: AccountId, delta_value: Balance) -> Message<()> {
        Message::psp22("PSP22::decrease_allowance", (spender, delta_value))
    }
    /// The token's name.
    pub fn token_name() -> Message<Option<String>> {
        Message::infallible("PSP22Metadata::token_name", ())
    }
    /// The token's ticker symbol.
    pub fn token_symbol() -> Message<Option<String>> {
        Message::infallible("PSP22Metadata::token_symbol", ())
    }
    /// Decimals of the token (12).
    pub fn token_decimals() -> Message<u8> {
        Message::infallible("PSP22Metadata::token_decimals", ())
    }

    // Owner.
    /// The account that governs the parameters and may mint.
    pub fn owner() -> Message<AccountId> {
        Message::infallible("owner", ())
    }
    /// The protocol parameters.
    pub fn params() -> Message<Params> {
        Message::infallible("params", ())
    }
    /// Tokens burned by slashes, forfeits and cancellation fees.
    pub fn burned() -> Message<Balance> {
        Message::infallible("burned", ())
    }
    /// Owner only: replaces the parameters (validated).
    pub fn set_params(params: Params) -> Message<()> {
        Message::fallible("set_params", (params,))
    }
    /// Owner only: offers ownership to `to`, who must accept it.
    pub fn transfer_ownership(to: AccountId) -> Message<()> {
        Message::fallible("transfer_ownership", (to,))
    }
    /// The offered account takes ownership.
    pub fn accept_ownership() -> Message<()> {
        Message::fallible("accept_ownership", ())
    }
    /// Owner only: creates `value` tokens for `to` (until minting is disabled).
    pub fn mint(to: AccountId, value: Balance) -> Message<()> {
        Message::fallible("mint", (to, value))
    }
    /// The relay key whose receipts `confirm_upload` requires, if any.
    pub fn relay_key() -> Message<Option<RelayKey>> {
        Message::infallible("relay_key", ())
    }
    /// Owner only: registers (or clears) the relay's receipt key.
    pub fn set_relay_key(key: Option<RelayKey>) -> Message<()> {
        Message::fallible("set_relay_key", (key,))
    }
    /// Owner only: ends minting for good.
    pub fn disable_minting() -> Message<()> {
        Message::fallible("disable_minting", ())
    }

    // Staking.
    /// Stakes `Params::required_stake` of the caller's tokens and registers the caller as a node; `ticket` is the hash of its first entropy secret.
    pub fn join(gpu_name: String, vram_gb: u32, engine_version: u32, ticket: Hash) -> Message<()> {
        Message::fallible("join", (gpu_name, vram_gb, engine_version, ticket))
    }
    /// The caller's node stops taking tasks (after its current one).
    pub fn pause() -> Message<()> {
        Message::fallible("pause", ())
    }
    /// The caller's paused node takes tasks again.
    pub fn resume() -> Message<()> {
        Message::fallible("resume", ())
    }
    /// The caller's node leaves and gets its stake back (after its current task).
    pub fn quit() -> Message<()> {
        Message::fallible("quit", ())
    }
    /// Reveals the secret behind the caller's ticket and publishes the next ticket.
    pub fn contribute_entropy(secret: Hash, next_ticket: Hash) -> Message<()> {
        Message::fallible("contribute_entropy", (secret, next_ticket))
    }
    /// A node's registration, if any.
    pub fn node_info(node: AccountId) -> Message<Option<NodeInfo>> {
        Message::infallible("node_info", (node,))
    }
    /// Nodes by status.
    pub fn node_counts() -> Message<NodeCounts> {
        Message::infallible("node_counts", ())
    }
    /// Available nodes with at least `min_vram_gb` of VRAM.
    pub fn available_capacity(min_vram_gb: u32) -> Message<u32> {
        Message::infallible("available_capacity", (min_vram_gb,))
    }

    // Tasks.
    /// Escrows `fee` of the caller's tokens and queues a task; returns its id.
    pub fn create_task(
        task_type: TaskType,
        args_hash: Hash,
        min_vram_gb: u32,
        num_images: u8,
        fee: Balance,
    ) -> Message<TaskId> {
        Message::fallible(
            "create_task",
            (task_type, args_hash, min_vram_gb, num_images, fee),
        )
    }
    /// A selected node commits to its result (see `hydrogen_types::commitment`).
    pub fn commit(task_id: TaskId, commitment: Hash) -> Message<()> {
        Message::fallible("commit", (task_id, commitment))
    }
    /// A selected node reveals the outcome and nonce it committed to.
    pub fn reveal(task_id: TaskId, outcome: Outcome, nonce: Hash) -> Message<()> {
        Message::fallible("reveal", (task_id, outcome, nonce))
    }
    /// The uploader confirms the images are on the relay, with the relay's
    /// receipt (required once a relay key is registered).
    pub fn confirm_upload(task_id: TaskId, receipt: Option<Receipt>) -> Message<()> {
        Message::fallible("confirm_upload", (task_id, receipt))
    }
    /// The creator (or a selected node, when allowed) cancels a task.
    pub fn cancel(task_id: TaskId) -> Message<()> {
        Message::fallible("cancel", (task_id,))
    }
    /// A task, if it exists.
    pub fn task(task_id: TaskId) -> Message<Option<TaskInfo>> {
        Message::infallible("task", (task_id,))
    }
    /// Ids of the queued tasks.
    pub fn queue() -> Message<Vec<TaskId>> {
        Message::infallible("queue", ())
    }
    /// Whether an armed batch of tasks waits for fresh entropy.
    pub fn entropy_needed() -> Message<bool> {
        Message::infallible("entropy_needed", ())
    }
    /// The tasks armed for the next draw.
    pub fn armed() -> Message<Vec<TaskId>> {
        Message::infallible("armed", ())
    }
    /// Anyone: replaces an armed batch's contributors silent past the window.
    pub fn redesignate() -> Message<()> {
        Message::fallible("redesignate", ())
    }
    /// The armed batch's designated contributors that have yet to reveal.
    pub fn entropy_contributors() -> Message<Vec<AccountId>> {
        Message::infallible("entropy_contributors", ())
    }

    /// Every message name above, to check a bundle's metadata against.
    pub const ALL: &[&str] = &[
        "PSP22::total_supply",
        "PSP22::balance_of",
        "PSP22::allowance",
        "PSP22::transfer",
        "PSP22::transfer_from",
        "PSP22::approve",
        "PSP22::increase_allowance",
        "PSP22::decrease_allowance",
        "PSP22Metadata::token_name",
        "PSP22Metadata::token_symbol",
        "PSP22Metadata::token_decimals",
        "owner",
        "params",
        "burned",
        "set_params",
        "transfer_ownership",
        "accept_ownership",
        "mint",
        "disable_minting",
        "relay_key",
        "set_relay_key",
        "join",
        "pause",
        "resume",
        "quit",
        "contribute_entropy",
        "node_info",
        "node_counts",
        "available_capacity",
        "create_task",
        "commit",
        "reveal",
        "confirm_upload",
        "cancel",
        "task",
        "queue",
        "entropy_needed",
        "entropy_contributors",
        "redesignate",
        "armed",
    ];
}

/// The constructor input: `new(params, initial_supply)`.
pub fn constructor_input(params: &Params, initial_supply: Balance) -> Vec<u8> {
    let mut input = selector("new").to_vec();
    (params, initial_supply).encode_to(&mut input);
    input
}

/// A deployed `hydrogen` contract. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Hydrogen {
    client: ChainClient,
    address: AccountId,
    view_origin: AccountId,
}

impl Hydrogen {
    /// The contract at `address`. Views run as the all-zero account; see
    /// [`with_view_origin`](Self::with_view_origin).
    pub fn at(client: ChainClient, address: AccountId) -> Self {
        Hydrogen {
            client,
            address,
            view_origin: AccountId::from([0; 32]),
        }
    }

    /// Run views as `origin` instead.
    pub fn with_view_origin(mut self, origin: AccountId) -> Self {
        self.view_origin = origin;
        self
    }

    /// Instantiates `bundle` as `signer` (who becomes owner and receives
    /// `initial_supply`). A fresh salt makes every deployment a new contract.
    pub async fn deploy(
        client: ChainClient,
        signer: &Keypair,
        bundle: &ContractBundle,
        params: &Params,
        initial_supply: Balance,
    ) -> Result<(Self, Deployed), ChainError> {
        let input = constructor_input(params, initial_supply);
        let deployed = client
            .instantiate_with_code(signer, bundle.wasm.clone(), input, fresh_salt())
            .await?;
        Ok((Hydrogen::at(client, deployed.address), deployed))
    }

    pub fn address(&self) -> AccountId {
        self.address
    }

    pub fn client(&self) -> &ChainClient {
        &self.client
    }

    /// Dry-runs any message as `origin`.
    pub async fn dry_run<T: Decode>(
        &self,
        origin: &AccountId,
        message: &Message<T>,
    ) -> Result<DryRun<T>, ChainError> {
        self.client.dry_run(origin, &self.address, message).await
    }

    /// Dry-runs, submits and finalizes any message signed by `signer`.
    pub async fn submit<T: Decode>(
        &self,
        signer: &Keypair,
        message: &Message<T>,
    ) -> Result<Submitted<T>, ChainError> {
        self.client.submit(signer, &self.address, message).await
    }

    async fn view<T: Decode>(&self, message: Message<T>) -> Result<T, ChainError> {
        Ok(self
            .client
            .dry_run(&self.view_origin, &self.address, &message)
            .await?
            .value)
    }

    /// The Hydrogen events of finalized block `number`.
    pub async fn events_at(&self, number: u64) -> Result<BlockEvents, ChainError> {
        self.client.contract_events_at(&self.address, number).await
    }

    /// Finalized blocks with this contract's events, from block `from` (or
    /// from the next finalized block); see [`ChainClient::contract_event_stream`].
    pub async fn event_stream(
        &self,
        from: Option<u64>,
    ) -> Result<impl Stream<Item = Result<BlockEvents, ChainError>> + Send + 'static, ChainError>
    {
        self.client.contract_event_stream(self.address, from).await
    }

    // ---- PSP22 ----

    /// [`msg::total_supply`], read with a dry run.
    pub async fn total_supply(&self) -> Result<Balance, ChainError> {
        self.view(msg::total_supply()).await
    }
    /// [`msg::balance_of`], read with a dry run.
    pub async fn balance_of(&self, owner: AccountId) -> Result<Balance, ChainError> {
        self.view(msg::balance_of(owner)).await
    }
    /// [`msg::allowance`], read with a dry run.
    pub async fn allowance(
        &self,
        owner: AccountId,
        spender: AccountId,
    ) -> Result<Balance, ChainError> {
        self.view(msg::allowance(owner, spender)).await
    }
    /// [`msg::token_name`], read with a dry run.
    pub async fn token_name(&self) -> Result<Option<String>, ChainError> {
        self.view(msg::token_name()).await
    }
    /// [`msg::token_symbol`], read with a dry run.
    pub async fn token_symbol(&self) -> Result<Option<String>, ChainError> {
        self.view(msg::token_symbol()).await
    }
    /// [`msg::token_decimals`], read with a dry run.
    pub async fn token_decimals(&self) -> Result<u8, ChainError> {
        self.view(msg::token_decimals()).await
    }
    /// [`msg::transfer`], signed by `signer`; refusals return before submitting.
    pub async fn transfer(
        &self,
        signer: &Keypair,
        to: AccountId,
        value: Balance,
    ) -> Result<Submitted<()>, ChainError> {
        self.submit(signer, &msg::transfer(to, value, Vec::new()))
            .await
    }
    /// [`msg::transfer_from`], signed by `signer`; refusals return before submitting.
    pub async fn transfer_from(
        &self,
        signer: &Keypair,
        from: AccountId,
        to: AccountId,
        value: Balance,
    ) -> Result<Submitted<()>, ChainError> {
        self.submit(signer, &msg::transfer_from(from, to, value, Vec::new()))
            .await
    }
    /// [`msg::approve`], signed by `signer`; refusals return before submitting.
    pub async fn approve(
        &self,
        signer: &Keypair,
        spender: AccountId,
        value: Balance,
    ) -> Result<Submitted<()>, ChainError> {
        self.submit(signer, &msg::approve(spender, value)).await
    }
    /// [`msg::increase_allowance`], signed by `signer`; refusals return before submitting.
    pub async fn increase_allowance(
        &self,
        signer: &Keypair,
        spender: AccountId,
        delta_value: Balance,
    ) -> Result<Submitted<()>, ChainError> {
        self.submit(signer, &msg::increase_allowance(spender, delta_value))
            .await
    }
    /// [`msg::decrease_allowance`], signed by `signer`; refusals return before submitting.
    pub async fn decrease_allowance(
        &self,
        signer: &Keypair,
        spender: AccountId,
        delta_value: Balance,
    ) -> Result<Submitted<()>, ChainError> {
        self.submit(signer, &msg::decrease_allowance(spender, delta_value))
            .await
    }

    // ---- owner ----

    /// [`msg::owner`], read with a dry run.
    pub async fn owner(&self) -> Result<AccountId, ChainError> {
        self.view(msg::owner()).await
    }
    /// [`msg::params`], read with a dry run.
    pub async fn params(&self) -> Result<Params, ChainError> {
        self.view(msg::params()).await
    }
    /// [`msg::burned`], read with a dry run.
    pub async fn burned(&self) -> Result<Balance, ChainError> {
        self.view(msg::burned()).await
    }
    /// [`msg::set_params`], signed by `signer`; refusals return before submitting.
    pub async fn set_params(
        &self,
        signer: &Keypair,
        params: Params,
    ) -> Result<Submitted<()>, ChainError> {
        self.submit(signer, &msg::set_params(params)).await
    }
    /// [`msg::transfer_ownership`], signed by `signer`; refusals return before submitting.
    pub async fn transfer_ownership(
        &self,
        signer: &Keypair,
        to: AccountId,
    ) -> Result<Submitted<()>, ChainError> {
        self.submit(signer, &msg::transfer_ownership(to)).await
    }
    /// [`msg::accept_ownership`], signed by `signer`; refusals return before submitting.
    pub async fn accept_ownership(&self, signer: &Keypair) -> Result<Submitted<()>, ChainError> {
        self.submit(signer, &msg::accept_ownership()).await
    }
    /// [`msg::entropy_contributors`], read with a dry run.
    pub async fn entropy_contributors(&self) -> Result<Vec<AccountId>, ChainError> {
        self.view(msg::entropy_contributors()).await
    }
    /// [`msg::redesignate`], signed by `signer`; refusals return before submitting.
    pub async fn redesignate(&self, signer: &Keypair) -> Result<Submitted<()>, ChainError> {
        self.submit(signer, &msg::redesignate()).await
    }
    /// [`msg::armed`], read with a dry run.
    pub async fn armed(&self) -> Result<Vec<TaskId>, ChainError> {
        self.view(msg::armed()).await
    }
    /// [`msg::mint`], signed by `signer`; refusals return before submitting.
    pub async fn mint(
        &self,
        signer: &Keypair,
        to: AccountId,
        value: Balance,
    ) -> Result<Submitted<()>, ChainError> {
        self.submit(signer, &msg::mint(to, value)).await
    }

    // ---- staking ----

    /// Stakes `Params::required_stake` from `signer`'s tokens and joins.
    pub async fn join(
        &self,
        signer: &Keypair,
        gpu_name: String,
        vram_gb: u32,
        engine_version: u32,
        ticket: Hash,
    ) -> Result<Submitted<()>, ChainError> {
        self.submit(
            signer,
            &msg::join(gpu_name, vram_gb, engine_version, ticket),
        )
        .await
    }
    /// [`msg::pause`], signed by `signer`; refusals return before submitting.
    pub async fn pause(&self, signer: &Keypair) -> Result<Submitted<()>, ChainError> {
        self.submit(signer, &msg::pause()).await
    }
    /// [`msg::resume`], signed by `signer`; refusals return before submitting.
    pub async fn resume(&self, signer: &Keypair) -> Result<Submitted<()>, ChainError> {
        self.submit(signer, &msg::resume()).await
    }
    /// [`msg::quit`], signed by `signer`; refusals return before submitting.
    pub async fn quit(&self, signer: &Keypair) -> Result<Submitted<()>, ChainError> {
        self.submit(signer, &msg::quit()).await
    }
    /// [`msg::contribute_entropy`], signed by `signer`; refusals return before submitting.
    pub async fn contribute_entropy(
        &self,
        signer: &Keypair,
        secret: Hash,
        next_ticket: Hash,
    ) -> Result<Submitted<()>, ChainError> {
        self.submit(signer, &msg::contribute_entropy(secret, next_ticket))
            .await
    }
    /// [`msg::node_info`], read with a dry run.
    pub async fn node_info(&self, node: AccountId) -> Result<Option<NodeInfo>, ChainError> {
        self.view(msg::node_info(node)).await
    }
    /// [`msg::node_counts`], read with a dry run.
    pub async fn node_counts(&self) -> Result<NodeCounts, ChainError> {
        self.view(msg::node_counts()).await
    }
    /// [`msg::available_capacity`], read with a dry run.
    pub async fn available_capacity(&self, min_vram_gb: u32) -> Result<u32, ChainError> {
        self.view(msg::available_capacity(min_vram_gb)).await
    }

    // ---- tasks ----

    /// Escrows `fee` from `signer`'s tokens and queues the task; returns its
    /// id as the extrinsic's `TaskCreated` event reports it.
    pub async fn create_task(
        &self,
        signer: &Keypair,
        task_type: TaskType,
        args_hash: Hash,
        min_vram_gb: u32,
        num_images: u8,
        fee: Balance,
    ) -> Result<Submitted<TaskId>, ChainError> {
        let mut submitted = self
            .submit(
                signer,
                &msg::create_task(task_type, args_hash, min_vram_gb, num_images, fee),
            )
            .await?;
        // The dry run's id is a guess when other tasks are created
        // concurrently; the event carries the id the task really got.
        submitted.value = submitted
            .events
            .iter()
            .find_map(|e| match e {
                Event::TaskCreated { task_id, .. } => Some(*task_id),
                _ => None,
            })
            .ok_or(ChainError::MissingEvent {
                what: "create_task".into(),
                event: "TaskCreated",
            })?;
        Ok(submitted)
    }
    /// [`msg::commit`], signed by `signer`; refusals return before submitting.
    pub async fn commit(
        &self,
        signer: &Keypair,
        task_id: TaskId,
        commitment: Hash,
    ) -> Result<Submitted<()>, ChainError> {
        self.submit(signer, &msg::commit(task_id, commitment)).await
    }
    /// [`msg::reveal`], signed by `signer`; refusals return before submitting.
    pub async fn reveal(
        &self,
        signer: &Keypair,
        task_id: TaskId,
        outcome: Outcome,
        nonce: Hash,
    ) -> Result<Submitted<()>, ChainError> {
        self.submit(signer, &msg::reveal(task_id, outcome, nonce))
            .await
    }
    /// [`msg::confirm_upload`], signed by `signer`; refusals return before submitting.
    pub async fn confirm_upload(
        &self,
        signer: &Keypair,
        task_id: TaskId,
        receipt: Option<Receipt>,
    ) -> Result<Submitted<()>, ChainError> {
        self.submit(signer, &msg::confirm_upload(task_id, receipt))
            .await
    }
    /// [`msg::relay_key`], read with a dry run.
    pub async fn relay_key(&self) -> Result<Option<RelayKey>, ChainError> {
        self.view(msg::relay_key()).await
    }
    /// [`msg::set_relay_key`], signed by `signer`; refusals return before submitting.
    pub async fn set_relay_key(
        &self,
        signer: &Keypair,
        key: Option<RelayKey>,
    ) -> Result<Submitted<()>, ChainError> {
        self.submit(signer, &msg::set_relay_key(key)).await
    }
    /// [`msg::cancel`], signed by `signer`; refusals return before submitting.
    pub async fn cancel(
        &self,
        signer: &Keypair,
        task_id: TaskId,
    ) -> Result<Submitted<()>, ChainError> {
        self.submit(signer, &msg::cancel(task_id)).await
    }
    /// [`msg::task`], read with a dry run.
    pub async fn task(&self, task_id: TaskId) -> Result<Option<TaskInfo>, ChainError> {
        self.view(msg::task(task_id)).await
    }
    /// [`msg::task`] in the state of block `at` (the best block when `None`).
    pub async fn task_at(
        &self,
        task_id: TaskId,
        at: Option<[u8; 32]>,
    ) -> Result<Option<TaskInfo>, ChainError> {
        let message = msg::task(task_id);
        Ok(self
            .client
            .dry_run_at(&self.view_origin, &self.address, &message, at)
            .await?
            .value)
    }
    /// [`msg::queue`], read with a dry run.
    pub async fn queue(&self) -> Result<Vec<TaskId>, ChainError> {
        self.view(msg::queue()).await
    }
    /// [`msg::entropy_needed`], read with a dry run.
    pub async fn entropy_needed(&self) -> Result<bool, ChainError> {
        self.view(msg::entropy_needed()).await
    }
}

/// A salt unique to this process and moment, so redeploying the same code
/// with the same arguments gives a new address.
fn fresh_salt() -> Vec<u8> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seed = (
        nanos,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
    )
        .encode();
    hydrogen_types::blake2_256(&seed).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructor_input_is_new_selector_then_params_and_supply() {
        let params = Params::default();
        let input = constructor_input(&params, 7);
        assert_eq!(&input[..4], &[0x9b, 0xae, 0x9d, 0x5e]);
        let (p, supply) = <(Params, Balance)>::decode(&mut &input[4..]).unwrap();
        assert_eq!((p, supply), (params, 7));
    }

    #[test]
    fn message_names_are_listed_once() {
        let mut names = msg::ALL.to_vec();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), msg::ALL.len());
    }

    #[test]
    fn salts_differ() {
        assert_ne!(fresh_salt(), fresh_salt());
    }
}
