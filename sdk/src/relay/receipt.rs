//! Upload receipts: the relay's signed word that it stores a task's images
//! and that they hash to the accepted result. `confirm_upload` pays the
//! uploader only against one when the contract has a relay key registered,
//! so an uploader cannot be paid for images it withheld.
//!
//! A receipt is a recoverable secp256k1 ECDSA signature over the Blake2b-256
//! of [`upload_receipt_message`]; the key is a compressed public key. The
//! contract checks it with the chain's `ecdsa_recover`.

use crate::types::{upload_receipt_message, Receipt, RelayKey, TaskId};
pub use subxt_signer::ecdsa::Keypair as ReceiptKeypair;
use subxt_signer::SecretUri;

/// A receipt key from a secret URI (`//HydrogenRelay`, a mnemonic, `0x…` seed).
pub fn keypair_from_uri(uri: &str) -> Result<ReceiptKeypair, String> {
    let uri: SecretUri = uri.parse().map_err(|e| format!("not a secret URI: {e}"))?;
    ReceiptKeypair::from_uri(&uri).map_err(|e| format!("no ECDSA key from that URI: {e}"))
}

/// The key the contract must hold to accept `keypair`'s receipts.
pub fn public_key(keypair: &ReceiptKeypair) -> RelayKey {
    keypair.public_key().0
}

/// The receipt for `task`'s images with pHash `result`.
pub fn sign(keypair: &ReceiptKeypair, task: TaskId, result: &[u8]) -> Receipt {
    keypair.sign(&upload_receipt_message(task, result)).0
}

/// Whether `receipt` is `key`'s receipt for `task` and `result`.
pub fn verify(key: &RelayKey, task: TaskId, result: &[u8], receipt: &Receipt) -> bool {
    subxt_signer::ecdsa::verify(
        &subxt_signer::ecdsa::Signature(*receipt),
        upload_receipt_message(task, result),
        &subxt_signer::ecdsa::PublicKey(*key),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_binds_key_task_and_result() {
        let key = keypair_from_uri("//HydrogenRelay").unwrap();
        let other = keypair_from_uri("//Mallory").unwrap();
        let receipt = sign(&key, 7, &[1; 8]);
        assert!(verify(&public_key(&key), 7, &[1; 8], &receipt));
        assert!(!verify(&public_key(&other), 7, &[1; 8], &receipt));
        assert!(!verify(&public_key(&key), 8, &[1; 8], &receipt));
        assert!(!verify(&public_key(&key), 7, &[2; 8], &receipt));
        assert_eq!(receipt, sign(&key, 7, &[1; 8]), "deterministic (RFC 6979)");
    }
}
