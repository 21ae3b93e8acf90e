//! Per-account request limits: every signed request may cost chain reads
//! (a refusal costs two), so one key must not be able to make the relay
//! read the chain without bound. A keyed GCRA limiter (`governor`), keyed
//! by the authenticated account, checked before any chain read.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use hydrogen_sdk::types::AccountId;
use std::num::NonZeroU32;
use std::time::Duration;

pub struct Limiter {
    limiter: DefaultKeyedRateLimiter<AccountId>,
    clock: DefaultClock,
}

impl Limiter {
    /// `per_second` sustained requests per account, `burst` above it.
    pub fn new(per_second: u32, burst: u32) -> Limiter {
        let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Limiter {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts a request from `account`; `Err` with how long to wait when
    /// it is over its limit. Idle keys are forgotten as the map grows.
    pub fn check(&self, account: &AccountId) -> Result<(), Duration> {
        if self.limiter.len() > 100_000 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(account)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_account_gets_its_own_burst() {
        let limiter = Limiter::new(1, 3);
        for _ in 0..3 {
            assert!(limiter.check(&[1; 32].into()).is_ok());
        }
        let wait = limiter.check(&[1; 32].into()).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(
            limiter.check(&[2; 32].into()).is_ok(),
            "another key is not affected"
        );
    }
}
