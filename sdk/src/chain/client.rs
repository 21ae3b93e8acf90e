//! The connection to a node: contract dry runs, extrinsic submission with
//! local nonces, and waiting for finality.

use super::contracts_api::{call_request, ContractResult, ExecReturnValue, StorageDeposit, Weight};
use super::error::{describe_dispatch_error, take_dispatch_error, ChainError};
use super::events::{contract_events, RawEvent};
use super::message::Message;
use super::nonce::NonceManager;
use codec::Decode;
use hydrogen_types::{AccountId, Balance};
use sp_crypto_hashing::{blake2_128, twox_128};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use subxt::backend::LegacyBackend;
use subxt::config::{DefaultExtrinsicParamsBuilder, RpcConfigFor};
use subxt::dynamic::Value;
use subxt::error::{BackendError, ExtrinsicError, RpcError};
use subxt::events::Phase;
use subxt::rpcs::client::reconnecting_rpc_client::FixedInterval;
use subxt::rpcs::client::ReconnectingRpcClient;
use subxt::rpcs::methods::LegacyRpcMethods;
use subxt::rpcs::RpcClient;
use subxt::transactions::{Payload, TransactionStatus};
use subxt::utils::{AccountId32, MultiAddress};
use subxt::{OnlineClient, PolkadotConfig};
use subxt_signer::sr25519::Keypair;
use subxt_signer::SecretUri;

/// substrate-contracts-node's runtime speaks Polkadot's transaction format:
/// `MultiAddress<AccountId32, ()>`, u32 nonces, u128 balances.
pub type ChainConfig = PolkadotConfig;

