//! Sharing the work between replicas: how many are live, and which records
//! this one should hold so that each holds a fair part of the active ones.
//!
//! Without this, whoever lists first takes every due record and a replica
//! that joins later finds nothing free until leases run out. With it, each
//! replica aims at `ceil(active / live)` records: it claims free ones only up
//! to that, and gives back (between steps) the ones beyond it, so a replica
//! that joins or leaves is balanced within a poll or two — well inside a
//! lease duration. Handing a record over mid-run is safe: every step is
//! decided from what is observed, so the next holder resumes exactly there.
//!
//! The live count comes from the replicas' heartbeats in the store
//! ([`crate::store::Store::heartbeat`]), and is never less than the replicas
//! seen holding leases (one of an older version beats no heartbeat). Each
//! replica also spends its part of the account's API share by this count.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::store::Lease;

/// Who holds a listed record's lease, as this replica sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Holder {
    /// This replica, by its own clock.
    Me,
    /// Another replica, whose lease has not run out.
    Other,
    /// Nobody, or a lease that ran out.
    Free,
}

/// How many replicas are live: those the heartbeats name, those holding
/// unexpired leases, and this one — whichever count is the largest.
pub(crate) fn live_replicas<'a>(
    heartbeats: &'a [String],
    leases: impl IntoIterator<Item = &'a Lease>,
    me: &'a str,
    now: DateTime<Utc>,
) -> usize {
    let mut names: BTreeSet<&str> = heartbeats.iter().map(String::as_str).collect();
    names.extend(
        leases
            .into_iter()
            .filter(|l| l.expires_at > now)
            .map(|l| l.holder.as_str()),
    );
    names.insert(me);
    names.len()
}

/// What this replica should do this tick about its part of the records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The records it aims to hold: `ceil(records / replicas)`.
    pub(crate) fair: usize,
    /// How many free records it may claim now.
    pub(crate) may_take: usize,
    /// How many of the records it holds are beyond its part and a little
    /// slack (a tenth, at least one), to give back (the newest it is not
    /// stepping, so the oldest stay put).
    pub(crate) give_back: usize,
}

/// The plan for a replica among `replicas` live ones, given who holds each
/// listed record (in listing order, oldest first).
pub(crate) fn plan(replicas: usize, holders: &[Holder]) -> Plan {
    let fair = holders.len().div_ceil(replicas.max(1));
    let mine = holders.iter().filter(|h| **h == Holder::Me).count();
    // A little over its part is kept: records finishing one by one would
    // otherwise hand a record over at nearly every finish, each hand-over
    // costing the new holder a fresh look.
    let slack = (fair / 10).max(1);
    Plan {
        fair,
        may_take: fair.saturating_sub(mine),
        give_back: mine.saturating_sub(fair + slack),
    }
}

/// [`plan`] for two classes of records apart: those at work (first on
/// their service, `at_work[i]`) and those queued behind one. Each replica
/// takes a fair part of each, so the steps are shared and not only the
/// records: counted together, the first replica to list could take every
/// record at work and leave the others only queued ones. Indexed by class
/// (`[queued, at work]`).
pub(crate) fn plans(replicas: usize, holders: &[Holder], at_work: &[bool]) -> [Plan; 2] {
    let of = |class: bool| {
        let holders: Vec<Holder> = holders
            .iter()
            .zip(at_work)
            .filter(|(_, w)| **w == class)
            .map(|(h, _)| *h)
            .collect();
        plan(replicas, &holders)
    };
    [of(false), of(true)]
}

#[cfg(test)]
mod tests {
    use super::Holder::{Free, Me, Other};
    use super::*;

    fn leased(holder: &str, expires_in: i64, now: DateTime<Utc>) -> Lease {
        Lease {
            holder: holder.into(),
            expires_at: now + chrono::Duration::seconds(expires_in),
        }
    }

    #[test]
    fn live_replicas_counts_heartbeats_leases_and_itself_once_each() {
        let now = Utc::now();
        let beats = vec!["a".to_string(), "b".to_string()];
        let records = [
            leased("a", 10, now),
            leased("c", 10, now),
            leased("gone", 0, now),
        ];
        // a and b beat, c holds a lease without beating, gone's ran out, me.
        assert_eq!(live_replicas(&beats, &records, "me", now), 4);
        assert_eq!(live_replicas(&[], &[], "me", now), 1);
        assert_eq!(live_replicas(&["me".into()], &[], "me", now), 1);
    }

    #[test]
    fn a_lone_replica_takes_everything() {
        let p = plan(1, &[Free, Free, Free]);
        assert_eq!((p.fair, p.may_take), (3, 3));
        assert_eq!(p.give_back, 0);
    }

    #[test]
    fn a_replica_that_holds_everything_gives_back_down_to_its_part_when_another_joins() {
        let p = plan(2, &[Me, Me, Me, Me, Me]);
        assert_eq!(p.fair, 3);
        assert_eq!(p.may_take, 0);
        // Down to its part and one of slack.
        assert_eq!(p.give_back, 1);
        let big = plan(2, &[Me; 100]);
        assert_eq!((big.fair, big.give_back), (50, 45));
        // The newcomer takes what is free, up to its part.
        let q = plan(2, &[Other, Other, Other, Free, Free]);
        assert_eq!((q.fair, q.may_take), (3, 3));
    }

    #[test]
    fn three_replicas_each_aim_at_a_third_and_nobody_is_left_out() {
        for n in 0..40 {
            let fair = plan(3, &vec![Free; n]).fair;
            assert!(3 * fair >= n, "{n} records: 3 × {fair} must cover them");
            assert!(fair <= n.div_ceil(3));
        }
    }

    #[test]
    fn the_records_at_work_are_shared_apart_from_the_queued_ones() {
        // Three services, ten requests each, oldest first: the three at work
        // come first in the listing.
        let holders = vec![Free; 30];
        let at_work: Vec<bool> = (0..30).map(|i| i < 3).collect();
        let [queued, working] = plans(3, &holders, &at_work);
        assert_eq!((working.fair, working.may_take), (1, 1));
        assert_eq!((queued.fair, queued.may_take), (9, 9));
        // Counted together, one replica's part (10) would be all three at work.
        // And one over its part is kept, two over is not.
        assert_eq!(plan(3, &[Me, Me, Me, Free, Free, Free]).give_back, 0);
        assert_eq!(plan(3, &[Me, Me, Me, Me, Free, Free]).give_back, 1);
        assert_eq!(plan(3, &holders).fair, 10);
    }

    #[test]
    fn when_a_replica_leaves_the_others_take_up_its_records() {
        // Its leases ran out (Free) and it is gone from the heartbeats.
        let p = plan(2, &[Me, Me, Other, Other, Free, Free]);
        assert_eq!((p.fair, p.may_take, p.give_back), (3, 1, 0));
    }
}
