//! Refusing replayed requests: every accepted signature is remembered until
//! its timestamp leaves the skew window, after which the timestamp check
//! refuses it anyway. This process remembers them in memory, which refuses
//! a replay to it without a store round trip; with `replay_guard = "store"`
//! each is also claimed in the object store the replicas share, so a replay
//! to another replica, or after a restart, is refused as well.

use crate::store::Store;
use std::collections::HashMap;
use std::sync::Mutex;

pub struct ReplayGuard {
    max_skew_ms: u64,
    seen: Mutex<Seen>,
    shared: Option<Store>,
}

struct Seen {
    /// Signature → the time after which its timestamp is stale.
    expires: HashMap<[u8; 64], u64>,
    /// Size at which expired entries are dropped; doubles with the live set
    /// so pruning stays amortized O(1) per request.
    prune_at: usize,
}

const MIN_PRUNE_AT: usize = 1024;

impl ReplayGuard {
    /// A guard for this process alone, or shared through `shared`.
    pub fn new(max_skew_ms: u64, shared: Option<Store>) -> ReplayGuard {
        ReplayGuard {
            max_skew_ms,
            seen: Mutex::new(Seen {
                expires: HashMap::new(),
                prune_at: MIN_PRUNE_AT,
            }),
            shared,
        }
    }

    /// Remembers `signature`, here and in the shared store; false if it
    /// was already seen by either.
    pub async fn first_use(
        &self,
        signature: &[u8; 64],
        timestamp_ms: u64,
        now_ms: u64,
    ) -> anyhow::Result<bool> {
        if !self.first_use_here(signature, timestamp_ms, now_ms) {
            return Ok(false);
        }
        match &self.shared {
            Some(store) => {
                let expires = timestamp_ms.saturating_add(self.max_skew_ms);
                store.claim_signature(signature, expires).await
            }
            None => Ok(true),
        }
    }

    /// Remembers `signature` in this process; false if it was already seen.
    fn first_use_here(&self, signature: &[u8; 64], timestamp_ms: u64, now_ms: u64) -> bool {
        let mut seen = self.seen.lock().unwrap();
        if seen.expires.len() >= seen.prune_at {
            seen.expires.retain(|_, expires| *expires >= now_ms);
            seen.prune_at = (2 * seen.expires.len()).max(MIN_PRUNE_AT);
        }
        let expires = timestamp_ms.saturating_add(self.max_skew_ms);
        seen.expires.insert(*signature, expires).is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_accepted_once() {
        let guard = ReplayGuard::new(60_000, None);
        assert!(guard.first_use_here(&[1; 64], 1_000, 1_000));
        assert!(!guard.first_use_here(&[1; 64], 1_000, 2_000));
        assert!(guard.first_use_here(&[2; 64], 1_000, 2_000));
    }

    #[test]
    fn expired_signatures_are_pruned_live_ones_kept() {
        let guard = ReplayGuard::new(10, None);
        for i in 0..MIN_PRUNE_AT as u64 {
            let mut sig = [0; 64];
            sig[..8].copy_from_slice(&i.to_le_bytes());
            assert!(guard.first_use_here(&sig, i, i));
        }
        // All but the last few have expired by now = MIN_PRUNE_AT + 5.
        let now = MIN_PRUNE_AT as u64 + 5;
        assert!(guard.first_use_here(&[9; 64], now, now));
        let seen = guard.seen.lock().unwrap();
        assert!(seen.expires.len() < 20, "{} left", seen.expires.len());
        let mut last = [0; 64];
        last[..8].copy_from_slice(&(MIN_PRUNE_AT as u64 - 1).to_le_bytes());
        assert!(seen.expires.contains_key(&last));
    }
}
