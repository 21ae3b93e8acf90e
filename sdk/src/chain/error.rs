//! The chain client's one error type, and readable forms of the runtime's
//! `DispatchError` and the token's `PSP22Error`.

use codec::{Decode, Encode};
use subxt::Metadata;

/// Everything that can go wrong while talking to the chain. Each message says
/// what failed and, where there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// No node answered at the URL.
    #[error(
        "cannot reach a chain node at {url}: {reason}. Is the node running? \
         For a local dev chain run `scripts/devnode.sh start` (or `scripts/run.sh --chain-only`); \
         otherwise check the URL"
    )]
    Connect { url: String, reason: String },

    /// The URL can never reach a chain node's WebSocket RPC (wrong scheme,
    /// not a URL): retrying would not help.
    #[error("{url:?} is not a chain node's WebSocket URL: {reason} (e.g. ws://127.0.0.1:9944)")]
    InvalidUrl { url: String, reason: String },

    /// The contract ran the message and returned one of its own errors.
    #[error("contract refused {message}: {error:?}")]
    Contract {
        message: &'static str,
        error: hydrogen_types::Error,
    },

    /// A PSP22 token message returned a `PSP22Error`.
    #[error("token refused {message}: {error}")]
    Token {
        message: &'static str,
        error: Psp22Error,
    },

    /// The contract did not understand the call: unknown selector or
    /// undecodable arguments.
    #[error(
        "contract could not dispatch {message} ({error:?}): the deployed contract does not \
         match this SDK; redeploy it from the current bundle"
    )]
    Lang {
        message: &'static str,
        error: LangError,
    },

    /// The contract reverted without a decodable error.
    #[error("contract reverted {message} (return data 0x{data}){debug}", debug = debug_suffix(debug_message))]
    Reverted {
        message: &'static str,
        data: String,
        debug_message: String,
    },

    /// The runtime refused to run the call at all (trap, out of gas, storage
    /// deposit limit, unknown contract...).
    #[error("{what} failed in the runtime: {error}{debug}", debug = debug_suffix(debug_message))]
    Dispatch {
        what: String,
        error: String,
        debug_message: String,
    },

    /// The extrinsic made it into a finalized block but failed there.
    #[error("extrinsic {what} failed in block #{block_number}: {error}")]
    ExtrinsicFailed {
        what: String,
        block_number: u64,
        error: String,
    },

    /// The node's transaction pool rejected the extrinsic.
    #[error("node rejected extrinsic {what}: {reason}")]
    Rejected { what: String, reason: String },

    /// The extrinsic was not finalized in time.
    #[error(
        "extrinsic {what} was not finalized within {seconds} s; the node may be stalled \
         (check its log) or the transaction was dropped"
    )]
    Timeout { what: String, seconds: u64 },

    /// Bytes from the node or contract did not decode as expected.
    #[error("cannot decode {what}: {reason}; is the node a substrate-contracts-node 0.42 and the contract this SDK's?")]
    Decode { what: String, reason: String },

    /// The contract bundle could not be read or is not a contract bundle.
    #[error(
        "bad contract bundle {path}: {reason}; build it with `cargo contract build --release`"
    )]
    Bundle { path: String, reason: String },

    /// An expected event was not emitted.
    #[error("{what}: no {event} event among the extrinsic's events")]
    MissingEvent { what: String, event: &'static str },

    /// A secret URI (`//Alice`, a mnemonic...) did not parse.
    #[error("bad secret URI: {0}")]
    SecretUri(String),

    /// Any other subxt or RPC failure.
    #[error("{context}: {reason}")]
    Rpc { context: String, reason: String },

    /// The test dev node could not be started.
    #[error("cannot start the dev node: {0}")]
    DevNode(String),
}

fn debug_suffix(debug_message: &str) -> String {
    if debug_message.is_empty() {
        String::new()
    } else {
        format!(" (contract debug output: {debug_message})")
    }
}

impl ChainError {
    /// Whether this says nothing about the call itself, only that the
    /// connection failed: worth reconnecting and trying again. The one rule
    /// the node, the relay and the app share (through [`super::Connection`]).
    pub fn is_transport(&self) -> bool {
        match self {
            ChainError::Connect { .. } | ChainError::Rpc { .. } | ChainError::Timeout { .. } => {
                true
            }
            // The pool's answer was lost with the connection.
            ChainError::Rejected { reason, .. } => {
                let reason = reason.to_lowercase();
                ["closed", "restart", "connection", "background task"]
                    .iter()
                    .any(|s| reason.contains(s))
            }
            _ => false,
        }
    }

    /// The contract's error, when the contract refused the call.
    pub fn contract_error(&self) -> Option<hydrogen_types::Error> {
        match self {
            ChainError::Contract { error, .. } => Some(*error),
            _ => None,
        }
    }

