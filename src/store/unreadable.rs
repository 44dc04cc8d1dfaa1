//! Items a store leaves out of its listings because it cannot read what
//! only the operator writes there (the version or the lease, so no
//! conditional write could be made safely), logged with backoff per item.
//!
//! Such an item stays as it is until a person fixes or deletes it, and the
//! loop lists every poll interval: logging it each time would be tens of
//! thousands of lines a day for one item. So each item is logged the first
//! time, then after a minute, then at doubling intervals up to an hour, each
//! line saying how many listings left it out since the one before.

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// The first repeat of an item's log comes this long after the first line.
const FIRST_REPEAT: Duration = Duration::from_secs(60);
/// The longest time between two lines about one item.
const LONGEST_SILENCE: Duration = Duration::from_secs(3600);

/// What has been logged of each unreadable item, by key.
#[derive(Debug, Default)]
pub struct Unreadable {
    items: Mutex<HashMap<String, Logged>>,
}

#[derive(Debug)]
struct Logged {
    /// No line about the item before this.
    quiet_until: Instant,
    /// The silences after each line to come.
    silences: ExponentialBackoff,
    /// Listings that left it out since its last line.
    unsaid: u64,
}

impl Unreadable {
    /// A listing of `store` (the table or the file) left out `key`, whose
    /// item cannot be read for `reason`: logged now if it is time to.
    pub fn left_out(&self, store: &str, key: &str, reason: &str) {
        match self.due(key, Instant::now()) {
            Some(0) => tracing::warn!(
                store,
                key,
                "left out an item the store cannot read: {reason}; it is not worked on or \
                 written until it is fixed or deleted (logged again after 1m, then less often)"
            ),
            Some(unsaid) => tracing::warn!(
                store,
                key,
                left_out_since_last_log = unsaid,
                "still leaving out an item the store cannot read: {reason}"
            ),
            None => {}
        }
    }

    /// Whether to log `key` at `now`: `Some(listings left out since the
    /// last line)` when it is time, `None` while it is quiet.
    fn due(&self, key: &str, now: Instant) -> Option<u64> {
        let mut items = self.items.lock();
        let Some(item) = items.get_mut(key) else {
            let mut silences = ExponentialBuilder::new()
                .with_min_delay(FIRST_REPEAT)
                .with_factor(2.0)
                .with_max_delay(LONGEST_SILENCE)
                .without_max_times()
                .build();
            let quiet_until = now + silences.next().unwrap_or(LONGEST_SILENCE);
            items.insert(
                key.to_string(),
                Logged {
                    quiet_until,
                    silences,
                    unsaid: 0,
                },
            );
            return Some(0);
        };
        if now < item.quiet_until {
            item.unsaid += 1;
            return None;
        }
        item.quiet_until = now + item.silences.next().unwrap_or(LONGEST_SILENCE);
        Some(std::mem::take(&mut item.unsaid) + 1)
    }

    /// After a whole listing: the items it covers (`covers`) that it did not
    /// leave out this time (`left_out`) were fixed or deleted, and are
    /// forgotten, so that one breaking again is logged at once.
    pub fn settle(&self, covers: impl Fn(&str) -> bool, left_out: &HashSet<String>) {
        self.items
            .lock()
            .retain(|key, _| !covers(key) || left_out.contains(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_is_logged_once_then_at_doubling_intervals_up_to_an_hour() {
        let log = Unreadable::default();
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        // Listed every 2 s (the default poll) for a day: which listings log?
        let mut logged = Vec::new();
        for tick in 0..(86_400 / 2) {
            if let Some(unsaid) = log.due("RecycleRequest/bad", at(tick * 2)) {
                logged.push((tick * 2, unsaid));
            }
        }
        let times: Vec<u64> = logged.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            &times[..9],
            [0, 60, 180, 420, 900, 1860, 3780, 7380, 10980],
            "once, then after 1m, 2m, 4m, ... up to an hour"
        );
        assert!(
            times.windows(2).all(|w| w[1] - w[0] <= 3600),
            "never silent longer than an hour: {times:?}"
        );
        assert!(logged.len() < 40, "{} lines in a day", logged.len());
        // Each line counts the listings since the one before it.
        assert_eq!(logged[0].1, 0);
        assert_eq!(logged[1].1, 30, "60 s of listings every 2 s");
        let counted: u64 = logged.iter().map(|(_, n)| n).sum::<u64>() + 1;
        let last = logged.last().unwrap().0;
        assert_eq!(
            counted,
            last / 2 + 1,
            "every listing up to the last line, once"
        );
    }

    #[test]
    fn items_are_logged_apart_and_a_fixed_one_is_forgotten() {
        let log = Unreadable::default();
        let t0 = Instant::now();
        assert_eq!(log.due("RecycleRequest/a", t0), Some(0));
        assert_eq!(log.due("RecycleRequest/b", t0), Some(0), "its own backoff");
        assert_eq!(log.due("RecycleRequest/a", t0), None);
        // A listing of requests no longer leaves out "a"; a listing of
        // schedules says nothing about requests.
        let only_b = HashSet::from(["RecycleRequest/b".to_string()]);
        log.settle(|k| k.starts_with("RecycleSchedule/"), &HashSet::new());
        assert_eq!(log.due("RecycleRequest/a", t0), None);
        log.settle(|k| k.starts_with("RecycleRequest/"), &only_b);
        assert_eq!(log.due("RecycleRequest/a", t0), Some(0), "broken again");
        assert_eq!(log.due("RecycleRequest/b", t0), None, "still quiet");
    }
}
