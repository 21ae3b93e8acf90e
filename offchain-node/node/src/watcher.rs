//! Follows the contract's events on finalized blocks, from the block after
//! the last one handled (persisted with what the block changed), so a
//! restart or a reconnection catches up without gaps. It records the tasks
//! this node is selected for and counts its payouts, slashes and misses;
//! the daemon's polls of `node_info` cover any event this misses.

use crate::status::Status;
use crate::store::{Store, Verdict};
use crate::task::TaskRecord;
use futures::StreamExt;
use hydrogen_sdk::chain::{BlockEvents, ChainClient, Hydrogen};
use hydrogen_sdk::types::{AccountId, Event};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

pub struct Watcher {
    pub url: String,
    pub contract: AccountId,
    pub me: AccountId,
    pub store: Store,
    pub status: Status,
    /// Woken after every block with events for the daemon.
    pub notify: Arc<Notify>,
    /// `TaskCreated` events seen: new tasks may wait for entropy.
    pub tasks_created: Arc<AtomicU64>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Watcher {
    /// Runs until the process ends, reconnecting with exponential backoff.
    pub async fn run(self) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let before = self.store.last_block().ok().flatten();
            match self.follow().await {
                Ok(()) => tracing::warn!("the finalized block stream ended; reconnecting"),
                Err(e) => tracing::warn!(error = %e, retry_in = ?backoff, "chain watcher"),
            }
            self.status.update(|s| s.chain_connected = false);
            if self.store.last_block().ok().flatten() != before {
                // It made progress: the connection was good until now.
                backoff = Duration::from_millis(500);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn follow(&self) -> anyhow::Result<()> {
        let client = ChainClient::connect(&self.url).await?;
        let hydrogen = Hydrogen::at(client, self.contract);
        let from = self.store.last_block()?.map(|b| b + 1);
        let stream = hydrogen.event_stream(from).await?;
        self.status.update(|s| s.chain_connected = true);
        tracing::info!(from = ?from, "following finalized blocks");
        let mut stream = std::pin::pin!(stream);
        while let Some(block) = stream.next().await {
            self.handle(block?)?;
        }
        Ok(())
    }

    fn handle(&self, block: BlockEvents) -> anyhow::Result<()> {
        let me = self.me;
        let mut wake = false;
        let mut selected = false;
        self.store.write(|w| {
            for event in &block.events {
                match &event.event {
                    Event::NodeSelected {
                        task_id,
                        node,
                        deadline,
                    } if *node == me => {
                        if w.task(*task_id)?.is_none() {
                            tracing::info!(task = task_id, "selected for a task");
                            w.put_task(&TaskRecord::selected(*task_id, *deadline))?;
                            selected = true;
                        }
                        wake = true;
                    }
                    Event::NodePaid {
                        node,
                        amount,
                        task_id,
                    } if *node == me => {
                        tracing::info!(task = task_id, amount, "paid");
                        w.put_verdict(*task_id, &Verdict::paid(*amount))?;
                        w.count(|c| {
                            c.paid += 1;
                            c.earnings += amount;
                        })?;
                    }
                    Event::NodeSlashed {
                        node,
                        amount,
                        task_id,
                    } if *node == me => {
                        tracing::error!(task = task_id, amount, "this node was slashed");
                        w.put_verdict(*task_id, &Verdict::slashed(*amount))?;
                        w.count(|c| c.slashed += 1)?;
                    }
                    Event::NodeMissed {
                        node,
                        missed,
                        task_id,
                    } if *node == me => {
                        tracing::warn!(
                            task = task_id,
                            in_a_row = missed,
                            "this node missed a task"
                        );
                        w.put_verdict(*task_id, &Verdict::missed())?;
                        w.count(|c| c.missed += 1)?;
                    }
                    Event::NodeKickedOut { node, .. } if *node == me => {
                        tracing::error!(
                            "this node was kicked out for missing too many tasks; its stake \
                             was returned; the daemon joins again when the cooldown ends"
                        );
                        w.count(|c| c.kicked_out += 1)?;
                    }
                    Event::EntropyWithheld {
                        node, forfeited, ..
                    } if *node == me => {
                        tracing::error!(
                            forfeited = *forfeited,
                            "this node was designated to contribute entropy and did not in time"
                        );
                    }
                    Event::TaskCreated { .. } | Event::TasksArmed { .. } => {
                        self.tasks_created.fetch_add(1, Ordering::SeqCst);
                        wake = true;
                    }
                    Event::CommitmentsReady { .. }
                    | Event::TaskSucceeded { .. }
                    | Event::TaskAborted { .. }
                    | Event::ResultRevealed { .. } => wake = true,
                    _ => {}
                }
            }
            w.set_last_block(block.block_number)
        })?;
        if selected {
            crate::crash::point("selected");
        }
        self.status
            .update(|s| s.last_block = Some(block.block_number));
        if wake {
            self.notify.notify_one();
        }
        Ok(())
    }
}
