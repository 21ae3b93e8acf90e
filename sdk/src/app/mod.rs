//! The app-facing API: pay for a Stable Diffusion task and get its images.
//!
//! [`Client::generate`] does the whole round trip: it escrows the fee with
//! `create_task`, uploads the arguments to the relay, follows the task on
//! chain until it settles, downloads the images and checks each one's pHash
//! against the result the nodes agreed on. When the network does not deliver
//! (the nodes miss their deadlines, the upload never happens, the task sits
//! in the queue for too long) it cancels the task so the escrow comes back,
//! and says why in the error. A restart of the chain node only pauses it (see
//! [`ChainClient::connect`]).
//!
//! The steps are public too ([`Client::submit`], [`Client::wait`],
//! [`Client::download`], [`Client::cancel`]), and [`Client::updates`] streams
//! a task's events for a progress display.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hydrogen_sdk::app::AppError> {
//! use hydrogen_sdk::app::{Client, GenerateOptions};
//! use hydrogen_sdk::chain::{keypair_from_suri, parse_account};
//! use hydrogen_sdk::task::TaskArgs;
//!
//! let signer = keypair_from_suri("//HydrogenApp").expect("a valid key URI");
//! let client = Client::connect(
//!     "ws://127.0.0.1:9944",
//!     "http://127.0.0.1:8700",
//!     parse_account("5C...").expect("the contract's address"),
//!     signer,
//! ).await?;
//! let mut args = TaskArgs::new("runwayml/stable-diffusion-v1-5", "a red fox in snow");
//! args.task_config.num_images = 1;
//! let done = client.generate(&args, GenerateOptions::default()).await?;
//! for (i, png) in done.images.iter().enumerate() {
//!     std::fs::write(format!("fox-{i}.png"), png).expect("writable directory");
//! }
//! # Ok(()) }
//! ```

mod error;
mod recover;
mod updates;

pub use error::AppError;
pub use updates::{task_id_of, TaskUpdate};

use crate::chain::{account_of, ChainError, Connection, Hydrogen, Keypair};
use crate::phash::check_png;
use crate::relay::{RelayClient, RelayError};
use crate::task::TaskArgs;
use crate::types::{
    AbortReason, AccountId, Balance, Error as ContractError, Event, TaskId, TaskInfo, TaskStatus,
    TaskType, PHASH_BYTES,
};
use futures::{Stream, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How [`Client::generate`] pays and how long it waits.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// The fee to escrow; `None` pays the contract's minimum fee per image.
    pub fee: Option<Balance>,
    /// Cancel (full refund) when no nodes picked the task up within this long.
    pub queue_timeout: Duration,
    /// Keep retrying the argument upload while the relay is unreachable or
    /// behind the chain for this long, then cancel.
    pub upload_timeout: Duration,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            fee: None,
            queue_timeout: Duration::from_secs(10 * 60),
            upload_timeout: Duration::from_secs(60),
        }
    }
}

/// A task's verified images.
#[derive(Debug, Clone)]
pub struct Generated {
    pub task_id: TaskId,
    /// PNG bytes, in image order, as the relay served them.
    pub images: Vec<Vec<u8>>,
    /// The accepted result: 8 pHash bytes per image; each image hashes to its share.
    pub result: Vec<u8>,
    /// The three nodes that ran the task.
    pub nodes: Vec<AccountId>,
    /// The node that uploaded the images.
    pub uploader: AccountId,
    /// What was escrowed.
    pub fee: Balance,
}

/// A created task and the block that created it, where following its
/// events starts. Store both to resume waiting after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingTask {
    pub task_id: TaskId,
    pub created_in: u64,
}

/// How a task ended, as [`Client::wait`] saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The images are on the relay.
    Completed(TaskInfo),
    /// The task ended without images; `refunded` came back to the creator.
    Aborted {
        task: TaskInfo,
        reason: AbortReason,
        refunded: Balance,
        /// Whether any selected node committed a result (seen in the
        /// task's events: all commitments in, a reveal, a miss or forfeit).
        someone_committed: bool,
    },
}