/// Extra gas over the dry run's `gas_required`, in per cent, so that state
/// changed by transactions ahead in the same block does not starve the call
/// (four concurrent `create_task`s needed more than 10 %). Unused gas is
/// refunded, so the margin costs no fee.
pub const GAS_MARGIN_PERCENT: u64 = 50;
/// Extra storage deposit limit over the dry run's charge, in per cent.
pub const DEPOSIT_MARGIN_PERCENT: u128 = 10;
/// Blocks a signed transaction stays valid for.
const MORTALITY_BLOCKS: u64 = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a dropped connection is retried before calls fail: covers a
/// node restart, including a slow start on a loaded machine.
pub const RECONNECT_FOR: Duration = Duration::from_secs(120);
const RECONNECT_EVERY: Duration = Duration::from_millis(250);
const DEFAULT_FINALITY_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `call` again when the connection dropped under it (the client
/// holds calls made while it reconnects). Only for reads: a submission cut
/// off this way may have reached the pool.
pub(crate) async fn again_after_drop<T, F, Fut>(mut call: F) -> Result<T, subxt::rpcs::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, subxt::rpcs::Error>>,
{
    // A drop per attempt would mean the node keeps dying: report that.
    for _ in 0..3 {
        match call().await {
            Err(e) if e.is_disconnected_will_reconnect() => continue,
            result => return result,
        }
    }
    call().await
}

/// The head of `frame_system`'s `AccountInfo` (the rest is not read).
#[derive(Decode)]
struct AccountInfo {
    nonce: u32,
    _consumers: u32,
    _providers: u32,
    _sufficients: u32,
    free: u128,
}

/// Refuses a URL that can never reach a node's WebSocket RPC, so that a
/// mistyped `http://…` is reported at once instead of retried forever.
pub fn check_ws_url(url: &str) -> Result<(), ChainError> {
    let invalid = |reason: &str| ChainError::InvalidUrl {
        url: url.into(),
        reason: reason.into(),
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    match parsed.scheme() {
        "ws" | "wss" => {}
        "http" | "https" => {
            return Err(invalid(
                "the chain's RPC is a WebSocket: use ws:// (or wss://) instead of http(s)://",
            ))
        }
        other => {
            return Err(invalid(&format!(
                "unknown scheme {other}:// (use ws:// or wss://)"
            )))
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    Ok(())
}

/// The 32-byte account of `signer`.
pub fn account_of(signer: &Keypair) -> AccountId {
    AccountId::from(signer.public_key().0)
}

/// A keypair from a secret URI: `//Alice`, `//Node1`, a mnemonic with
/// optional `//hard/soft` junctions, or `0x` + 32-byte seed.
pub fn keypair_from_suri(suri: &str) -> Result<Keypair, ChainError> {
    let uri =
        SecretUri::from_str(suri).map_err(|e| ChainError::SecretUri(format!("{suri:?}: {e}")))?;
    Keypair::from_uri(&uri).map_err(|e| ChainError::SecretUri(format!("{suri:?}: {e}")))
}

/// An account from its SS58 address or `0x` + 64 hex digits.
pub fn parse_account(s: &str) -> Result<AccountId, ChainError> {
    if let Some(hex_digits) = s.strip_prefix("0x") {
        let bytes =
            hex::decode(hex_digits).map_err(|e| ChainError::decode(format!("account {s:?}"), e))?;
        return AccountId::try_from(bytes.as_slice())
            .map_err(|_| ChainError::decode(format!("account {s:?}"), "expected 32 bytes"));
    }
    AccountId32::from_str(s)
        .map(|a| AccountId::from(a.0))
        .map_err(|e| ChainError::decode(format!("account {s:?}"), e))
}

/// An account's SS58 address (generic Substrate prefix 42).
pub fn ss58(account: &AccountId) -> String {
    AccountId32(account.0).to_string()
}

/// The outcome of a dry run: the decoded return value and what executing
/// the message for real would cost.
#[derive(Debug, Clone)]
pub struct DryRun<T> {
    pub value: T,
    /// Weight the execution used.
    pub gas_consumed: Weight,
    /// Weight limit the call needs (can exceed `gas_consumed`).
    pub gas_required: Weight,
    /// Storage deposit the call would charge or refund.
    pub storage_deposit: StorageDeposit,
    /// Output of `ink::env::debug_println!` (debug builds of the contract).
    pub debug_message: String,
}

/// A finalized, successful extrinsic.
#[derive(Debug, Clone)]
pub struct Included {
    pub block_number: u64,
    pub block_hash: [u8; 32],
    pub extrinsic_hash: [u8; 32],
    pub extrinsic_index: u32,
    /// Every event the extrinsic emitted, in order.
    pub events: Vec<RawEvent>,
    /// The extrinsic's actual weight (from `System::ExtrinsicSuccess`).
    pub weight: Weight,
    /// Fee paid (from `TransactionPayment::TransactionFeePaid`).
    pub fee: Balance,
}

/// A contract call that was dry-run, submitted and finalized.
#[derive(Debug, Clone)]
pub struct Submitted<T> {
    /// The message's return value. The chain does not record what the real
    /// call returned, so this is the dry run's value: exact when nothing
    /// else touched the same state in between (see [`Hydrogen::create_task`]
    /// for how the task id is made exact).
    ///
    /// [`Hydrogen::create_task`]: super::Hydrogen::create_task
    pub value: T,
    /// The contract's Hydrogen events from this extrinsic, in order.
    pub events: Vec<hydrogen_types::Event>,
    /// The dry run that sized the call: `gas_required`, `storage_deposit`.
    pub dry_run: DryRun<()>,
    /// Gas limit the extrinsic carried.
    pub gas_limit: Weight,
    pub included: Included,
}

/// A connection to a substrate-contracts-node. Cheap to clone; clones share
/// the connection and the nonce counters.
#[derive(Clone)]
pub struct ChainClient {
    api: OnlineClient<ChainConfig>,
    rpc: LegacyRpcMethods<RpcConfigFor<ChainConfig>>,
    nonces: NonceManager,
    url: Arc<str>,
    finality_timeout: Duration,
}

impl std::fmt::Debug for ChainClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainClient")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ChainClient {
    /// Connects to the node's WebSocket RPC at `url` (`ws://127.0.0.1:9944`).
    ///
    /// The connection outlives a restart of the node: while it is down,
    /// calls wait for it to come back, for up to [`RECONNECT_FOR`]; after
    /// that they fail with [`ChainError::Rpc`] and a new client is needed.
    /// A call in flight when the connection drops fails if it was a
    /// submission (it may or may not have reached the pool) and is made
    /// again otherwise; [`contract_event_stream`](Self::contract_event_stream)
    /// resumes where it was.
    pub async fn connect(url: &str) -> Result<Self, ChainError> {
        check_ws_url(url)?;
        let failed = |reason: String| ChainError::Connect {
            url: url.into(),
            reason,
        };
        let no_answer = |_| failed(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()));
        // A plain connection first, so that a node that is not there is
        // reported now rather than after the reconnecting client has spent
        // its retries on it.
        tokio::time::timeout(CONNECT_TIMEOUT, RpcClient::from_insecure_url(url))
            .await
            .map_err(no_answer)?
            .map_err(|e| failed(e.to_string()))?;
        let attempts = (RECONNECT_FOR.as_millis() / RECONNECT_EVERY.as_millis()) as usize;
        let reconnecting = ReconnectingRpcClient::builder()
            .retry_policy(FixedInterval::new(RECONNECT_EVERY).take(attempts))
            .build(url);
        let rpc = tokio::time::timeout(CONNECT_TIMEOUT, reconnecting)
            .await
            .map_err(no_answer)?
            .map_err(|e| failed(e.to_string()))?;
        let rpc = RpcClient::new(rpc);
        let config = PolkadotConfig::builder().use_historic_types(false).build();
        // The legacy RPC methods answer in about 1 ms on a local node; each
        // chainHead_v1 operation (subxt's default backend) took about 45 ms,
        // which made a submission four times slower (56 ms against 230 ms).
        let backend = Arc::new(LegacyBackend::builder().build(rpc.clone()));
        let api = OnlineClient::from_backend_with_config(config, backend)
            .await
            .map_err(|e| failed(e.to_string()))?;
        Ok(ChainClient {
            api,
            rpc: LegacyRpcMethods::new(rpc),
            nonces: NonceManager::new(),
            url: url.into(),
            finality_timeout: DEFAULT_FINALITY_TIMEOUT,
        })
    }

    /// How long [`submit`](Self::submit) waits for finality before giving up.
    pub fn with_finality_timeout(mut self, timeout: Duration) -> Self {
        self.finality_timeout = timeout;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying subxt client, for anything this client does not cover.
    pub fn api(&self) -> &OnlineClient<ChainConfig> {
        &self.api
    }

    pub(crate) fn rpc(&self) -> &LegacyRpcMethods<RpcConfigFor<ChainConfig>> {
        &self.rpc
    }

    /// The number of the latest finalized block.
    pub async fn finalized_number(&self) -> Result<u64, ChainError> {
        let hash = again_after_drop(|| self.rpc.chain_get_finalized_head())
            .await
            .map_err(|e| ChainError::rpc("cannot read the finalized head", e))?;
        let header = again_after_drop(|| self.rpc.chain_get_header(Some(hash)))
            .await
            .map_err(|e| ChainError::rpc("cannot read the finalized header", e))?
            .ok_or_else(|| {
                ChainError::rpc("cannot read the finalized header", "node has no such block")
            })?;
        Ok(header.number)
    }

    /// The node's next nonce for `account`, counting transactions in its pool.
    pub async fn account_next_index(&self, account: &AccountId) -> Result<u64, ChainError> {
        let account = AccountId32(account.0);
        again_after_drop(|| self.rpc.system_account_next_index(&account))
            .await
            .map_err(|e| ChainError::rpc("cannot read the account's next nonce", e))
    }

    /// The free native balance of `account` (pays fees and storage deposits).
    pub async fn native_balance(&self, account: &AccountId) -> Result<Balance, ChainError> {
        Ok(self.account_info(account).await?.map_or(0, |a| a.free))
    }

    /// The number of the best (newest, maybe not yet final) block.
    pub async fn best_number(&self) -> Result<u64, ChainError> {
        let header = again_after_drop(|| self.rpc.chain_get_header(None))
            .await
            .map_err(|e| ChainError::rpc("cannot read the best header", e))?
            .ok_or_else(|| ChainError::rpc("cannot read the best header", "node has no head"))?;
        Ok(header.number)
    }

    /// Whether `account` has transactions in the node's pool that no block
    /// holds yet: its next nonce counting the pool is past its nonce in the
    /// best block.
    pub async fn has_pooled_transactions(&self, account: &AccountId) -> Result<bool, ChainError> {
        let nonce = self
            .account_info(account)
            .await?
            .map_or(0, |a| u64::from(a.nonce));
        Ok(self.account_next_index(account).await? > nonce)
    }

    /// `System::Account` of `account` in the best block (None: no account).
    async fn account_info(&self, account: &AccountId) -> Result<Option<AccountInfo>, ChainError> {
        let mut key = twox_128(b"System").to_vec();
        key.extend(twox_128(b"Account"));
        key.extend(blake2_128(account.as_ref()));
        key.extend(account.0);
        let bytes = again_after_drop(|| self.rpc.state_get_storage(&key, None))
            .await
            .map_err(|e| ChainError::rpc("cannot read System::Account", e))?;
        bytes
            .map(|bytes| {
                AccountInfo::decode(&mut &bytes[..])
                    .map_err(|e| ChainError::decode("System::Account", e))
            })
            .transpose()
    }

    /// Runs `message` on `contract` as `origin` against the best block,
    /// without a transaction. Contract refusals come back as errors.
    pub async fn dry_run<T: Decode>(
        &self,
        origin: &AccountId,
        contract: &AccountId,
        message: &Message<T>,
    ) -> Result<DryRun<T>, ChainError> {
        self.dry_run_at(origin, contract, message, None).await
    }

    /// The hash of the latest finalized block.
    pub async fn finalized_head(&self) -> Result<[u8; 32], ChainError> {
        again_after_drop(|| self.rpc.chain_get_finalized_head())
            .await
            .map(|hash| hash.0)
            .map_err(|e| ChainError::rpc("cannot read the finalized head", e))
    }

    /// [`dry_run`](Self::dry_run) against the state of block `at` (the best
    /// block when `None`), e.g. the [`finalized_head`](Self::finalized_head).
    pub async fn dry_run_at<T: Decode>(
        &self,
        origin: &AccountId,
        contract: &AccountId,
        message: &Message<T>,
        at: Option<[u8; 32]>,
    ) -> Result<DryRun<T>, ChainError> {
        let what = || format!("dry run of {}", message.name());
        let request = call_request(origin, contract, 0, None, None, message.input());
        let bytes = again_after_drop(|| {
            self.rpc
                .state_call("ContractsApi_call", Some(&request), at.map(Into::into))
        })
        .await
        .map_err(|e| ChainError::rpc(what(), e))?;
        let result = ContractResult::<ExecReturnValue>::decode(&bytes)?;
        let returned = match result.result {
            Ok(returned) => returned,
            Err(error) => {
                return Err(ChainError::Dispatch {
                    what: what(),
                    error: self.describe_dispatch_error(&error).await,
                    debug_message: result.debug_message,
                })
            }
        };
        let value =
            message.decode_return(&returned.data, returned.reverted(), &result.debug_message)?;
        Ok(DryRun {
            value,
            gas_consumed: result.gas_consumed,
            gas_required: result.gas_required,
            storage_deposit: result.storage_deposit,
            debug_message: result.debug_message,
        })
    }

    /// Dry-runs `message`, and if the contract accepts it, submits it as a
    /// `Contracts::call` extrinsic signed by `signer` and waits until it is
    /// finalized. A refusal in the dry run is returned without submitting.
    pub async fn submit<T: Decode>(
        &self,
        signer: &Keypair,
        contract: &AccountId,
        message: &Message<T>,
    ) -> Result<Submitted<T>, ChainError> {
        // Transactions ahead in the same block can make the call dearer than
        // its dry run: a call that ran out of gas or deposit limit changed
        // nothing, so measure again and retry once.
        match self.submit_once(signer, contract, message).await {
            Err(ChainError::ExtrinsicFailed { error, .. })
                if error.starts_with("Contracts::OutOfGas")
                    || error.starts_with("Contracts::StorageDepositLimitExhausted") =>
            {
                self.submit_once(signer, contract, message).await
            }
            other => other,
        }
    }

    async fn submit_once<T: Decode>(
        &self,
        signer: &Keypair,
        contract: &AccountId,
        message: &Message<T>,
    ) -> Result<Submitted<T>, ChainError> {
        let dry = self.dry_run(&account_of(signer), contract, message).await?;
        let gas_limit = dry.gas_required.with_margin(GAS_MARGIN_PERCENT);
        let deposit_limit = with_margin(dry.storage_deposit.charge());
        let call = subxt::dynamic::tx(
            "Contracts",
            "call",
            (
                MultiAddress::<AccountId32, ()>::Id(AccountId32(contract.0)),
                0u128,
                weight_value(gas_limit),
                Some(deposit_limit),
                message.input().to_vec(),
            ),
        );
        let included = self.submit_extrinsic(signer, &call, message.name()).await?;
        let events = contract_events(contract, included.events.iter())?;
        let DryRun {
            value,
            gas_consumed,
            gas_required,
            storage_deposit,
            debug_message,
        } = dry;
        Ok(Submitted {
            value,
            events,
            dry_run: DryRun {
                value: (),
                gas_consumed,
                gas_required,
                storage_deposit,
                debug_message,
            },
            gas_limit,
            included,
        })
    }

    /// Signs `call` with `signer`'s next local nonce, submits it and waits
    /// until it is finalized. Fails if the pool rejects it, if it is not
    /// finalized in time, or if it failed in its block (`System::ExtrinsicFailed`).
    pub async fn submit_extrinsic<C: Payload>(
        &self,
        signer: &Keypair,
        call: &C,
        what: &str,
    ) -> Result<Included, ChainError> {
        // One retry: another user of the same key may have taken our nonce.
        match self.try_submit(signer, call, what).await {
            Err(ChainError::Rejected { reason, .. }) if is_nonce_problem(&reason) => {
                self.try_submit(signer, call, what).await
            }
            other => other,
        }
    }

    async fn try_submit<C: Payload>(
        &self,
        signer: &Keypair,
        call: &C,
        what: &str,
    ) -> Result<Included, ChainError> {
        let account = account_of(signer);
        let rejected = |reason: String| ChainError::Rejected {
            what: what.into(),
            reason,
        };

        let nonce_guard = self.nonces.lock(&account).await;
        let nonce = match nonce_guard.cached() {
            Some(nonce) => nonce,
            None => self.account_next_index(&account).await?,
        };
        let at = self
            .api
            .at_current_block()
            .await
            .map_err(|e| ChainError::rpc(format!("cannot prepare {what}"), e))?;
        let params = DefaultExtrinsicParamsBuilder::<ChainConfig>::new()
            .nonce(nonce)
            .mortal_from_unchecked(MORTALITY_BLOCKS, at.block_number(), at.block_hash())
            .build();
        let tx = at
            .tx()
            .create_signable_offline(call, params)
            .and_then(|mut signable| signable.sign(signer))
            .map_err(|e| ChainError::rpc(format!("cannot build {what}"), e))?;
        let mut progress = tx
            .submit_and_watch()
            .await
            .map_err(|e| rejected(pool_refusal(&e)))?;

        // Keep the nonce locked until the pool has accepted (or refused) it.
        let deadline = tokio::time::Instant::now() + self.finality_timeout;
        let mut nonce_guard = Some(nonce_guard);
        let in_block = loop {
            let status = tokio::time::timeout_at(deadline, progress.next()).await;
            let failure = match status {
                Err(_) => ChainError::Timeout {
                    what: what.into(),
                    seconds: self.finality_timeout.as_secs(),
                },
                Ok(None) => rejected("the node closed the transaction status stream".into()),
                Ok(Some(Err(e))) => rejected(e.to_string()),
                Ok(Some(Ok(TransactionStatus::Invalid { message })))
                | Ok(Some(Ok(TransactionStatus::Dropped { message })))
                | Ok(Some(Ok(TransactionStatus::Error { message }))) => rejected(message),
                Ok(Some(Ok(other))) => {
                    if let Some(guard) = nonce_guard.take() {
                        guard.commit(nonce);
                    }
                    if let TransactionStatus::InFinalizedBlock(in_block) = other {
                        break in_block;
                    }
                    continue;
                }
            };
            // The nonce may or may not have been used: make the next
            // submission ask the node.
            match nonce_guard.take() {
                Some(guard) => drop(guard),
                None => drop(self.nonces.lock(&account).await),
            }
            return Err(failure);
        };

        let block_hash = in_block.block_hash();
        let extrinsic_hash = in_block.extrinsic_hash();
        let block = in_block
            .at()
            .await
            .map_err(|e| ChainError::rpc(format!("cannot open the block of {what}"), e))?;
        let extrinsics = block
            .extrinsics()
            .fetch()
            .await
            .map_err(|e| ChainError::rpc(format!("cannot fetch the block of {what}"), e))?;
        let mut index = None;
        for (i, ext) in extrinsics.iter().enumerate() {
            let ext = ext.map_err(|e| ChainError::decode("an extrinsic", e))?;
            if ext.hash() == extrinsic_hash {
                index = Some(i as u32);
                break;
            }
        }
        let extrinsic_index = index.ok_or_else(|| {
            ChainError::rpc(
                format!("cannot find {what} in its block"),
                format!("{block_hash:?}"),
            )
        })?;
        let all = block
            .events()
            .fetch()
            .await
            .map_err(|e| ChainError::rpc(format!("cannot fetch the events of {what}"), e))?;
        let mut included = Included {
            block_number: block.block_number(),
            block_hash: block_hash.0,
            extrinsic_hash: extrinsic_hash.0,
            extrinsic_index,
            events: Vec::new(),
            weight: Weight::default(),
            fee: 0,
        };
        for event in all.iter() {
            let event = event.map_err(|e| ChainError::decode("an event", e))?;
            if event.phase() != Phase::ApplyExtrinsic(extrinsic_index) {
                continue;
            }
            let raw = RawEvent::from_subxt(&event);
            match (raw.pallet.as_str(), raw.name.as_str()) {
                ("System", "ExtrinsicFailed") => {
                    let error = take_dispatch_error(&mut &raw.fields[..])?;
                    return Err(ChainError::ExtrinsicFailed {
                        what: what.into(),
                        block_number: included.block_number,
                        error: describe_dispatch_error(error, Some(block.metadata_ref())),
                    });
                }
                ("System", "ExtrinsicSuccess") => {
                    included.weight = Weight::decode(&mut &raw.fields[..]).unwrap_or_default();
                }
                ("TransactionPayment", "TransactionFeePaid") => {
                    included.fee = <([u8; 32], Balance)>::decode(&mut &raw.fields[..])
                        .map(|(_, fee)| fee)
                        .unwrap_or(0);
                }
                _ => {}
            }
            included.events.push(raw);
        }
        Ok(included)
    }

    /// A readable form of `DispatchError` bytes, naming module errors.
    pub(crate) async fn describe_dispatch_error(&self, error: &[u8]) -> String {
        let at = self.api.at_current_block().await.ok();
        describe_dispatch_error(error, at.as_ref().map(|a| a.metadata_ref()))
    }
}

/// `value` plus [`DEPOSIT_MARGIN_PERCENT`].
pub(crate) fn with_margin(value: Balance) -> Balance {
    value.saturating_add(
        value / 100 * DEPOSIT_MARGIN_PERCENT + (value % 100) * DEPOSIT_MARGIN_PERCENT / 100,
    )
}

/// A `Weight` as the dynamic transaction encoder wants it.
pub(crate) fn weight_value(weight: Weight) -> Value {
    Value::named_composite([
        ("ref_time", Value::u128(weight.ref_time.into())),
        ("proof_size", Value::u128(weight.proof_size.into())),
    ])
}

/// The pool's reason for refusing a transaction. The node puts it in the
/// JSON-RPC error's `data` ("Transaction is outdated"), which the error's
/// `Display` leaves out.
fn pool_refusal(error: &ExtrinsicError) -> String {
    if let ExtrinsicError::ErrorSubmittingTransaction(BackendError::Rpc(RpcError::ClientError(
        subxt::rpcs::Error::User(user),
    ))) = error
    {
        return match &user.data {
            Some(data) => format!("{}: {}", user.message, data.get().trim_matches('"')),
            None => user.message.clone(),
        };
    }
    error.to_string()
}

fn is_nonce_problem(reason: &str) -> bool {
    let reason = reason.to_lowercase();
    [
        "outdated",
        "stale",
        "priority is too low",
        "already imported",
    ]
    .iter()
    .any(|s| reason.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_url_that_can_never_work_is_refused_at_once_and_not_retried() {
        for (url, says) in [
            ("http://127.0.0.1:9944", "use ws://"),
            ("127.0.0.1:9944", "not a chain node's WebSocket URL"),
            ("ftp://x", "unknown scheme"),
        ] {
            let err = ChainClient::connect(url).await.unwrap_err();
            assert!(matches!(err, ChainError::InvalidUrl { .. }), "{url}: {err}");
            assert!(!err.is_transport(), "{url}");
            assert!(err.to_string().contains(says), "{url}: {err}");
        }
        check_ws_url("ws://127.0.0.1:9944").unwrap();
        check_ws_url("wss://rpc.example.org/hydrogen").unwrap();
    }

    #[test]
    fn accounts_parse_from_hex_and_ss58() {
        let alice = account_of(&keypair_from_suri("//Alice").unwrap());
        assert_eq!(
            hex::encode(alice),
            "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"
        );
        assert_eq!(
            ss58(&alice),
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        );
        assert_eq!(parse_account(&ss58(&alice)).unwrap(), alice);
        assert_eq!(
            parse_account(&format!("0x{}", hex::encode(alice))).unwrap(),
            alice
        );
        assert!(parse_account("0x1234").is_err());
        assert!(keypair_from_suri("not a uri//").is_err());
    }

    #[test]
    fn deposit_margin() {
        assert_eq!(with_margin(1000), 1100);
        assert_eq!(with_margin(0), 0);
        assert_eq!(with_margin(u128::MAX), u128::MAX);
    }
}
