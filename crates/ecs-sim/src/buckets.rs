//! Realistic throttling: ECS's buckets as AWS keeps them — one per
//! category, account and Region, shared by every caller in the account —
//! from the table in the `api-limits` crate, the one the operator budgets
//! against. A call that finds its bucket empty is answered with
//! ThrottlingException, and counted against its category.
//!
//! The account is the access key that signed the call: the simulator checks
//! no signature and knows no account, and fake credentials (`test`) are all
//! one account, which is what tests of several replicas need.

use std::collections::BTreeMap;

use api_limits::{Category, Service};
use serde::{Deserialize, Serialize};

/// Settings of the realistic mode (`throttle.realistic` in `/_sim/config`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RealisticThrottle {
    /// Refill rates are multiplied by this, for runs on scaled time (a
    /// scenario whose tasks start 20 times faster refills 20 times faster
    /// too); bucket sizes stay as published. 1 by default.
    #[serde(default = "one")]
    pub time_scale: f64,
}

fn one() -> f64 {
    1.0
}

impl Default for RealisticThrottle {
    fn default() -> Self {
        Self { time_scale: 1.0 }
    }
}

impl RealisticThrottle {
    pub fn problems(&self) -> Vec<String> {
        if self.time_scale > 0.0 && self.time_scale.is_finite() {
            Vec::new()
        } else {
            vec![format!(
                "throttle.realistic.timeScale: {} must be more than 0",
                self.time_scale
            )]
        }
    }
}

/// Who a bucket belongs to, and which it is.
type Key = (String, String, &'static str);

/// The levels of every bucket drawn on so far.
#[derive(Default)]
pub struct AccountBuckets {
    levels: BTreeMap<Key, (f64, f64)>,
}

/// The category an operation of the simulator's draws from. ECS operations
/// the table does not list (none the simulator serves today) draw from
/// nothing. ELB's page puts every non-mutating (`Describe*`) action in one
/// bucket; the table names only those the operator calls, so the others
/// are added to it here. ELB's mutating actions draw from nothing.
pub fn category(service: Service, op: &str) -> Option<&'static Category> {
    api_limits::category_of(service, op).or_else(|| {
        (service == Service::ElasticLoadBalancing && op.starts_with("Describe"))
            .then(|| api_limits::named("load-balancing-read"))
            .flatten()
    })
}

impl AccountBuckets {
    /// Takes a token from the bucket of `category` in `account` and
    /// `region`; false when it is empty (the call is throttled).
    pub fn take(
        &mut self,
        settings: &RealisticThrottle,
        category: &'static Category,
        account: &str,
        region: &str,
        now: f64,
    ) -> bool {
        let burst = f64::from(category.burst);
        let refill = category.refill_per_second * settings.time_scale;
        let (level, at) = self
            .levels
            .entry((account.to_string(), region.to_string(), category.name))
            .or_insert((burst, now));
        *level = (*level + (now - *at).max(0.0) * refill).min(burst);
        *at = now;
        if *level >= 1.0 {
            *level -= 1.0;
            true
        } else {
            false
        }
    }

    pub fn clear(&mut self) {
        self.levels.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modify() -> &'static Category {
        category(Service::Ecs, "UpdateService").unwrap()
    }

    #[test]
    fn a_category_is_one_bucket_per_account_and_region() {
        let mut b = AccountBuckets::default();
        let s = RealisticThrottle::default();
        let read = category(Service::Ecs, "ListTasks").unwrap();
        assert_eq!(category(Service::Ecs, "DescribeTasks"), Some(read));
        // ListTasks and DescribeTasks drain one bucket of 100.
        for i in 0..100 {
            let c = if i % 2 == 0 {
                "ListTasks"
            } else {
                "DescribeTasks"
            };
            assert!(b.take(&s, category(Service::Ecs, c).unwrap(), "a", "r", 0.0));
        }
        assert!(!b.take(&s, read, "a", "r", 0.0));
        // Another account, another Region: their own buckets.
        assert!(b.take(&s, read, "b", "r", 0.0));
        assert!(b.take(&s, read, "a", "other", 0.0));
        // 20 a second refill it.
        assert!(b.take(&s, read, "a", "r", 0.05));
    }

    #[test]
    fn every_elb_describe_action_shares_the_published_read_bucket() {
        let read = api_limits::named("load-balancing-read");
        for op in [
            "DescribeTargetHealth",
            "DescribeTargetGroupAttributes",
            "DescribeListeners",
        ] {
            assert_eq!(category(Service::ElasticLoadBalancing, op), read, "{op}");
        }
        assert_eq!(
            category(Service::ElasticLoadBalancing, "RegisterTargets"),
            None
        );
        assert_eq!(category(Service::Ecs, "DescribeWhatever"), None);
    }

    #[test]
    fn service_modify_refills_at_five_a_second_scaled_by_the_time_scale() {
        let mut b = AccountBuckets::default();
        let s = RealisticThrottle::default();
        for _ in 0..50 {
            assert!(b.take(&s, modify(), "a", "r", 0.0));
        }
        assert!(!b.take(&s, modify(), "a", "r", 0.1));
        assert!(b.take(&s, modify(), "a", "r", 0.2));
        let fast = RealisticThrottle { time_scale: 20.0 };
        let mut b = AccountBuckets::default();
        for _ in 0..50 {
            assert!(b.take(&fast, modify(), "a", "r", 0.0));
        }
        // 100 a second: a token every 10 ms.
        assert!(b.take(&fast, modify(), "a", "r", 0.011));
        assert!(!b.take(&fast, modify(), "a", "r", 0.011));
    }
}
