//! The node's place in the network: join with a stake and an entropy
//! ticket, pause, resume, quit, and entropy contributions. Each ticket
//! secret is stored before the transaction that publishes its ticket.

use crate::capacity::Capacity;
use crate::store::{Entropy, Store};
use anyhow::{bail, Context, Result};
use hydrogen_sdk::chain::Connection;
use hydrogen_sdk::chain::{msg, ChainError, Keypair};
use hydrogen_sdk::types::{
    ticket, AccountId, Error as ContractError, Hash, NodeInfo, NodeStatus, TaskId,
};

/// The engine generation reported at join; nodes of different generations
/// may round differently.
pub const ENGINE_VERSION: u32 = 1;

fn random_hash() -> Result<Hash> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).context("no randomness from the operating system")?;
    Ok(bytes)
}

pub async fn node_info(chain: &Connection, me: AccountId) -> Result<Option<NodeInfo>, ChainError> {
    chain.call(|h| async move { h.node_info(me).await }).await
}

/// Whether the node holds a stake (any status but `Quit`).
pub fn is_staked(info: &Option<NodeInfo>) -> bool {
    info.as_ref().is_some_and(|i| i.status != NodeStatus::Quit)
}

/// Joins if the node is not staked, resumes it if it is paused; returns
/// what was done.
pub async fn join_or_resume(
    chain: &Connection,
    store: &Store,
    signer: &Keypair,
    capacity: &Capacity,
) -> Result<&'static str> {
    let me = hydrogen_sdk::chain::account_of(signer);
    let info = node_info(chain, me).await?;
    match info.map(|i| i.status) {
        None | Some(NodeStatus::Quit) => {
            join(chain, store, signer, capacity).await?;
            Ok("joined")
        }
        Some(NodeStatus::Paused | NodeStatus::PendingPause) => {
            let signer = signer.clone();
            chain
                .call(|h| async move { h.resume(&signer).await })
                .await?;
            Ok("resumed")
        }
        Some(NodeStatus::PendingQuit) => {
            Ok("quitting after its task (run `join` once it has quit)")
        }
        Some(NodeStatus::Available | NodeStatus::Busy) => Ok("already joined"),
    }
}

/// Stakes and joins with a fresh first ticket.
pub async fn join(
    chain: &Connection,
    store: &Store,
    signer: &Keypair,
    capacity: &Capacity,
) -> Result<()> {
    let me = hydrogen_sdk::chain::account_of(signer);
    let h = chain.get().await?;
    let (stake, balance) = (h.params().await?.required_stake, h.balance_of(me).await?);
    if balance < stake {
        bail!(
            "joining stakes {} tokens but {} holds {}; get tokens first",
            stake as f64 / hydrogen_sdk::types::UNIT as f64,
            hydrogen_sdk::chain::ss58(&me),
            balance as f64 / hydrogen_sdk::types::UNIT as f64
        );
    }
    let first = random_hash()?;
    store.put_entropy(&Entropy {
        current: store.entropy()?.current,
        pending: Some(first),
    })?;
    let (name, vram) = (capacity.gpu_name.clone(), capacity.vram_gb);
    let signer = signer.clone();
    chain
        .call(|h| async move {
            h.join(&signer, name, vram, ENGINE_VERSION, ticket(&first))
                .await
        })
        .await?;
    store.put_entropy(&Entropy {
        current: Some(first),
        pending: None,
    })?;
    Ok(())
}

/// `pause`, `resume` or `quit`; a refusal by the contract names its reason.
pub async fn simple_call(chain: &Connection, signer: &Keypair, what: &str) -> Result<()> {
    let signer = signer.clone();
    let what = what.to_owned();
    chain
        .call(|h| async move {
            match what.as_str() {
                "pause" => h.pause(&signer).await,
                "resume" => h.resume(&signer).await,
                _ => h.quit(&signer).await,
            }
        })
        .await?;
    Ok(())
}

/// Settles `task` if one of its deadlines has passed (anyone may); the
/// dry run refuses it, and nothing is sent, while a deadline is ahead.
/// True when it was settled now.
pub async fn settle_if_due(chain: &Connection, signer: &Keypair, task: TaskId) -> bool {
    let signer = signer.clone();
    chain
        .call(|h| async move { h.cancel(&signer, task).await })
        .await
        .is_ok()
}

/// Reveals the current ticket secret and publishes the next ticket.
pub async fn contribute_entropy(
    chain: &Connection,
    store: &Store,
    signer: &Keypair,
) -> Result<bool> {
    let me = hydrogen_sdk::chain::account_of(signer);
    let Some(current) = settle_entropy(chain, store, me).await? else {
        tracing::warn!(
            "no entropy secret for this node's ticket (joined elsewhere?): not contributing"
        );
        return Ok(false);
    };
    let next = random_hash()?;
    store.put_entropy(&Entropy {
        current: Some(current),
        pending: Some(next),
    })?;
    let signer = signer.clone();
    let sent = chain
        .call(|h| async move { h.contribute_entropy(&signer, current, ticket(&next)).await })
        .await;
    match sent {
        Ok(_) => {}
        // Another node completed the batch first, or this node is paused:
        // the dry run refused, nothing was sent, the ticket is unchanged.
        Err(e)
            if matches!(
                e.contract_error(),
                Some(ContractError::EntropyNotNeeded | ContractError::WrongNodeStatus)
            ) =>
        {
            store.put_entropy(&Entropy {
                current: Some(current),
                pending: None,
            })?;
            return Ok(false);
        }
        Err(e) => return Err(e.into()),
    }
    store.write(|w| {
        w.count(|c| c.entropy_contributions += 1)?;
        Ok(())
    })?;
    store.put_entropy(&Entropy {
        current: Some(next),
        pending: None,
    })?;
    Ok(true)
}

/// The secret whose ticket the contract holds now: after a crash between
/// sending and recording a contribution it is the pending one. Dry runs
/// tell which.
async fn settle_entropy(chain: &Connection, store: &Store, me: AccountId) -> Result<Option<Hash>> {
    let entropy = store.entropy()?;
    let Some(pending) = entropy.pending else {
        return Ok(entropy.current);
    };
    let accepted = |secret: Hash| async move {
        let dry = chain
            .call(|h| async move {
                h.dry_run(&me, &msg::contribute_entropy(secret, secret))
                    .await
            })
            .await;
        // The contract checks the ticket before anything else, so any
        // other refusal (not needed now, paused) still says it matched.
        match dry {
            Ok(_) => Ok(true),
            Err(e) if e.contract_error() == Some(ContractError::TicketMismatch) => Ok(false),
            Err(e) if e.contract_error().is_some() => Ok(true),
            Err(e) => Err(e),
        }
    };
    let settled = if accepted(pending).await? {
        Some(pending)
    } else {
        entropy.current
    };
    store.put_entropy(&Entropy {
        current: settled,
        pending: None,
    })?;
    Ok(settled)
}
