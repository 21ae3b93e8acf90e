//! Moves one task through its states. Every step is idempotent: it reads
//! the record, acts, and writes the next state; after a crash the same step
//! runs again and the chain's own answers (`AlreadyCommitted`,
//! `AlreadyRevealed`, the task's status) tell whether its call already
//! landed, so each call lands once.

use crate::crash;
use crate::engine::{Engine, LocalFault, TaskModels};
use crate::relay::Relay;
use crate::sources::ModelSources;
use crate::status::{CurrentTask, Status};
use crate::store::Store;
use crate::task::{PendingCall, StoredOutcome, TaskRecord, TaskState};
use anyhow::{Context as _, Result};
use hydrogen_sdk::chain::Connection;
use hydrogen_sdk::chain::{ChainError, Keypair};
use hydrogen_sdk::task::{acceptance, TaskArgs};
use hydrogen_sdk::types::{
    commitment, outcomes_agree, AccountId, Error as ContractError, Hash, Outcome, TaskStatus,
};
use std::path::PathBuf;
use std::sync::Arc;

/// Stack of the thread a generation runs on.
const ENGINE_STACK: usize = 256 << 20;

/// What a task needs from the daemon.
pub struct Context {
    pub chain: Connection,
    pub relay: Box<dyn Relay>,
    pub engine: Arc<dyn Engine>,
    /// Where the models a task names are found or fetched.
    pub sources: ModelSources,
    pub store: Store,
    pub signer: Keypair,
    pub me: AccountId,
    /// `data_dir/tasks`: one folder of PNGs per task until it is settled.
    pub files: PathBuf,
    pub status: Status,
    /// Tasks whose model family needs more GPU memory are declined.
    pub vram_gb: u32,
    /// Bytes one generation may take; a task estimated above it is declined.
    pub memory_limit: u64,
    /// Show a progress bar (stderr is a terminal).
    pub progress_bar: bool,
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A new state was written; step again.
    Advanced,
    /// Nothing to do until something outside changes.
    Wait(&'static str),
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn random_hash() -> Result<Hash> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).context("no randomness from the operating system")?;
    Ok(bytes)
}

fn refused(result: &Result<impl Sized, ChainError>) -> Option<ContractError> {
    result.as_ref().err().and_then(ChainError::contract_error)
}

impl Context {
    fn task_dir(&self, id: u64) -> PathBuf {
        self.files.join(id.to_string())
    }

    /// Writes `state` (with whatever else `rec` holds), then passes the crash point of that state.
    fn enter(&self, rec: &mut TaskRecord, state: TaskState) -> Result<Step> {
        rec.state = state;
        rec.pending = None;
        self.store.put_task(rec)?;
        tracing::info!(task = rec.id, state = rec.state.name(), "task state");
        if let TaskState::Aborted(reason) = &rec.state {
            tracing::warn!(task = rec.id, %reason, "task given up; this node stays silent");
        }
        if rec.state.is_terminal() {
            let _ = std::fs::remove_dir_all(self.task_dir(rec.id));
        }
        self.show(rec, None);
        crash::point(rec.state.name());
        Ok(Step::Advanced)
    }

    fn abort(&self, rec: &mut TaskRecord, reason: impl Into<String>) -> Result<Step> {
        self.enter(rec, TaskState::Aborted(reason.into()))
    }

    fn show(&self, rec: &TaskRecord, waiting_for: Option<&str>) {
        self.status.update(|s| {
            s.current_task = (!rec.state.is_terminal()).then(|| CurrentTask {
                id: rec.id,
                state: rec.state.name().into(),
                waiting_for: waiting_for.map(str::to_owned),
                ..s.current_task.clone().unwrap_or_default()
            });
        });
    }

    fn set_pending(&self, rec: &mut TaskRecord, call: PendingCall) -> Result<()> {
        rec.pending = Some(call);
        self.store.put_task(rec)?;
        Ok(())
    }

    /// Runs one step of `rec`.
    pub async fn step(&self, rec: &mut TaskRecord) -> Result<Step> {
        let step = match rec.state {
            TaskState::Selected => self.fetch_arguments(rec).await,
            TaskState::ArgumentsFetched => self.generate(rec).await,
            TaskState::Generated => self.commit(rec).await,
            TaskState::Committed => self.reveal(rec).await,
            TaskState::Revealed => self.after_reveal(rec).await,
            TaskState::ImagesUploaded => self.confirm_upload(rec).await,
            TaskState::Settled | TaskState::Aborted(_) => {
                Ok(Step::Wait("nothing: the task is over"))
            }
        }?;
        if let Step::Wait(why) = step {
            self.show(rec, Some(why));
        }
        Ok(step)
    }

