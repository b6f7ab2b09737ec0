//! Fault injection: a share of requests answered 429, 500 or slowly, webhooks dropped
//! or duplicated, and `createorders` failing for some orders of a batch. Shares are
//! probabilities drawn from the sandbox's seeded generator, so a run with the same
//! seed and the same requests meets the same faults.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Faults {
    /// Share of API requests answered 429 although the budget is not spent.
    pub rate_429: f64,
    /// Share of API requests answered 500 before doing anything.
    pub rate_500: f64,
    /// Share of API requests answered 500 *after* doing their work (the answer is
    /// lost, the effect is not: the case idempotency keys exist for).
    pub rate_500_after: f64,
    /// Share of API requests answered only after `slow_ms`.
    pub rate_slow: f64,
    pub slow_ms: u64,
    /// Share of webhook deliveries never sent.
    pub webhook_drop: f64,
    /// Share of webhook deliveries sent twice.
    pub webhook_duplicate: f64,
    /// Share of orders in a `createorders` batch refused with an error message.
    pub createorders_fail: f64,
    /// Only requests whose path starts with one of these are affected (all when empty).
    pub paths: Vec<String>,
    /// Only webhook deliveries of these events (`SHIP_NOTIFY`, `track`, ...) are
    /// dropped or duplicated (all when empty): "30 % of the carrier's scan webhooks
    /// lost" without losing any label notice.
    pub webhook_events: Vec<String>,
}

impl Faults {
    pub fn applies_to(&self, path: &str) -> bool {
        self.paths.is_empty() || self.paths.iter().any(|p| path.starts_with(p.as_str()))
    }

    /// Do the webhook faults apply to deliveries of `event`?
    pub fn applies_to_webhook(&self, event: &str) -> bool {
        self.webhook_events.is_empty() || self.webhook_events.iter().any(|e| e == event)
    }

    pub fn validate(&self) -> Result<(), String> {
        let shares = [
            ("rate_429", self.rate_429),
            ("rate_500", self.rate_500),
            ("rate_500_after", self.rate_500_after),
            ("rate_slow", self.rate_slow),
            ("webhook_drop", self.webhook_drop),
            ("webhook_duplicate", self.webhook_duplicate),
            ("createorders_fail", self.createorders_fail),
        ];
        for (name, share) in shares {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("{name} is {share}; a share must be between 0 and 1"));
            }
        }
        if self.slow_ms > 120_000 {
            return Err(format!("slow_ms is {}; keep it at most 120000", self.slow_ms));
        }
        Ok(())
    }
}
