//! The relay's error answers and what a client makes of them.

use serde::{Deserialize, Serialize};

/// The JSON body of every error the relay answers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable, machine-readable; one of [`code`]'s constants.
    pub code: String,
    /// For people: what was wrong, with the values involved.
    pub message: String,
}

/// The `code` values of [`ErrorBody`].
pub mod code {
    /// 404: the task exists but this blob has not been uploaded yet (retry later).
    pub const NOT_UPLOADED_YET: &str = "not_uploaded_yet";
    /// 404: no such task on chain, not even in the relay's best block.
    pub const TASK_NOT_FOUND: &str = "task_not_found";
    /// 410: the task is over and the blob is not on the relay (deleted after
    /// the retention period, or never uploaded).
    pub const GONE: &str = "gone";
    /// 503: the chain's best block would allow the request but the relay's
    /// finalized view does not yet (retry shortly).
    pub const BEHIND: &str = "behind";
    /// 503: the relay cannot reach its chain node.
    pub const CHAIN_UNAVAILABLE: &str = "chain_unavailable";
    /// 401: signature headers missing, malformed, wrong, stale or replayed,
    /// or a body that does not match its signed hash.
    pub const UNAUTHENTICATED: &str = "unauthenticated";
    /// 403: a valid signature from an account the task does not allow.
    pub const FORBIDDEN: &str = "forbidden";
    /// 409: the blob is already there; uploads are write-once.
    pub const ALREADY_UPLOADED: &str = "already_uploaded";
    /// 409: the task's status does not allow this (images before consensus).
    pub const WRONG_TASK_STATUS: &str = "wrong_task_status";
    /// 413: over a size or count limit.
    pub const TOO_LARGE: &str = "too_large";
    /// 400: a body that ends early or cannot be read.
    pub const MALFORMED: &str = "malformed";
    /// 422: the arguments do not hash to the task's `args_hash`.
    pub const ARGS_HASH_MISMATCH: &str = "args_hash_mismatch";
    /// 422: the arguments fail the task schema or contradict the task.
    pub const INVALID_ARGS: &str = "invalid_args";
    /// 422: the images are not the accepted result (count, PNG, pHash).
    pub const WRONG_IMAGES: &str = "wrong_images";
    /// 400: a path or query the relay does not understand.
    pub const BAD_REQUEST: &str = "bad_request";
    /// 404: no such endpoint or image index.
    pub const NOT_FOUND: &str = "not_found";
    /// Too many requests from this account; retry after `Retry-After`.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// 503: every image check is taken and the upload queue is full; retry
    /// after `Retry-After`.
    pub const BUSY: &str = "busy";
    /// This relay signs no upload receipts (it has no receipt key).
    pub const NO_RECEIPTS: &str = "no_receipts";
    /// 500: the relay failed (storage, a bug).
    pub const INTERNAL: &str = "internal";
}

/// Why a relay request failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The task exists but its arguments or images are not on the relay yet.
    #[error("not uploaded yet: {0}")]
    NotUploadedYet(String),
    /// The chain has no such task.
    #[error("task not found: {0}")]
    TaskNotFound(String),
    /// The relay's view of the chain is behind (or its node is unreachable).
    #[error("relay behind the chain: {0}")]
    Behind(String),
    /// Any other answer that is not a success, with the server's words.
    #[error("relay refused ({status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer: connection refused or reset, timeout.
    #[error("relay unreachable: {0}")]
    Unreachable(String),
    /// A base URL that is not an http(s) URL.
    #[error("invalid relay URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// An answer that is not what the protocol says (a cut images body).
    #[error("unexpected answer from the relay: {0}")]
    Protocol(String),
}

impl RelayError {
    /// Whether the same request may succeed later: not uploaded yet, relay
    /// behind, relay unreachable, or a server error (5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            RelayError::NotUploadedYet(_) | RelayError::Behind(_) | RelayError::Unreachable(_) => {
                true
            }
            RelayError::Refused { status, .. } => *status >= 500 || *status == 429,
            RelayError::TaskNotFound(_)
            | RelayError::InvalidUrl { .. }
            | RelayError::Protocol(_) => false,
        }
    }

    /// The upload was refused because the blob is already there (an earlier
    /// attempt whose answer was lost may have stored it).
    pub fn is_already_uploaded(&self) -> bool {
        matches!(self, RelayError::Refused { code, .. } if code == code::ALREADY_UPLOADED)
    }

    /// The error for a non-success answer with `status` and `body`.
    pub fn from_response(status: u16, body: &[u8]) -> RelayError {
        let ErrorBody { code, message } =
            serde_json::from_slice(body).unwrap_or_else(|_| ErrorBody {
                code: String::new(),
                message: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
            });
        match code.as_str() {
            code::NOT_UPLOADED_YET => RelayError::NotUploadedYet(message),
            code::TASK_NOT_FOUND => RelayError::TaskNotFound(message),
            code::BEHIND | code::CHAIN_UNAVAILABLE => RelayError::Behind(message),
            _ => RelayError::Refused {
                status,
                code,
                message,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, code: &str) -> RelayError {
        let body = serde_json::to_vec(&ErrorBody {
            code: code.into(),
            message: "m".into(),
        })
        .unwrap();
        RelayError::from_response(status, &body)
    }

    #[test]
    fn answers_map_to_variants_and_retryability() {
        assert!(matches!(
            answer(404, code::NOT_UPLOADED_YET),
            RelayError::NotUploadedYet(_)
        ));
        assert!(matches!(
            answer(404, code::TASK_NOT_FOUND),
            RelayError::TaskNotFound(_)
        ));
        assert!(matches!(answer(503, code::BEHIND), RelayError::Behind(_)));
        for (status, code, retry) in [
            (404, code::NOT_UPLOADED_YET, true),
            (503, code::BEHIND, true),
            (503, code::CHAIN_UNAVAILABLE, true),
            (500, code::INTERNAL, true),
            (404, code::TASK_NOT_FOUND, false),
            (403, code::FORBIDDEN, false),
            (401, code::UNAUTHENTICATED, false),
            (409, code::ALREADY_UPLOADED, false),
        ] {
            assert_eq!(
                answer(status, code).is_retryable(),
                retry,
                "{status} {code}"
            );
        }
        assert!(answer(409, code::ALREADY_UPLOADED).is_already_uploaded());
        assert!(RelayError::Unreachable("reset".into()).is_retryable());
    }

    #[test]
    fn a_body_that_is_not_json_is_kept_as_the_message() {
        match RelayError::from_response(502, b"Bad Gateway") {
            RelayError::Refused {
                status,
                code,
                message,
            } => {
                assert_eq!(
                    (status, code.as_str(), message.as_str()),
                    (502, "", "Bad Gateway")
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