    /// Steps `rec` until it waits; errors are the caller's to log and retry.
    pub async fn drive(&self, rec: &mut TaskRecord) -> Result<Step> {
        loop {
            match self.step(rec).await? {
                Step::Advanced if !rec.state.is_terminal() => continue,
                other => return Ok(other),
            }
        }
    }

    async fn fetch_arguments(&self, rec: &mut TaskRecord) -> Result<Step> {
        let id = rec.id;
        let task = self.chain.task(id).await?;
        let Some(task) = task else {
            return self.abort(rec, "the chain has no such task");
        };
        if task.status != TaskStatus::Running {
            return self.abort(
                rec,
                format!("task is {:?} before this node committed", task.status),
            );
        }
        if !task.nodes.contains(&self.me) {
            return self.abort(rec, "this node is not among the task's nodes");
        }
        rec.deadline = task.deadline;
        if now_ms() > task.deadline {
            return self.abort(
                rec,
                "the commit deadline passed before the arguments arrived",
            );
        }
        let bytes = match self.relay.fetch_args(id).await {
            Ok(bytes) => bytes,
            Err(e) if e.is_retryable() => {
                tracing::debug!(task = id, error = %e, "arguments not available yet");
                return Ok(Step::Wait("the arguments on the relay"));
            }
            Err(e) => return Err(e).context("cannot fetch the task arguments"),
        };
        let text = String::from_utf8(bytes.clone()).ok();
        let parsed = match acceptance::accept(&task, &bytes) {
            Ok(args) => Ok(args),
            Err(e) if e.is_vote() => Err(e.to_string()),
            Err(e) => {
                // The relay checks the hash on upload, so this is the
                // relay's fault, not the task's: never a vote.
                tracing::warn!(task = id, error = %e, "the relay served the wrong arguments");
                return Ok(Step::Wait("arguments matching the on-chain hash"));
            }
        };
        rec.args = text;
        match parsed {
            Ok(_) => self.enter(rec, TaskState::ArgumentsFetched),
            Err(why) => {
                tracing::info!(task = id, %why, "invalid task arguments: voting InvalidArgs");
                rec.outcome = Some(StoredOutcome::InvalidArgs);
                rec.nonce = Some(hex::encode(random_hash()?));
                self.store.count(|c| c.tasks_run += 1)?;
                self.enter(rec, TaskState::Generated)
            }
        }
    }