/// A connection to the network as one app account.
#[derive(Clone)]
pub struct Client {
    /// Reconnects after a transport failure, under the SDK's one policy.
    chain: Arc<Connection>,
    relay: RelayClient,
    signer: Keypair,
    /// How often [`Client::wait`] re-reads the task besides following events.
    poll: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("chain", &self.chain.url())
            .field("contract", &crate::chain::ss58(&self.chain.contract()))
            .field("account", &crate::chain::ss58(&self.account()))
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to a chain node and a relay for the contract at `contract`.
    pub async fn connect(
        rpc_url: &str,
        relay_url: &str,
        contract: AccountId,
        signer: Keypair,
    ) -> Result<Self, AppError> {
        Ok(Client {
            chain: Arc::new(Connection::connect(rpc_url, contract).await?),
            relay: RelayClient::new(relay_url, signer.clone())?,
            signer,
            poll: Duration::from_secs(2),
        })
    }

    /// How often [`Client::wait`] re-reads the task besides following events.
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    pub fn account(&self) -> AccountId {
        account_of(&self.signer)
    }

    /// The contract handle, for anything the app API does not cover
    /// (connecting again if the last call lost the connection).
    pub async fn hydrogen(&self) -> Result<Hydrogen, AppError> {
        Ok(self.chain.get().await?)
    }

    /// The app's connection to the chain.
    pub fn connection(&self) -> &Connection {
        &self.chain
    }

    pub fn relay(&self) -> &RelayClient {
        &self.relay
    }

    /// The app's token balance.
    pub async fn balance(&self) -> Result<Balance, AppError> {
        let me = self.account();
        Ok(self
            .chain
            .call(|h| async move { h.balance_of(me).await })
            .await?)
    }

    /// The fee [`GenerateOptions::fee`] `None` pays for `args`: the
    /// contract's minimum fee for each image.
    pub async fn default_fee(&self, args: &TaskArgs) -> Result<Balance, AppError> {
        let params = self.chain.call(|h| async move { h.params().await }).await?;
        Ok(params.min_fee.saturating_mul(u128::from(args.num_images())))
    }

    /// Creates the task, uploads its arguments and waits for the verified
    /// images. Cancels the task for a refund when it cannot finish: see
    /// [`GenerateOptions`] and the module docs.
    pub async fn generate(
        &self,
        args: &TaskArgs,
        options: GenerateOptions,
    ) -> Result<Generated, AppError> {
        let fee = match options.fee {
            Some(fee) => fee,
            None => self.default_fee(args).await?,
        };
        let pending = self.submit(args, fee, options.upload_timeout).await?;
        let task_id = pending.task_id;
        match self.wait(&pending, options.queue_timeout).await? {
            Settled::Completed(task) => self.download(&task).await,
            Settled::Aborted {
                task,
                reason,
                refunded,
                someone_committed,
            } => Err(AppError::Aborted {
                task_id,
                reason,
                refunded,
                nodes: task.nodes,
                someone_committed,
            }),
        }
    }

    /// Escrows `fee` for `args` and uploads the arguments. If the upload cannot be done (the relay refuses it, or stays
    /// unreachable for `upload_timeout`), the task is cancelled while still
    /// queued, so the fee comes back, and the upload's error is returned.
    ///
    /// The two steps are public too: [`Client::create`], then
    /// [`Client::upload`]; an app that persists its tasks records the
    /// [`PendingTask`] between them.
    pub async fn submit(
        &self,
        args: &TaskArgs,
        fee: Balance,
        upload_timeout: Duration,
    ) -> Result<PendingTask, AppError> {
        let pending = self.create(args, fee).await?;
        self.upload(pending.task_id, args, upload_timeout).await?;
        Ok(pending)
    }

    /// Validates `args` and escrows `fee` for them with `create_task`: the
    /// task is queued on chain, and nodes start it only once its arguments
    /// are on the relay ([`Client::upload`]).
    pub async fn create(&self, args: &TaskArgs, fee: Balance) -> Result<PendingTask, AppError> {
        args.validate()?;
        let num_images = u8::try_from(args.num_images()).map_err(|_| {
            AppError::Task(crate::task::TaskArgsError::Invalid {
                path: "task_config.num_images".into(),
                message: "too many images".into(),
            })
        })?;
        let created = self
            .chain
            .call(|h| async move {
                h.create_task(
                    &self.signer,
                    TaskType::StableDiffusion,
                    args.args_hash(),
                    args.min_vram_gb(),
                    num_images,
                    fee,
                )
                .await
            })
            .await?;
        Ok(PendingTask {
            task_id: created.value,
            created_in: created.included.block_number,
        })
    }

