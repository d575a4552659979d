//! Bounds on money, so that no sum Tally computes can wrap.
//!
//! Costs are integer micros of the tenant's currency. One click costs at
//! most [`MAX_COST_MICROS`] (1,000 units: above any cost per click an ad
//! network charges); a click above it is rejected on its own, with a
//! reason, at every entry (JSON, beacon, signed links), and a batch that
//! carries one is refused by the core.
//!
//! Every spend sum (rows, rollups, billing statements) is a 64-bit integer,
//! signed where adjustments can be negative: `i64::MAX` / `MAX_COST_MICROS`
//! is 9.2 billion clicks at the maximum cost in any one sum. Billing sums per
//! (tenant, hour, ad), and at the documented peak of 1M clicks/s a whole
//! fleet takes 3.6 billion clicks an hour, so no billing sum can overflow
//! even if every click cost the maximum. Series over long ranges sum more
//! clicks, but only real costs: 9.2 billion maximum-cost clicks is 9.2
//! trillion units in one answer.

/// The most one click may cost, in micros (1,000 currency units).
pub const MAX_COST_MICROS: u64 = 1_000_000_000;

/// Clicks at the maximum cost that fit any signed 64-bit spend sum.
pub const MAX_COST_CLICKS_PER_SUM: u64 = i64::MAX as u64 / MAX_COST_MICROS;

/// The per-click check every entry applies, with the text the client gets.
pub fn check_cost(cost_micros: u64) -> Result<u64, String> {
    if cost_micros > MAX_COST_MICROS {
        return Err(format!("cost_micros {cost_micros} is above the per-click maximum of {MAX_COST_MICROS} (1,000 currency units)"));
    }
    Ok(cost_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_of_peak_traffic_at_the_maximum_cost_fits_a_billing_sum() {
        let peak_clicks_per_hour: u64 = 1_000_000 * 3600;
        assert!(peak_clicks_per_hour < MAX_COST_CLICKS_PER_SUM);
        assert!((peak_clicks_per_hour as i64).checked_mul(MAX_COST_MICROS as i64).is_some());
        assert_eq!(check_cost(MAX_COST_MICROS), Ok(MAX_COST_MICROS));
        assert!(check_cost(MAX_COST_MICROS + 1).unwrap_err().contains("above the per-click maximum"));
        assert!(check_cost(u64::MAX).is_err());
    }
}
