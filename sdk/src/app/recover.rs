//! Finding a task whose `create_task` answer was lost: an app that stopped
//! while the call was in flight does not know whether it paid. The chain
//! does: the call's `TaskCreated` event names the creator, the arguments'
//! hash and the fee.

use super::{AppError, Client, PendingTask};
use crate::chain::account_of;
use crate::task::TaskArgs;
use crate::types::{Balance, Event, TaskId, TaskType};
use std::time::{Duration, Instant};

impl Client {
    /// The number of the latest finalized block: record it before
    /// [`Client::create`] so that [`Client::find_created`] knows where to
    /// look should the answer be lost.
    pub async fn finalized_block(&self) -> Result<u64, AppError> {
        Ok(self
            .chain
            .call(|h| async move { h.client().finalized_number().await })
            .await?)
    }

    /// The task this account created for `args` with `fee` in a block after
    /// `after` (a [`Client::finalized_block`] read before sending
    /// `create_task`), skipping the ids in `skip` (tasks already accounted
    /// for: an app may create the same arguments twice).
    ///
    /// `None` means no such `create_task` is in a block and none is on its
    /// way: the account has no transaction waiting in the node's pool and
    /// every block up to the best one was searched once final. While one
    /// may still come, it keeps looking, for at most `patience`; then it
    /// answers `None` too, so the caller should allow for the chain's
    /// finality time (the SDK waits up to 120 s for a call to be final).
    pub async fn find_created(
        &self,
        args: &TaskArgs,
        fee: Balance,
        after: u64,
        skip: &[TaskId],
        patience: Duration,
    ) -> Result<Option<PendingTask>, AppError> {
        let account = account_of(&self.signer);
        let args_hash = args.args_hash();
        let until = Instant::now() + patience;
        let mut next = after + 1;
        loop {
            let (finalized, best, pooled) = self
                .chain
                .call(|h| async move {
                    let c = h.client();
                    Ok((
                        c.finalized_number().await?,
                        c.best_number().await?,
                        c.has_pooled_transactions(&account).await?,
                    ))
                })
                .await?;
            while next <= finalized {
                let block = self
                    .chain
                    .call(|h| async move { h.events_at(next).await })
                    .await?;
                for e in block.events {
                    if let Event::TaskCreated {
                        task_id,
                        creator,
                        task_type: TaskType::StableDiffusion,
                        args_hash: hash,
                        fee: paid,
                        ..
                    } = e.event
                    {
                        if creator == account
                            && hash == args_hash
                            && paid == fee
                            && !skip.contains(&task_id)
                        {
                            return Ok(Some(PendingTask {
                                task_id,
                                created_in: block.block_number,
                            }));
                        }
                    }
                }
                next += 1;
            }
            // Settled: nothing waits in the pool and every block that could
            // hold the call is final and searched.
            if !pooled && finalized >= best {
                return Ok(None);
            }
            if Instant::now() >= until {
                tracing::warn!(
                    after,
                    finalized,
                    best,
                    pooled,
                    "gave up looking for a create_task that may still be on its way"
                );
                return Ok(None);
            }
            tokio::time::sleep(self.poll.min(Duration::from_secs(2))).await;
        }
    }
}
