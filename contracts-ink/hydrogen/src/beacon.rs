//! The randomness beacon behind node selection.
//!
//! ink! 5 offers no random source, so nodes supply it: every reveal mixes the
//! node's secret commitment nonce into an accumulator, and staked nodes
//! reveal pre-committed ticket secrets. A batch of tasks is drawn only once
//! two different nodes contributed after it was *armed* (its eligible nodes
//! fixed), so nobody knows the seed while they can still change who is in
//! the draw. The seed holds nothing a caller picks — no block number, no
//! timestamp — so a draw cannot be ground by choosing when to send the
//! transaction. The threat model is in ARCHITECTURE.md.

use hydrogen_types::Hash;
use ink::env::hash::{Blake2x256, HashOutput};
use ink::primitives::AccountId;

pub fn blake2_256(input: &[u8]) -> Hash {
    let mut out = <Blake2x256 as HashOutput>::Type::default();
    ink::env::hash_bytes::<Blake2x256>(input, &mut out);
    out
}

#[ink::storage_item]
#[derive(Debug, Default)]
pub struct Beacon {
    value: Hash,
    /// Contributions so far.
    epoch: u64,
    last: Option<AccountId>,
    /// Epoch of the latest contribution by a node other than `last`.
    other_epoch: u64,
}

impl Beacon {
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn mix(&mut self, contributor: AccountId, secret: &Hash) {
        let mut input = [0u8; 96];
        input[..32].copy_from_slice(&self.value);
        input[32..64].copy_from_slice(contributor.as_ref());
        input[64..].copy_from_slice(secret);
        self.value = blake2_256(&input);
        if self.last != Some(contributor) {
            self.other_epoch = self.epoch;
            self.last = Some(contributor);
        }
        self.epoch = self.epoch.saturating_add(1);
    }

    /// Whether two distinct nodes contributed after `epoch`.
    pub fn ripe_since(&self, epoch: u64) -> bool {
        // The latest contribution is numbered `self.epoch`, the latest by
        // someone else `self.other_epoch` (1-based, 0 = none).
        self.epoch > epoch && self.other_epoch > epoch
    }

    /// The selection seed for `task`: the accumulator bound to the task, so
    /// two tasks drawn from one accumulator differ.
    pub fn seed(&self, task: u64) -> Hash {
        let mut input = [0u8; 40];
        input[..32].copy_from_slice(&self.value);
        input[32..40].copy_from_slice(&task.to_le_bytes());
        blake2_256(&input)
    }
}

/// The `k`-th draw from `seed`, uniform in `0..n` up to a bias below 2^-32
/// for any realistic `n`.
pub fn draw(seed: &Hash, k: usize, n: u32) -> u32 {
    let mut input = [0u8; 40];
    input[..32].copy_from_slice(seed);
    input[32..].copy_from_slice(&(k as u64).to_le_bytes());
    let h = blake2_256(&input);
    let mut word = [0u8; 8];
    word.copy_from_slice(&h[..8]);
    let r = u64::from_le_bytes(word)
        .checked_rem(u64::from(n.max(1)))
        .unwrap_or(0);
    u32::try_from(r).unwrap_or(0)
}
