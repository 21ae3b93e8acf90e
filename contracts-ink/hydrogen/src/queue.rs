//! The bounded queue of tasks waiting for randomness and free nodes, best
//! price per image first, then oldest first. An entry carries what arming
//! and expiry need, so a dispatch pass reads no task records.

use hydrogen_types::{TaskId, Timestamp};
use ink::prelude::vec::Vec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[ink::scale_derive(Encode, Decode, TypeInfo)]
#[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
pub struct Entry {
    pub task: TaskId,
    /// Fee per image.
    pub price: u128,
    pub min_vram_gb: u32,
    pub expires_at: Timestamp,
    /// An audit: it must avoid the audited task's three nodes.
    pub audit: bool,
}

fn before(a: &Entry, b: &Entry) -> bool {
    a.price > b.price || (a.price == b.price && a.task < b.task)
}

/// Whether a task at `price` may enter a queue holding `queue` with room for `max`.
pub fn admits(queue: &[Entry], price: u128, max: u32) -> bool {
    (queue.len() as u64) < u64::from(max)
        || queue.last().is_some_and(|cheapest| price > cheapest.price)
}

/// Inserts in order and returns the entries pushed out past `max` (cheapest first out).
pub fn insert(queue: &mut Vec<Entry>, entry: Entry, max: u32) -> Vec<Entry> {
    let pos = queue
        .iter()
        .position(|e| before(&entry, e))
        .unwrap_or(queue.len());
    queue.insert(pos, entry);
    let keep = (max as usize).min(queue.len());
    queue.split_off(keep)
}

pub fn remove(queue: &mut Vec<Entry>, task: TaskId) -> bool {
    match queue.iter().position(|e| e.task == task) {
        Some(pos) => {
            queue.remove(pos);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(task: TaskId, price: u128) -> Entry {
        Entry {
            task,
            price,
            min_vram_gb: 0,
            expires_at: 0,
            audit: false,
        }
    }

    #[test]
    fn orders_by_price_then_age_and_evicts_the_cheapest() {
        let mut q = Vec::new();
        assert!(insert(&mut q, e(1, 5), 3).is_empty());
        assert!(insert(&mut q, e(2, 9), 3).is_empty());
        assert!(insert(&mut q, e(3, 5), 3).is_empty());
        assert_eq!(q, vec![e(2, 9), e(1, 5), e(3, 5)]);
        assert!(
            !admits(&q, 5, 3),
            "a full queue refuses a price equal to its cheapest"
        );
        assert!(admits(&q, 6, 3));
        assert_eq!(insert(&mut q, e(4, 6), 3), vec![e(3, 5)]);
        assert_eq!(q, vec![e(2, 9), e(4, 6), e(1, 5)]);
        assert!(remove(&mut q, 4));
        assert!(!remove(&mut q, 4));
        assert_eq!(q, vec![e(2, 9), e(1, 5)]);
    }

    #[test]
    fn shrinking_the_limit_evicts_on_next_insert() {
        let mut q = vec![e(1, 9), e(2, 8), e(3, 7)];
        assert_eq!(insert(&mut q, e(4, 10), 2), vec![e(2, 8), e(3, 7)]);
        assert_eq!(q, vec![e(4, 10), e(1, 9)]);
    }
}
