//! What one replica keeps about each active record between ticks, in one
//! map of one struct: the service its spec names, when it is due, what it
//! was when last stepped, what its run has taught of its tasks' timings, and
//! whether a look or a step of it is under way. The leases are kept apart,
//! in [`crate::leases::Leases`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::aws;
use crate::fence::Fence;
use crate::request::pacing::Pace;
use crate::request::spec::{RecycleSpec, listed_service};
use crate::request::status::RecycleStatus;
use crate::store::{ListedRecord, StoredRecord};

/// A service, as (cluster, service): shared by every tick's tables of it.
pub(super) type ServiceKey = Arc<(String, String)>;

#[derive(Default)]
pub(super) struct Tracked {
    /// (version, the service its spec names, `None` if the spec cannot be
    /// read) as last listed: a spec is parsed once a version, not once a tick.
    pub(super) service: Option<(u64, Option<ServiceKey>)>,
    /// When to reconcile it next.
    pub(super) due: Option<Instant>,
    /// (version, request it waits for) when last stepped: a change wakes it at once.
    pub(super) seen: Option<(u64, Option<String>)>,
    /// What its run has learnt of its tasks' timings, once it has run: a
    /// box, so that the many records waiting their turn carry a pointer.
    pace: Option<Box<Pace>>,
    /// A look or a step of it is under way: later ticks leave it alone.
    pub(super) busy: bool,
    /// Looks that ended at the tasks since its status was last written:
    /// their counts ride on the next write (`request::timeline`).
    pub(super) looks: Vec<(
        chrono::DateTime<chrono::Utc>,
        crate::request::timeline::Counts,
    )>,
    /// Looks in a row that could not see its service whole.
    pub(super) failed_looks: u32,
    /// An event's wake that came while it was under way: its next look
    /// comes no later (see [`Records::wake`]).
    woken: Option<Instant>,
}

impl Tracked {
    /// What its run has learnt of its tasks' timings (nothing yet, at first).
    pub(super) fn pace(&mut self) -> &mut Pace {
        self.pace.get_or_insert_default()
    }
}

#[derive(Default)]
pub(super) struct Records(Mutex<HashMap<String, Tracked>>);

impl Records {
    /// Runs `f` on the record's entry, made if need be.
    pub(super) fn with<T>(&self, name: &str, f: impl FnOnce(&mut Tracked) -> T) -> T {
        f(self.0.lock().entry(name.to_string()).or_default())
    }

    /// Runs `f` on the record's entry if there is one.
    pub(super) fn peek<T>(&self, name: &str, f: impl FnOnce(Option<&Tracked>) -> T) -> T {
        f(self.0.lock().get(name))
    }

    /// The service `record`'s spec names, or `None` when the spec cannot be read.
    pub(super) fn service(&self, record: &ListedRecord) -> Option<ServiceKey> {
        self.with(&record.name, |t| match &t.service {
            Some((version, service)) if *version == record.version => service.clone(),
            _ => {
                let service = listed_service(&record.spec).map(Arc::new);
                t.service = Some((record.version, service.clone()));
                service
            }
        })
    }

    pub(super) fn requeue(&self, name: &str, after: Duration) {
        self.with(name, |t| {
            let at = Instant::now() + after;
            t.due = Some(t.woken.take().map_or(at, |w| w.min(at)));
        });
    }

    /// ECS's events say to look at `name` at `at`: that is its next look,
    /// sooner or later than the one planned (an event that shows a step
    /// done makes the look planned in case it was not needless). Under way,
    /// the step's own requeue comes no later than `at`. A record no
    /// longer kept is left alone.
    pub(super) fn wake(&self, name: &str, at: Instant) {
        if let Some(t) = self.0.lock().get_mut(name) {
            if t.busy {
                t.woken = Some(t.woken.map_or(at, |w| w.min(at)));
            } else {
                t.due = Some(at);
            }
        }
    }

    /// Looks at `name` by `at` if nothing of it is under way (a step under
    /// way paces itself when it ends).
    pub(super) fn hurry(&self, name: &str, at: Instant) {
        if let Some(t) = self.0.lock().get_mut(name)
            && !t.busy
        {
            t.due = Some(t.due.map_or(at, |d| d.min(at)));
        }
    }

    pub(super) fn remember(&self, name: &str, version: u64, blocked_by: &Option<String>) {
        self.with(name, |t| t.seen = Some((version, blocked_by.clone())));
    }

    pub(super) fn forget(&self, name: &str) {
        self.0.lock().remove(name);
    }

    /// Keeps the records `keep` names, and any under way.
    pub(super) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.0.lock().retain(|name, t| t.busy || keep(name));
    }

    /// How many records have a look or a step under way.
    pub(super) fn under_way(&self) -> usize {
        self.0.lock().values().filter(|t| t.busy).count()
    }

    /// The first instant a record not under way is due.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.0
            .lock()
            .values()
            .filter(|t| !t.busy)
            .filter_map(|t| t.due)
            .min()
    }

    /// Marks `name` under way until the guard is dropped.
    pub(super) fn busy(self: &Arc<Self>, name: &str) -> Busy {
        self.with(name, |t| t.busy = true);
        Busy {
            records: self.clone(),
            name: name.to_string(),
        }
    }
}

/// Clears a record's `busy` mark when its look or step ends, however it ends.
pub(super) struct Busy {
    records: Arc<Records>,
    name: String,
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(t) = self.records.0.lock().get_mut(&self.name) {
            t.busy = false;
        }
    }
}

/// A record claimed for this tick, with what was read of it.
pub(super) struct Claimed {
    pub(super) record: StoredRecord,
    pub(super) spec: RecycleSpec,
    pub(super) status: RecycleStatus,
    pub(super) blocked_by: Option<String>,
    pub(super) clients: aws::Clients,
    pub(super) fence: Fence,
}
