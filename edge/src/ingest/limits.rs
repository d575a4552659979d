//! Per-tenant event rate limits: a token bucket per tenant, sans-IO.
//!
//! A tenant may send `rate` events per second on average and up to one
//! second's worth at once. A request that does not fit is refused whole
//! (429 with `Retry-After`), so it can be retried as it is; a request larger
//! than one second's worth can never fit, and is told so (413), not asked to
//! retry forever.

use std::collections::HashMap;

use tally_model::tenant::TenantId;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last_ms: u64,
}

/// Why a request does not fit its tenant's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverRate {
    /// It fits after this many seconds.
    RetryIn(u64),
    /// It holds more events than the tenant may send in a second.
    NeverFits,
}

#[derive(Debug, Default)]
pub struct RateLimits {
    buckets: HashMap<TenantId, Bucket>,
}

impl RateLimits {
    /// Takes `events` tokens from `tenant`'s bucket refilling at `rate`/s,
    /// or says how many seconds until they will be there.
    pub fn take(&mut self, tenant: &TenantId, rate: u32, events: u64, now_ms: u64) -> Result<(), OverRate> {
        if events > rate.max(1) as u64 {
            return Err(OverRate::NeverFits);
        }
        let rate = rate.max(1) as f64;
        let bucket = self.buckets.entry(tenant.clone()).or_insert(Bucket { tokens: rate, last_ms: now_ms });
        let elapsed = now_ms.saturating_sub(bucket.last_ms) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.last_ms = bucket.last_ms.max(now_ms);
        let need = events as f64;
        if need <= bucket.tokens {
            bucket.tokens -= need;
            Ok(())
        } else {
            let wait = (need - bucket.tokens) / rate;
            Err(OverRate::RetryIn(wait.ceil().max(1.0) as u64))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_at_the_rate_and_caps_the_burst() {
        let t = TenantId::parse("t").unwrap();
        let mut l = RateLimits::default();
        assert!(l.take(&t, 100, 100, 0).is_ok());
        assert_eq!(l.take(&t, 100, 1, 0), Err(OverRate::RetryIn(1)));
        assert!(l.take(&t, 100, 50, 500).is_ok());
        assert!(l.take(&t, 100, 1, 500).is_err());
        // Idle for long: only one second's burst.
        assert!(l.take(&t, 100, 100, 60_000).is_ok());
        assert!(l.take(&t, 100, 1, 60_000).is_err());
        // More than a second's worth never fits, whatever the bucket holds.
        assert_eq!(l.take(&t, 100, 101, 120_000), Err(OverRate::NeverFits));
        assert!(l.take(&t, 100, 100, 120_000).is_ok());
        // Other tenants are not affected.
        assert!(l.take(&TenantId::parse("u").unwrap(), 100, 100, 60_000).is_ok());
    }
}
