//! `POST /control/{join,pause,resume,quit}`: the operator's buttons in the
//! web UI. The server only checks the bearer token and hands the action to
//! the daemon over a channel; the daemon runs it with the same functions as
//! the `join`/`pause`/`resume`/`quit` subcommands and answers with the
//! node's status on chain.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::str::FromStr;
use tokio::sync::{mpsc, oneshot};

/// The shortest control token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Join (staking) if not in the network, resume if paused.
    Join,
    Pause,
    Resume,
    /// Leave the network; the stake comes back once the task at hand is over.
    Quit,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Join => "join",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Quit => "quit",
        }
    }
}

impl FromStr for Action {
    type Err = ();

    fn from_str(s: &str) -> Result<Action, ()> {
        match s {
            "join" => Ok(Action::Join),
            "pause" => Ok(Action::Pause),
            "resume" => Ok(Action::Resume),
            "quit" => Ok(Action::Quit),
            _ => Err(()),
        }
    }
}

/// Why an action was not done: an HTTP status and a message for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: u16,
    pub message: String,
}

impl Failure {
    pub fn new(status: u16, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }
}

/// What the daemon answers: the node's status on chain after the action
/// (`None`: not registered).
pub type Outcome = Result<Option<String>, Failure>;

/// One action for the daemon to run.
pub struct Request {
    pub action: Action,
    pub reply: oneshot::Sender<Outcome>,
}

/// The server's side: the token's digest and the way to the daemon.
#[derive(Clone)]
pub struct Control {
    token: [u8; 32],
    requests: mpsc::Sender<Request>,
}

/// The token is too short to be a secret.
#[derive(Debug, thiserror::Error)]
#[error(
    "control_token must be at least {} characters (or unset to turn control off)",
    MIN_TOKEN_LEN
)]
pub struct WeakToken;

impl Control {
    /// Control with `token`; the daemon reads the requests from the receiver.
    pub fn new(token: &str) -> Result<(Control, mpsc::Receiver<Request>), WeakToken> {
        if token.chars().count() < MIN_TOKEN_LEN {
            return Err(WeakToken);
        }
        let (requests, received) = mpsc::channel(4);
        Ok((
            Control {
                token: Sha256::digest(token.as_bytes()).into(),
                requests,
            },
            received,
        ))
    }

    /// Whether `authorization` (the header's value) is `Bearer <token>`.
    /// The digests are compared in constant time, so neither the token's
    /// length nor its first differing byte shows in the timing.
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        let Some(given) = authorization.and_then(|h| {
            let (scheme, token) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        }) else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        constant_time_eq(&given, &self.token)
    }

    /// Hands `action` to the daemon and waits for its answer.
    pub async fn request(&self, action: Action, wait: std::time::Duration) -> Outcome {
        let (reply, answer) = oneshot::channel();
        self.requests
            .try_send(Request { action, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    Failure::new(429, "other control actions are still under way; try again")
                }
                mpsc::error::TrySendError::Closed(_) => {
                    Failure::new(503, "the daemon takes no control actions now")
                }
            })?;
        match tokio::time::timeout(wait, answer).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(Failure::new(503, "the daemon dropped the request")),
            Err(_) => Err(Failure::new(
                504,
                format!(
                    "{} is still under way after {} s; /status shows when it lands",
                    action.name(),
                    wait.as_secs()
                ),
            )),
        }
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bearer_token_is_authorized() {
        assert!(Control::new("short").is_err());
        let (control, _rx) = Control::new("0123456789abcdef").unwrap();
        assert!(control.authorized(Some("Bearer 0123456789abcdef")));
        assert!(control.authorized(Some("bearer  0123456789abcdef ")));
        assert!(!control.authorized(Some("Bearer 0123456789abcdeF")));
        assert!(!control.authorized(Some("Bearer 0123456789abcdef0")));
        assert!(!control.authorized(Some("Basic 0123456789abcdef")));
        assert!(!control.authorized(Some("0123456789abcdef")));
        assert!(!control.authorized(None));
        assert_eq!("pause".parse(), Ok(Action::Pause));
        assert!("stop".parse::<Action>().is_err());
    }
}
