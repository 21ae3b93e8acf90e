//! Per-signer nonces kept locally, so that concurrent submissions from one key
//! get consecutive nonces instead of all reading the same one from the chain.
//!
//! A signer's counter is seeded from the node's `system_accountNextIndex`
//! (which counts the transaction pool) and forgotten whenever a submission
//! fails, so the next one reseeds from the node.

use hydrogen_types::AccountId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// One signer's next nonce; `None` until seeded from the node.
type Slot = Arc<AsyncMutex<Option<u64>>>;

/// Local nonce counters, one per signer.
#[derive(Debug, Default, Clone)]
pub struct NonceManager {
    slots: Arc<Mutex<HashMap<AccountId, Slot>>>,
}

/// Exclusive use of one signer's counter while a transaction is signed and
/// handed to the node. Dropping it without [`NonceGuard::commit`] forgets the
/// counter, so the next submission reseeds from the node.
#[derive(Debug)]
pub struct NonceGuard {
    slot: OwnedMutexGuard<Option<u64>>,
    committed: bool,
}

impl NonceManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until no other submission of `account` is between signing and
    /// pool acceptance, then returns its counter.
    pub async fn lock(&self, account: &AccountId) -> NonceGuard {
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            slots.entry(*account).or_default().clone()
        };
        let slot = slot.lock_owned().await;
        NonceGuard {
            slot,
            committed: false,
        }
    }
}

impl NonceGuard {
    /// The next nonce, if known locally; `None` means "ask the node".
    pub fn cached(&self) -> Option<u64> {
        *self.slot
    }

    /// The node accepted a transaction with `used`: the next one gets `used + 1`.
    pub fn commit(mut self, used: u64) {
        *self.slot = Some(used + 1);
        self.committed = true;
    }
}

impl Drop for NonceGuard {
    fn drop(&mut self) {
        if !self.committed {
            *self.slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commit_advances_and_drop_forgets() {
        let nonces = NonceManager::new();
        let a = AccountId::from([1u8; 32]);
        let g = nonces.lock(&a).await;
        assert_eq!(g.cached(), None);
        g.commit(4);
        let g = nonces.lock(&a).await;
        assert_eq!(g.cached(), Some(5));
        drop(g); // a failed submission
        assert_eq!(nonces.lock(&a).await.cached(), None);
    }

    #[tokio::test]
    async fn signers_are_independent_and_serialised() {
        let nonces = NonceManager::new();
        nonces.lock(&[1; 32].into()).await.commit(0);
        assert_eq!(nonces.lock(&[2; 32].into()).await.cached(), None);

        let held = nonces.lock(&[1; 32].into()).await;
        let other = nonces.clone();
        let waiter = tokio::spawn(async move { other.lock(&[1; 32].into()).await.cached() });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        held.commit(1);
        assert_eq!(waiter.await.unwrap(), Some(2));
    }
}
