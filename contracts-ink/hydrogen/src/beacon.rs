//! The randomness behind node selection.
//!
//! ink! 5 offers no random source, so nodes supply it from secrets they
//! committed to earlier: every node registers `blake2_256(secret)` (its
//! *ticket*) and later reveals the secret. Selection draws a batch of tasks
//! in two steps (see `Hydrogen::dispatch`):
//!
//! 1. *Arm*: the batch's eligible nodes are fixed, and two of them are
//!    *designated* as its contributors by the public accumulator.
//! 2. *Draw*: once both revealed their ticket secrets, each task's seed is
//!    the batch accumulator (the accumulator at arming, then the two
//!    secrets) bound to the task id.
//!
//! Nobody else's transactions, no block number and no timestamp enter a
//! seed, so nobody can grind a draw by choosing when to send a transaction
//! or by adding a contribution of their own. A designated node can only
//! withhold its secret, which forfeits part of its stake and re-designates.
//! The threat model, with numbers, is in ARCHITECTURE.md.

use hydrogen_types::Hash;
use ink::env::hash::{Blake2x256, HashOutput};
use ink::primitives::AccountId;

pub fn blake2_256(input: &[u8]) -> Hash {
    let mut out = <Blake2x256 as HashOutput>::Type::default();
    ink::env::hash_bytes::<Blake2x256>(input, &mut out);
    out
}

/// `H(acc ‖ contributor ‖ secret)`: one secret folded into an accumulator.
pub fn mix(acc: &Hash, contributor: AccountId, secret: &Hash) -> Hash {
    let mut input = [0u8; 96];
    input[..32].copy_from_slice(acc);
    input[32..64].copy_from_slice(contributor.as_ref());
    input[64..].copy_from_slice(secret);
    blake2_256(&input)
}

/// `H(acc ‖ domain ‖ n)`: a value derived from an accumulator.
pub fn derive(acc: &Hash, domain: &[u8; 8], n: u64) -> Hash {
    let mut input = [0u8; 48];
    input[..32].copy_from_slice(acc);
    input[32..40].copy_from_slice(domain);
    input[40..48].copy_from_slice(&n.to_le_bytes());
    blake2_256(&input)
}

/// The global accumulator: every revealed secret (tickets and commitment
/// nonces) is folded in. It only seeds the next batch's accumulator and its
/// designation, never a draw by itself.
#[ink::storage_item]
#[derive(Debug, Default)]
pub struct Beacon {
    value: Hash,
}

impl Beacon {
    pub fn value(&self) -> Hash {
        self.value
    }

    pub fn mix(&mut self, contributor: AccountId, secret: &Hash) {
        self.value = mix(&self.value, contributor, secret);
    }
}

/// The selection seed of `task` drawn from the batch accumulator `acc`.
pub fn seed(acc: &Hash, task: u64) -> Hash {
    derive(acc, b"select\0\0", task)
}

/// The `k`-th draw from `seed`, uniform in `0..n` up to a bias below 2^-32
/// for any realistic `n`.
pub fn draw(seed: &Hash, k: usize, n: u32) -> u32 {
    let h = derive(seed, b"draw\0\0\0\0", k as u64);
    let mut word = [0u8; 8];
    word.copy_from_slice(&h[..8]);
    let r = u64::from_le_bytes(word)
        .checked_rem(u64::from(n.max(1)))
        .unwrap_or(0);
    u32::try_from(r).unwrap_or(0)
}
