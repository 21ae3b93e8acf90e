//! Keeps a dev chain's clock moving.
//!
//! The dev node seals a block only when a transaction arrives, and the
//! contract reads the time from the latest block. On an idle dev chain time
//! therefore stands still: a deadline never passes, and a cancel that waits
//! for it is refused forever. A real chain makes a block every few seconds;
//! the [`Ticker`] stands in for that by sending a `System.remark` every
//! period. `scripts/devnode.sh` runs one (the `hydrogen-ticker` binary).

use super::client::ChainClient;
use std::time::Duration;
use subxt_signer::sr25519::Keypair;
use tokio::task::JoinHandle;

/// The dev account the ticker signs with by default: funded in the dev
/// chain spec and used by nothing else, so its nonces never collide.
pub const TICKER_SURI: &str = "//Ferdie";

/// A background task that sends a remark every period; stops when dropped.
pub struct Ticker(JoinHandle<()>);

impl Ticker {
    pub fn start(client: ChainClient, signer: Keypair, period: Duration) -> Ticker {
        Ticker(tokio::spawn(async move {
            let remark = subxt::dynamic::tx("System", "remark", (vec![0u8],));
            loop {
                tokio::time::sleep(period).await;
                if let Err(e) = client.submit_extrinsic(&signer, &remark, "remark").await {
                    tracing::warn!(error = %e, "ticker: the remark failed");
                }
            }
        }))
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.abort();
    }
}
