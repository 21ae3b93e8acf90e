//! The node's handle on the chain: the SDK's [`Connection`] (one reconnect
//! policy for node, relay and app), with views run as this node and a
//! minute's wait for finality, since a node's calls are paid and must land.

use hydrogen_sdk::chain::Connection;
use hydrogen_sdk::types::AccountId;
use std::time::Duration;

/// How long a submission waits to be finalized before it counts as failed.
const FINALITY_TIMEOUT: Duration = Duration::from_secs(60);

/// The node `me`'s connection to the contract at `contract`; the first call connects.
pub fn connection(url: &str, contract: AccountId, me: AccountId) -> Connection {
    Connection::new(url, contract)
        .with_view_origin(me)
        .with_finality_timeout(FINALITY_TIMEOUT)
}
