//! The consensus rules that nodes, the relay, apps and the contract apply to
//! results: commitment pre-images, image-by-image pHash agreement, fee shares.

use crate::{
    AccountId, Balance, Hash, Outcome, TaskId, ORDER_WEIGHTS, ORDER_WEIGHT_TOTAL, PHASH_BYTES,
};
use alloc::vec::Vec;
use codec::Encode;

/// Default per-image Hamming threshold in bits. The reference network started
/// at "< 5" and slashed honest nodes (its issue #78); unrelated images average
/// 32 differing bits, so 10 leaves a wide margin on both sides.
pub const DEFAULT_DISTANCE_THRESHOLD: u8 = 10;

/// The bytes whose Blake2b-256 hash a node commits to.
///
/// `task_id ‖ node ‖ outcome ‖ nonce`, SCALE-encoded. The node's own account is
/// inside so nobody can copy another node's commitment and later replay its
/// reveal; the secret nonce keeps the few bits of a pHash from being guessed
/// before the reveal, and is the node's contribution to the randomness beacon.
pub fn commitment_preimage(
    task: TaskId,
    node: &AccountId,
    outcome: &Outcome,
    nonce: &Hash,
) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 + 32 + 1 + 80 + 32);
    task.encode_to(&mut bytes);
    node.encode_to(&mut bytes);
    outcome.encode_to(&mut bytes);
    nonce.encode_to(&mut bytes);
    bytes
}

/// The bytes a relay signs (ECDSA over their Blake2b-256) to attest that it
/// stores `task`'s images and that they hash to `result`:
/// `"hydrogen/upload/v1" ‖ task ‖ result`, SCALE-encoded. `confirm_upload`
/// checks this receipt against the relay key registered on chain, so an
/// uploader cannot be paid for images it never uploaded.
pub fn upload_receipt_message(task: TaskId, result: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(20 + 8 + 5 + result.len());
    b"hydrogen/upload/v1".encode_to(&mut bytes);
    task.encode_to(&mut bytes);
    result.encode_to(&mut bytes);
    bytes
}

/// Blake2b-256, the hash of every commitment and ticket (the contract uses
/// the chain's host function for the same thing).
#[cfg(feature = "std")]
pub fn blake2_256(bytes: &[u8]) -> Hash {
    use blake2::digest::{consts::U32, Digest};
    let mut hasher = blake2::Blake2b::<U32>::new();
    hasher.update(bytes);
    hasher.finalize().into()
}

/// The commitment a node submits for `outcome`.
#[cfg(feature = "std")]
pub fn commitment(task: TaskId, node: &AccountId, outcome: &Outcome, nonce: &Hash) -> Hash {
    blake2_256(&commitment_preimage(task, node, outcome, nonce))
}

/// The public half of an entropy ticket: a node publishes it on `join` and
/// later reveals `secret` through `contribute_entropy`.
#[cfg(feature = "std")]
pub fn ticket(secret: &Hash) -> Hash {
    blake2_256(secret)
}

/// Hamming distance between two 64-bit pHashes.
pub fn hamming(a: [u8; PHASH_BYTES], b: [u8; PHASH_BYTES]) -> u32 {
    (u64::from_be_bytes(a) ^ u64::from_be_bytes(b)).count_ones()
}

/// Per-image distances between two results, or `None` when their lengths
/// differ or are not whole pHashes.
pub fn distances(a: &[u8], b: &[u8]) -> Option<Vec<u32>> {
    if a.len() != b.len() || a.len() % PHASH_BYTES != 0 {
        return None;
    }
    let pairs = a.chunks_exact(PHASH_BYTES).zip(b.chunks_exact(PHASH_BYTES));
    Some(
        pairs
            .map(|(x, y)| {
                hamming(
                    x.try_into().unwrap_or_default(),
                    y.try_into().unwrap_or_default(),
                )
            })
            .collect(),
    )
}

/// Whether two revealed outcomes agree: both invalid-argument votes, or image
/// results whose every image is within `threshold` bits.
pub fn outcomes_agree(a: &Outcome, b: &Outcome, threshold: u8) -> bool {
    match (a, b) {
        (Outcome::InvalidArgs, Outcome::InvalidArgs) => true,
        (Outcome::Images(x), Outcome::Images(y)) => {
            distances(x, y).is_some_and(|d| d.iter().all(|&d| d <= u32::from(threshold)))
        }
        _ => false,
    }
}

/// The share of `fee` earned by the node that committed `order`-th (0-based).
/// Integer division; what rounding leaves over is refunded to the creator.
pub fn fee_share(fee: Balance, order: usize) -> Balance {
    let weight = ORDER_WEIGHTS.get(order).copied().unwrap_or(0);
    fee.saturating_mul(weight) / ORDER_WEIGHT_TOTAL
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hamming_counts_bits() {
        assert_eq!(hamming([0; 8], [0; 8]), 0);
        assert_eq!(hamming([0xff; 8], [0; 8]), 64);
        assert_eq!(hamming([0, 0, 0, 0, 0, 0, 0, 0b101], [0; 8]), 2);
    }

    #[test]
    fn agreement_is_per_image() {
        let a = Outcome::Images(vec![0; 16]);
        let mut close = vec![0; 16];
        close[7] = 0b111; // image 0 differs by 3 bits
        close[15] = 0b1; // image 1 by 1 bit
        assert!(outcomes_agree(&a, &Outcome::Images(close.clone()), 3));
        assert!(!outcomes_agree(&a, &Outcome::Images(close), 2));
        // A large difference in one image is not averaged away by the others.
        let mut far = vec![0; 16];
        far[8..16].copy_from_slice(&[0xff; 8]);
        assert!(!outcomes_agree(&a, &Outcome::Images(far), 10));
        assert!(!outcomes_agree(&a, &Outcome::Images(vec![0; 8]), 64));
        assert!(!outcomes_agree(&a, &Outcome::InvalidArgs, 64));
        assert!(outcomes_agree(
            &Outcome::InvalidArgs,
            &Outcome::InvalidArgs,
            0
        ));
    }

    #[test]
    fn shares_never_exceed_the_fee() {
        for fee in [0u128, 1, 24, 25, 26, 1_000_003, u128::MAX / 10] {
            let total: u128 = (0..3).map(|o| fee_share(fee, o)).sum();
            assert!(total <= fee);
            assert!(fee - total < 3, "rounding loses at most 2 for fee {fee}");
        }
        assert_eq!(fee_share(25_000, 0), 10_000);
        assert_eq!(fee_share(25_000, 1), 9_000);
        assert_eq!(fee_share(25_000, 2), 6_000);
    }

    #[test]
    fn commitment_binds_node_and_task() {
        let out = Outcome::Images(vec![1; 8]);
        let n = [7u8; 32];
        let c = commitment(1, &[1; 32].into(), &out, &n);
        assert_ne!(c, commitment(1, &[2; 32].into(), &out, &n));
        assert_ne!(c, commitment(2, &[1; 32].into(), &out, &n));
        assert_ne!(c, commitment(1, &[1; 32].into(), &out, &[8; 32]));
        assert_eq!(c, commitment(1, &[1; 32].into(), &out, &n));
    }
}