    pub(crate) fn rpc(context: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        ChainError::Rpc {
            context: context.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn decode(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        ChainError::Decode {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// `ink::LangError`: the contract could not dispatch the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum LangError {
    CouldNotReadInput,
}

/// The `psp22` 2.0 crate's `PSP22Error`, decode-side only.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, thiserror::Error)]
pub enum Psp22Error {
    #[error("{0}")]
    Custom(String),
    #[error("InsufficientBalance")]
    InsufficientBalance,
    #[error("InsufficientAllowance")]
    InsufficientAllowance,
    #[error("ZeroRecipientAddress")]
    ZeroRecipientAddress,
    #[error("ZeroSenderAddress")]
    ZeroSenderAddress,
    #[error("SafeTransferCheckFailed: {0}")]
    SafeTransferCheckFailed(String),
}

/// Splits a SCALE `sp_runtime::DispatchError` off the front of `input` and
/// returns its bytes. Its nested enums (`TokenError`, `ArithmeticError`,
/// `TransactionalError`, `TrieError`) are all fieldless, so the length follows
/// from the variant index alone.
pub(crate) fn take_dispatch_error<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], ChainError> {
    let len = match input.first() {
        Some(3) => 1 + 5,                // Module { index, error: [u8; 4] }
        Some(7..=9) | Some(14) => 1 + 1, // Token, Arithmetic, Transactional, Trie
        Some(0..=13) => 1,               // unit variants (Other's message is not encoded)
        Some(other) => {
            return Err(ChainError::decode(
                "DispatchError",
                format!("unknown variant {other}"),
            ))
        }
        None => return Err(ChainError::decode("DispatchError", "no bytes")),
    };
    if input.len() < len {
        return Err(ChainError::decode("DispatchError", "truncated"));
    }
    let (head, rest) = input.split_at(len);
    *input = rest;
    Ok(head)
}

const DISPATCH_ERROR_VARIANTS: [&str; 15] = [
    "Other",
    "CannotLookup",
    "BadOrigin",
    "Module",
    "ConsumerRemaining",
    "NoProviders",
    "TooManyConsumers",
    "Token",
    "Arithmetic",
    "Transactional",
    "Exhausted",
    "Corruption",
    "Unavailable",
    "RootNotAllowed",
    "Trie",
];

/// `sp_runtime::TokenError` variants in index order.
const TOKEN_ERRORS: [&str; 10] = [
    "FundsUnavailable",
    "OnlyProvider",
    "BelowMinimum",
    "CannotCreate",
    "UnknownAsset",
    "Frozen",
    "Unsupported",
    "CannotCreateHold",
    "NotExpendable",
    "Blocked",
];

/// A readable form of the `DispatchError` bytes `error`: module errors become
/// `Pallet::Variant (first doc line)` when `metadata` names them.
pub(crate) fn describe_dispatch_error(error: &[u8], metadata: Option<&Metadata>) -> String {
    let Some(&variant) = error.first() else {
        return "empty DispatchError".into();
    };
    let name = DISPATCH_ERROR_VARIANTS
        .get(usize::from(variant))
        .copied()
        .unwrap_or("Unknown");
    match (variant, error) {
        (3, [_, pallet, err, ..]) => {
            let found = metadata.and_then(|m| {
                let p = m.pallet_by_error_index(*pallet)?;
                let v = p.error_variant_by_index(*err)?;
                let doc = v
                    .docs
                    .first()
                    .map(|d| format!(" ({})", d.trim()))
                    .unwrap_or_default();
                Some(format!("{}::{}{doc}", p.name(), v.name))
            });
            found.unwrap_or_else(|| format!("module error {pallet}:{err}"))
        }
        (7..=9 | 14, [_, inner]) => {
            let inner_name = match variant {
                7 => TOKEN_ERRORS.get(usize::from(*inner)).copied(),
                8 => ["Underflow", "Overflow", "DivisionByZero"]
                    .get(usize::from(*inner))
                    .copied(),
                9 => ["LimitReached", "NoLayer"]
                    .get(usize::from(*inner))
                    .copied(),
                _ => None,
            };
            match inner_name {
                Some("FundsUnavailable") => {
                    format!("{name}::FundsUnavailable (the signer lacks the native funds; fund the account)")
                }
                Some(inner_name) => format!("{name}::{inner_name}"),
                None => format!("{name} error #{inner}"),
            }
        }
        _ => name.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_error_lengths() {
        let bytes = [3u8, 8, 5, 0, 0, 0, 0xaa];
        let mut input = &bytes[..];
        assert_eq!(take_dispatch_error(&mut input).unwrap(), &bytes[..6]);
        assert_eq!(input, &[0xaa]);

        let mut input: &[u8] = &[7, 2, 0xbb];
        assert_eq!(take_dispatch_error(&mut input).unwrap(), &[7, 2]);
        let mut input: &[u8] = &[2, 0xbb];
        assert_eq!(take_dispatch_error(&mut input).unwrap(), &[2]);
        let mut input: &[u8] = &[3, 1];
        assert!(take_dispatch_error(&mut input).is_err());
    }

    #[test]
    fn dispatch_errors_read_without_metadata() {
        assert_eq!(describe_dispatch_error(&[2], None), "BadOrigin");
        assert_eq!(
            describe_dispatch_error(&[3, 8, 5, 0, 0, 0], None),
            "module error 8:5"
        );
        assert_eq!(
            describe_dispatch_error(&[8, 1], None),
            "Arithmetic::Overflow"
        );
        assert_eq!(describe_dispatch_error(&[14, 3], None), "Trie error #3");
        assert!(describe_dispatch_error(&[7, 0], None).starts_with("Token::FundsUnavailable"));
    }

    #[test]
    fn contract_error_names_the_variant() {
        let e = ChainError::Contract {
            message: "create_task",
            error: hydrogen_types::Error::FeeTooLow,
        };
        assert_eq!(e.to_string(), "contract refused create_task: FeeTooLow");
        assert_eq!(e.contract_error(), Some(hydrogen_types::Error::FeeTooLow));
    }

    #[test]
    fn psp22_error_decodes() {
        let bytes = Psp22Error::Custom("no".into()).encode();
        assert_eq!(
            Psp22Error::decode(&mut &bytes[..]).unwrap(),
            Psp22Error::Custom("no".into())
        );
        assert_eq!(Psp22Error::InsufficientBalance.encode(), vec![1]);
    }
}
