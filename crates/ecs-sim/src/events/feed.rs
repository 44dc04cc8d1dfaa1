//! The event feed's faults and its counts, apart from any I/O: each event
//! emitted is dropped, duplicated, held back (`delay`) and shuffled
//! (`reorder`) as configured, by decisions drawn from the feed's own
//! generator, seeded from the simulator's seed, so a run's decisions depend
//! only on the sequence of events. What is due leaves through `release`.

use serde::Serialize;

/// The feed's fault settings (`events` in `/_sim/config`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    pub drop: f64,
    pub duplicate: f64,
    /// Seconds each event is held before it is sent.
    pub delay: f64,
    /// Each event is held a further random time up to this, so events
    /// leave out of the order they happened in; 0 keeps the order.
    pub reorder_window: f64,
    /// Nothing is sent: every event emitted counts as dropped.
    pub silent: bool,
}

/// What the feed did so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Events that happened (before faults).
    pub emitted: u64,
    /// Dropped by the `drop` fault or because the feed is silent.
    pub dropped: u64,
    /// Extra copies made by the `duplicate` fault.
    pub duplicated: u64,
    /// Copies that left after a copy of a later event.
    pub reordered: u64,
    /// Copies handed to the sender (which counts `sent` and `failed`).
    pub released: u64,
    /// Copies lost because the sender's queue was full.
    pub overflowed: u64,
}

struct Held {
    due: f64,
    sequence: u64,
    body: String,
}

/// Events on their way, and the decisions made about them.
pub struct Feed {
    pub faults: Faults,
    pub counts: Counts,
    rng: fastrand::Rng,
    held: Vec<Held>,
    next_sequence: u64,
    highest_released: Option<u64>,
}

impl Feed {
    pub fn new(seed: u64) -> Self {
        Self {
            faults: Faults::default(),
            counts: Counts::default(),
            // Its own generator: the feed's decisions do not shift the
            // simulator's other random choices, nor theirs the feed's.
            rng: fastrand::Rng::with_seed(seed ^ 0x6576_656e_7473),
            held: Vec::new(),
            next_sequence: 0,
            highest_released: None,
        }
    }

    /// An event happened at `at`: decides its fate and holds its copies.
    pub fn push(&mut self, body: String, at: f64) {
        self.counts.emitted += 1;
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let (drop, duplicate) = (self.rng.f64(), self.rng.f64());
        if self.faults.silent || drop < self.faults.drop {
            self.counts.dropped += 1;
            return;
        }
        let copies = if duplicate < self.faults.duplicate {
            self.counts.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let extra = self.rng.f64() * self.faults.reorder_window;
            self.held.push(Held {
                due: at + self.faults.delay + extra,
                sequence,
                body: body.clone(),
            });
        }
    }

    /// The copies due by `now`, in the order they are due.
    pub fn release(&mut self, now: f64) -> Vec<String> {
        if self.held.is_empty() {
            return Vec::new();
        }
        let mut due: Vec<Held> = Vec::new();
        let mut kept = Vec::new();
        for h in self.held.drain(..) {
            if h.due <= now {
                due.push(h);
            } else {
                kept.push(h);
            }
        }
        self.held = kept;
        due.sort_by(|a, b| a.due.total_cmp(&b.due).then(a.sequence.cmp(&b.sequence)));
        let mut out = Vec::with_capacity(due.len());
        for h in due {
            if self.highest_released.is_some_and(|hi| h.sequence < hi) {
                self.counts.reordered += 1;
            }
            self.highest_released = Some(
                self.highest_released
                    .map_or(h.sequence, |hi| hi.max(h.sequence)),
            );
            self.counts.released += 1;
            out.push(h.body);
        }
        out
    }

    /// Copies still held back.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, faults: Faults, n: usize) -> (Counts, Vec<String>) {
        let mut feed = Feed::new(seed);
        feed.faults = faults;
        for i in 0..n {
            feed.push(format!("e{i}"), i as f64 * 0.01);
        }
        let out = feed.release(f64::MAX);
        (feed.counts.clone(), out)
    }

    #[test]
    fn a_seed_decides_the_same_drops_duplicates_and_order() {
        let faults = Faults {
            drop: 0.2,
            duplicate: 0.2,
            reorder_window: 0.5,
            ..Faults::default()
        };
        let a = run(7, faults.clone(), 1000);
        let b = run(7, faults.clone(), 1000);
        assert_eq!(a, b, "same seed, same fate");
        let (counts, out) = &a;
        assert!((150..250).contains(&counts.dropped), "{counts:?}");
        assert!((120..220).contains(&counts.duplicated), "{counts:?}");
        assert!(counts.reordered > 100, "{counts:?}");
        assert_eq!(
            out.len() as u64,
            counts.emitted - counts.dropped + counts.duplicated
        );
        assert_eq!(counts.released, out.len() as u64);
        assert_ne!(run(8, faults, 1000).1, a.1, "another seed, another fate");
    }

    #[test]
    fn a_perfect_feed_keeps_order_and_a_silent_one_sends_nothing() {
        let (counts, out) = run(1, Faults::default(), 50);
        assert_eq!(out, (0..50).map(|i| format!("e{i}")).collect::<Vec<_>>());
        assert_eq!(
            (counts.dropped, counts.duplicated, counts.reordered),
            (0, 0, 0)
        );
        let silent = Faults {
            silent: true,
            ..Faults::default()
        };
        let (counts, out) = run(1, silent, 50);
        assert!(out.is_empty());
        assert_eq!(counts.dropped, 50);
    }

    #[test]
    fn a_delay_holds_events_until_they_are_due() {
        let mut feed = Feed::new(1);
        feed.faults.delay = 2.0;
        feed.push("a".into(), 1.0);
        assert!(feed.release(2.9).is_empty());
        assert_eq!(feed.held(), 1);
        assert_eq!(feed.release(3.0), vec!["a".to_string()]);
    }
}