    /// Uploads a created task's arguments (their canonical bytes), retrying
    /// while the relay is unreachable or behind for `upload_timeout`. Arguments
    /// the relay already holds count as uploaded (the relay checked them
    /// against the task's `args_hash`), so resuming after a crash may call
    /// this again. When the upload cannot be done the task is cancelled
    /// while still queued, so the fee comes back
    /// ([`AppError::UploadFailed`]).
    pub async fn upload(
        &self,
        task_id: TaskId,
        args: &TaskArgs,
        upload_timeout: Duration,
    ) -> Result<(), AppError> {
        let bytes = args.to_canonical_json();
        match self.upload_args(task_id, &bytes, upload_timeout).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_already_uploaded() => Ok(()),
            Err(error) => {
                // Best effort: the task may have started in the meantime, and
                // then the nodes' deadline refunds it instead.
                let cancelled = self.cancel_call(task_id).await.map_err(|e| e.to_string());
                if let Err(cancel) = &cancelled {
                    tracing::warn!(task_id, %cancel, "could not cancel the task after a failed upload");
                }
                Err(AppError::UploadFailed {
                    task_id,
                    error,
                    cancelled,
                })
            }
        }
    }

    /// Uploads task arguments, retrying while the relay is unreachable or has
    /// not seen the task yet.
    async fn upload_args(
        &self,
        task_id: TaskId,
        bytes: &[u8],
        timeout: Duration,
    ) -> Result<(), RelayError> {
        let until = Instant::now() + timeout;
        let mut pause = Duration::from_millis(200);
        loop {
            match self.relay.upload_args(task_id, bytes).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retryable() && Instant::now() + pause < until => {
                    tracing::debug!(task_id, error = %e, "argument upload will be retried");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Follows the task until it completes or aborts. Cancels it when it
    /// stays queued for `queue_timeout`, and pokes the contract with
    /// `cancel` once a deadline has passed so a silent network cannot hold
    /// the escrow (the contract refuses until the deadline really passed).
    pub async fn wait(
        &self,
        pending: &PendingTask,
        queue_timeout: Duration,
    ) -> Result<Settled, AppError> {
        let task_id = pending.task_id;
        let started = Instant::now();
        let mut updates = Box::pin(self.updates(pending, None).await?);
        // Where to resume after the event stream breaks: every event of a
        // block arrives together, so the block after the last update.
        let mut resume_from = pending.created_in;
        let mut refunded = 0;
        let mut someone_committed = false;
        loop {
            let task = self.task(task_id).await?;
            match task.status {
                TaskStatus::Completed => return Ok(Settled::Completed(task)),
                TaskStatus::Aborted(reason) => {
                    // The Refunded event may sit in a block the stream has
                    // not reached yet, so read on briefly. Nodes still owed a
                    // verdict keep part of the escrow until their deadline;
                    // that part is refunded later and not counted here.
                    if refunded == 0 {
                        refunded = self.refund_of(&mut updates).await;
                    }
                    return Ok(Settled::Aborted {
                        task,
                        reason,
                        refunded,
                        someone_committed,
                    });
                }
                // The task may start between the read and the cancel; the
                // contract then refuses until the deadline, and we wait on.
                TaskStatus::Queued if started.elapsed() > queue_timeout => {
                    self.cancel_if_due(task_id, task.status).await?
                }
                TaskStatus::Running | TaskStatus::Succeeded if task.deadline < now_ms() => {
                    self.cancel_if_due(task_id, task.status).await?
                }
                _ => {}
            }
            match tokio::time::timeout(self.poll, updates.next()).await {
                Ok(Some(Ok(update))) => {
                    resume_from = update.block_number + 1;
                    match update.event {
                        Event::Refunded { amount, .. } => refunded += amount,
                        Event::CommitmentsReady { .. }
                        | Event::ResultRevealed { .. }
                        | Event::NodeMissed { .. }
                        | Event::StakeForfeited { .. } => someone_committed = true,
                        _ => {}
                    }
                }
                Err(_) => {}
                // The event stream broke (the chain node was down longer than
                // the client's reconnect window, or another failure): follow
                // anew from where the task is now; the status read above
                // covers the gap.
                Ok(Some(Err(e))) => {
                    tracing::warn!(task_id, error = %e, "event stream failed; resubscribing");
                    let _ = self.chain.check::<()>(Err(e)).await;
                    tokio::time::sleep(self.poll).await;
                    updates = Box::pin(self.updates(pending, Some(resume_from)).await?);
                }
                Ok(None) => {
                    tokio::time::sleep(self.poll).await;
                    updates = Box::pin(self.updates(pending, Some(resume_from)).await?);
                }
            }
        }
    }

    /// [`Client::cancel`] of a task last seen in `seen`, where "the deadline
    /// has not passed" (the chain's clock lags the wall clock by up to a
    /// block) means "not yet", and a refusal after the task moved on (a
    /// reveal or the upload settled it in the block before the cancel's)
    /// means "read the status again".
    async fn cancel_if_due(&self, task_id: TaskId, seen: TaskStatus) -> Result<(), AppError> {
        match self.cancel_call(task_id).await {
            Ok(_)
            | Err(ChainError::Contract {
                error: ContractError::DeadlineNotReached,
                ..
            }) => Ok(()),
            Err(e) => match self.task(task_id).await {
                Ok(task) if task.status != seen => Ok(()),
                _ => Err(e.into()),
            },
        }
    }

    /// Waits a little for the `Refunded` event of an aborted task.
    async fn refund_of(
        &self,
        updates: &mut (impl Stream<Item = Result<TaskUpdate, ChainError>> + Unpin),
    ) -> Balance {
        let drain = async {
            while let Some(Ok(update)) = updates.next().await {
                if let Event::Refunded { amount, .. } = update.event {
                    return amount;
                }
            }
            0
        };
        tokio::time::timeout(self.poll * 3, drain)
            .await
            .unwrap_or(0)
    }

    /// Cancels a task: a queued one at once, a started one only past its
    /// deadline (the contract then judges the silent nodes and refunds).
    pub async fn cancel(&self, task_id: TaskId) -> Result<(), AppError> {
        self.cancel_call(task_id).await?;
        Ok(())
    }

    async fn cancel_call(&self, task_id: TaskId) -> Result<(), ChainError> {
        let signer = &self.signer;
        self.chain
            .call(|h| async move { h.cancel(signer, task_id).await.map(|_| ()) })
            .await
    }

    /// The task as the contract reports it now.
    pub async fn task(&self, task_id: TaskId) -> Result<TaskInfo, AppError> {
        self.chain
            .task(task_id)
            .await?
            .ok_or(AppError::NoSuchTask(task_id))
    }

    /// Downloads a completed task's images and checks that each one's pHash
    /// equals its share of the accepted result.
    pub async fn download(&self, task: &TaskInfo) -> Result<Generated, AppError> {
        let (Some(result), Some(uploader)) = (task.result.clone(), task.uploader) else {
            return Err(AppError::NotCompleted {
                task_id: task.id,
                status: task.status,
            });
        };
        let images = self.relay.download_images(task.id).await?;
        verify_images(task.id, &images, &result)?;
        Ok(Generated {
            task_id: task.id,
            images,
            result,
            nodes: task.nodes.clone(),
            uploader,
            fee: task.fee,
        })
    }

    /// The task's events in finalized blocks, from the block it was created
    /// in (or from block `from`); the stream does not end by itself.
    pub async fn updates(
        &self,
        pending: &PendingTask,
        from: Option<u64>,
    ) -> Result<impl Stream<Item = Result<TaskUpdate, ChainError>> + Send + 'static, AppError> {
        let from = from.unwrap_or(pending.created_in);
        let blocks = self
            .chain
            .call(|h| async move { h.event_stream(Some(from)).await })
            .await?;
        Ok(updates::of_task(pending.task_id, blocks))
    }
}

/// Checks that `images` decode and hash to `result`, image by image.
pub fn verify_images(task_id: TaskId, images: &[Vec<u8>], result: &[u8]) -> Result<(), AppError> {
    let expected = result.len() / PHASH_BYTES;
    if images.len() != expected {
        return Err(AppError::WrongImages {
            task_id,
            detail: format!(
                "the relay served {} images, the result has {expected}",
                images.len()
            ),
        });
    }
    for (i, (png, want)) in images
        .iter()
        .zip(result.chunks_exact(PHASH_BYTES))
        .enumerate()
    {
        let want = want.try_into().unwrap_or_default();
        check_png(png, i, want).map_err(|detail| AppError::WrongImages { task_id, detail })?;
    }
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl From<RelayError> for AppError {
    fn from(e: RelayError) -> Self {
        AppError::Relay(e)
    }
}