    async fn generate(&self, rec: &mut TaskRecord) -> Result<Step> {
        if now_ms() > rec.deadline {
            return self.abort(rec, "the commit deadline passed before generation");
        }
        let args = TaskArgs::from_json(rec.args.as_deref().unwrap_or_default())
            .context("stored arguments no longer parse")?;
        if args.min_vram_gb() > self.vram_gb {
            let fault = format!(
                "{} needs {} GB of GPU memory, this node has {}",
                args.base_model.name(),
                args.min_vram_gb(),
                self.vram_gb
            );
            self.store.count(|c| c.local_faults += 1)?;
            return self.abort(rec, fault);
        }
        self.show(rec, Some("models"));
        let models = match self.task_models(&args).await {
            Ok(models) => models,
            Err(fault) => return self.local_fault(rec, fault),
        };
        if let Some(needed) = self.engine.memory_needed(&args, &models) {
            if needed > self.memory_limit {
                let c = &args.task_config;
                let fault = format!(
                    "{}×{} on {} needs about {} MB, this node allows {} MB (memory_limit_mb)",
                    c.image_width,
                    c.image_height,
                    args.base_model.name(),
                    needed >> 20,
                    self.memory_limit >> 20
                );
                return self.local_fault(rec, LocalFault::OutOfMemory(fault));
            }
        }
        if self.store.generating()? == Some(rec.id) {
            self.store.set_generating(None)?;
            return self.local_fault(
                rec,
                LocalFault::Engine(
                    "this node died while generating this task last time (killed for memory?); \
                     not trying it again"
                        .into(),
                ),
            );
        }
        self.store.set_generating(Some(rec.id))?;
        let engine = self.engine.clone();
        let status = self.status.clone();
        let (id, bar) = (rec.id, self.progress_bar);
        let started = std::time::Instant::now();
        // Burn's graph is deep in unoptimized builds: a thread of its own
        // with a large stack, so the runtime's 2 MiB threads never overflow.
        let (done, result) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("engine-task-{id}"))
            .stack_size(ENGINE_STACK)
            .spawn(move || {
                let total = args.task_config.steps as u64 * u64::from(args.num_images());
                let pb = bar.then(|| {
                    let pb = indicatif::ProgressBar::new(total);
                    pb.set_style(
                        indicatif::ProgressStyle::with_template(
                            "task {msg} [{bar:40}] {pos}/{len} steps, {eta} left",
                        )
                        .expect("a valid template")
                        .progress_chars("=> "),
                    );
                    pb.set_message(id.to_string());
                    pb
                });
                let result = engine.generate(&args, &models, &mut |p| {
                    crate::crash::point("generating");
                    if let Some(pb) = &pb {
                        pb.inc(1);
                    }
                    status.update(|s| {
                        if let Some(t) = s.current_task.as_mut() {
                            t.step = p.step + 1;
                            t.steps = p.steps;
                            t.image = p.image;
                            t.images = args.num_images();
                        }
                    });
                });
                if let Some(pb) = pb {
                    pb.finish_and_clear();
                }
                let _ = done.send(result);
            });
        if let Err(e) = spawned {
            self.store.set_generating(None)?;
            return self.local_fault(
                rec,
                LocalFault::Engine(format!("cannot start the engine thread: {e}")),
            );
        }
        let run = result.await;
        self.store.set_generating(None)?;
        let images = match run {
            Ok(Ok(images)) => images,
            Ok(Err(fault)) => return self.local_fault(rec, fault),
            Err(_) => {
                return self.local_fault(rec, LocalFault::Engine("the engine thread died".into()))
            }
        };
        let memory = self.engine.device_memory();
        self.status.update(|s| s.device_memory_bytes = memory);
        tracing::info!(
            task = rec.id,
            images = images.len(),
            seconds = started.elapsed().as_secs_f64(),
            device_memory_bytes = memory,
            "generated"
        );
        let dir = self.task_dir(rec.id);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let hashes = hydrogen_sdk::phash::phash_images(&images);
        for (i, image) in images.iter().enumerate() {
            let path = dir.join(format!("{i}.png"));
            let tmp = dir.join(format!("{i}.png.tmp"));
            image
                .save_with_format(&tmp, image::ImageFormat::Png)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
        }
        rec.outcome = Some(StoredOutcome::from(&Outcome::Images(hashes)));
        rec.nonce = Some(hex::encode(random_hash()?));
        rec.images = images.len() as u32;
        self.store.count(|c| c.tasks_run += 1)?;
        self.enter(rec, TaskState::Generated)
    }

    /// Finds or downloads every model `args` names. A model this node
    /// cannot have is its own fault (silence), never the task's.
    async fn task_models(&self, args: &TaskArgs) -> Result<TaskModels, LocalFault> {
        let unavailable =
            |model: &str, e: crate::sources::SourceError| LocalFault::ModelUnavailable {
                model: model.to_owned(),
                reason: e.to_string(),
            };
        let name = args.base_model.name();
        let base = self
            .sources
            .base_model(name, args.base_model.variant())
            .await
            .map_err(|e| unavailable(name, e))?;
        let lora = match &args.lora {
            Some(l) => Some(
                self.sources
                    .lora(&l.model, &l.weight_file_name)
                    .await
                    .map_err(|e| unavailable(&l.model, e))?,
            ),
            None => None,
        };
        let vae = match args.vae.as_str() {
            "" => None,
            vae => Some(
                self.sources
                    .vae(vae)
                    .await
                    .map_err(|e| unavailable(vae, e))?,
            ),
        };
        let textual_inversion = match args.textual_inversion.as_str() {
            "" => None,
            ti => Some(
                self.sources
                    .textual_inversion(ti, "")
                    .await
                    .map_err(|e| unavailable(ti, e))?,
            ),
        };
        Ok(TaskModels {
            base,
            lora,
            vae,
            textual_inversion,
        })
    }

    fn local_fault(&self, rec: &mut TaskRecord, fault: LocalFault) -> Result<Step> {
        tracing::error!(task = rec.id, %fault, "local fault: not reported on chain");
        self.store.count(|c| c.local_faults += 1)?;
        self.abort(rec, fault.to_string())
    }

    fn outcome_and_nonce(&self, rec: &TaskRecord) -> Result<(Outcome, Hash)> {
        let outcome = rec.outcome.as_ref().context("no stored outcome")?.outcome();
        let nonce = rec.nonce().context("no stored nonce")?;
        Ok((outcome, nonce))
    }

    async fn commit(&self, rec: &mut TaskRecord) -> Result<Step> {
        // Never sent, and too late to be accepted: no call at all. (A commit
        // that may have been sent before a crash is checked on chain below.)
        if rec.pending.is_none() && now_ms() > rec.deadline {
            return self.abort(rec, "the commit deadline passed before the commit was sent");
        }
        let (outcome, nonce) = self.outcome_and_nonce(rec)?;
        let hash = commitment(rec.id, &self.me, &outcome, &nonce);
        let outcome = outcome.clone();
        self.set_pending(rec, PendingCall::Commit)?;
        let (id, signer) = (rec.id, self.signer.clone());
        let result = self
            .chain
            .call(|h| async move { h.commit(&signer, id, hash).await })
            .await;
        match (refused(&result), result) {
            (_, Ok(_)) => crash::point("commit_sent"),
            (Some(ContractError::AlreadyCommitted), _) => {}
            (
                Some(
                    ContractError::DeadlinePassed
                    | ContractError::WrongTaskStatus
                    | ContractError::NotSelected
                    | ContractError::TaskNotFound,
                ),
                Err(e),
            ) => {
                // The task may have moved on after an earlier commit of ours
                // landed (a crash before it was recorded): a reveal's dry run
                // tells whether the contract holds our commitment.
                let me = self.me;
                let probe = self
                    .chain
                    .call(|h| async move {
                        h.dry_run(&me, &hydrogen_sdk::chain::msg::reveal(id, outcome, nonce))
                            .await
                    })
                    .await;
                if let Some(
                    ContractError::NotCommitted
                    | ContractError::NotSelected
                    | ContractError::TaskNotFound,
                ) = refused(&probe)
                {
                    return self.abort(rec, format!("cannot commit any more: {e}"));
                }
            }
            (_, Err(e)) => return Err(e).context("commit"),
        }
        self.enter(rec, TaskState::Committed)
    }

    async fn reveal(&self, rec: &mut TaskRecord) -> Result<Step> {
        let (outcome, nonce) = self.outcome_and_nonce(rec)?;
        let (id, signer) = (rec.id, self.signer.clone());
        // Two others may already have decided against this result (a
        // colluding pair, or our own fault). Revealing anyway is what keeps
        // pairs honest: a contradicting reveal opens an audit by three other
        // nodes, which slashes whoever it contradicts; silence would only
        // forfeit part of our stake and let the pair go.
        let contradicted = self.chain.task(id).await?.is_some_and(|t| {
            t.result
                .map(Outcome::Images)
                .is_some_and(|a| !outcomes_agree(&outcome, &a, t.distance_threshold))
        });
        if contradicted {
            tracing::warn!(
                task = id,
                "the decided result contradicts this node's: revealing opens an audit"
            );
        }
        // A dry run first, so a closed reveal window is not recorded as a pending call.
        let dry = self
            .chain
            .call(|h| {
                let (outcome, me) = (outcome.clone(), self.me);
                async move {
                    h.dry_run(&me, &hydrogen_sdk::chain::msg::reveal(id, outcome, nonce))
                        .await
                }
            })
            .await;
        match (refused(&dry), dry) {
            (Some(ContractError::RevealNotOpen), _) if now_ms() > rec.deadline => {
                // Past the commit deadline the chain decides only when a call
                // moves the task on (its clock is the last block's). `cancel`
                // does: with fewer than two commitments the task ends and
                // this node is released; with two it opens the reveal, and
                // this node must still reveal, so look again.
                let signer = self.signer.clone();
                let cancelled = self
                    .chain
                    .call(|h| async move { h.cancel(&signer, id).await })
                    .await;
                if let Err(e) = cancelled {
                    tracing::debug!(task = id, error = %e, "cannot move the task on yet");
                    return Ok(Step::Wait("the other commitments"));
                }
                let task = self.chain.task(id).await?.context("the task disappeared")?;
                return if task.status.is_final() {
                    self.enter(rec, TaskState::Settled)
                } else {
                    Ok(Step::Wait("the reveal to open"))
                };
            }
            (Some(ContractError::RevealNotOpen), _) => {
                return Ok(Step::Wait("the other commitments"))
            }
            (Some(ContractError::AlreadyRevealed), _) => {
                return self.enter(rec, TaskState::Revealed)
            }
            (Some(ContractError::DeadlinePassed), Err(e)) => {
                return self.abort(rec, format!("the reveal window closed: {e}"))
            }
            (_, Err(e)) => return Err(e).context("reveal (dry run)"),
            (_, Ok(_)) => {}
        }
        self.set_pending(rec, PendingCall::Reveal)?;
        let result = self
            .chain
            .call(|h| async move { h.reveal(&signer, id, outcome, nonce).await })
            .await;
        match (refused(&result), result) {
            (_, Ok(_)) => crash::point("reveal_sent"),
            (Some(ContractError::AlreadyRevealed), _) => {}
            (_, Err(e)) => return Err(e).context("reveal"),
        }
        self.enter(rec, TaskState::Revealed)
    }

    async fn after_reveal(&self, rec: &mut TaskRecord) -> Result<Step> {
        let id = rec.id;
        let task = self.chain.task(id).await?.context("the task disappeared")?;
        if task.status == TaskStatus::Succeeded
            && crash::withholds_upload(id, task.uploader == Some(self.me))
        {
            return Ok(Step::Wait("nothing: withholding the upload (test switch)"));
        }
        match task.status {
            TaskStatus::Succeeded if task.uploader == Some(self.me) => {
                let pngs = (0..rec.images)
                    .map(|i| std::fs::read(self.task_dir(id).join(format!("{i}.png"))))
                    .collect::<std::io::Result<Vec<_>>>()
                    .context("the task's images are gone from data_dir")?;
                match self.relay.upload_images(id, &pngs).await {
                    Ok(()) => crash::point("upload_sent"),
                    Err(e) if e.is_already_uploaded() => {}
                    Err(e) if e.is_retryable() => {
                        tracing::warn!(task = id, error = %e, "image upload failed; retrying");
                        return Ok(Step::Wait("the relay to take the images"));
                    }
                    Err(e) => return Err(e).context("image upload"),
                }
                self.enter(rec, TaskState::ImagesUploaded)
            }
            TaskStatus::Queued | TaskStatus::Running => Ok(Step::Wait("consensus")),
            TaskStatus::Succeeded => {
                // Keep the images: if the uploader misses its deadline, an
                // agreeing node uploads instead. Past that deadline anyone's
                // `cancel` makes the switch; the dry run refuses it before.
                if crate::membership::settle_if_due(&self.chain, &self.signer, id).await {
                    tracing::info!(
                        task = id,
                        "the uploader missed its deadline; moved the task on"
                    );
                }
                Ok(Step::Wait("the designated uploader"))
            }
            _ => self.enter(rec, TaskState::Settled),
        }
    }

    async fn confirm_upload(&self, rec: &mut TaskRecord) -> Result<Step> {
        let id = rec.id;
        // The relay's signed word that it stores the images: the contract
        // pays the upload only against it (when it has a relay key).
        let receipt = match self.relay.receipt(id).await {
            Ok(receipt) => receipt,
            Err(e) if e.is_retryable() => {
                tracing::warn!(task = id, error = %e, "no upload receipt yet; retrying");
                return Ok(Step::Wait("the relay's receipt"));
            }
            Err(e) => return Err(e).context("upload receipt"),
        };
        self.set_pending(rec, PendingCall::ConfirmUpload)?;
        let signer = self.signer.clone();
        let result = self
            .chain
            .call(|h| async move { h.confirm_upload(&signer, id, receipt).await })
            .await;
        match (refused(&result), result) {
            (_, Ok(_)) => crash::point("confirm_sent"),
            // Completed already (our earlier call landed) or aborted for a late upload.
            (Some(ContractError::WrongTaskStatus | ContractError::DeadlinePassed), Err(e)) => {
                tracing::info!(task = id, error = %e, "confirm_upload refused; the task is decided");
            }
            (_, Err(e)) => return Err(e).context("confirm_upload"),
        }
        self.enter(rec, TaskState::Settled)
    }
}
