//! What the campaign sees from outside while a schedule runs: the store
//! read every few tens of milliseconds (each record's lease, phase and
//! whether it still parses), and a journal of what the campaign did and
//! when (faults, records created, verbs run, replicas resumed). Times are on
//! the simulator's clock, so the checks can lay them beside its timeline.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ecs_recycler::store::any::AnyStore;
use ecs_recycler::store::{Kind, Store, StoredRecord};

/// Maps the wall clock onto the simulator's: `t = epoch seconds - zero`.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub zero: f64,
}

impl Clock {
    pub fn epoch_now() -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }

    /// Now, on the simulator's clock.
    pub fn now(&self) -> f64 {
        Self::epoch_now() - self.zero
    }

    pub fn from_epoch(&self, epoch: f64) -> f64 {
        epoch - self.zero
    }
}

/// A record's lease as the store held it: holder and expiry (simulator time).
pub type LeaseState = Option<(String, f64)>;

/// One record in one reading of the store.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    pub service: String,
    pub lease: LeaseState,
    pub phase: String,
}

/// One reading of the store: the state held at some instant between
/// `sent` and `received`.
#[derive(Clone, Debug)]
pub struct Reading {
    pub sent: f64,
    pub received: f64,
    pub records: BTreeMap<String, Seen>,
}

/// Something the campaign did, at `t`.
#[derive(Clone, Debug)]
pub struct Entry {
    pub t: f64,
    pub what: Act,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Act {
    /// A fault began (its description).
    FaultBegan(String),
    /// A fault was healed.
    FaultHealed(String),
    /// This replica (incarnation id) was sent SIGCONT.
    Resumed(String),
    Created(String),
    /// A verb on a request (`cancel r1`), and whether it worked.
    Verb(String, bool),
}

/// What the campaign saw and did during one schedule.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub readings: Vec<Reading>,
    /// Records that did not parse, with why (first time each).
    pub unreadable: BTreeMap<String, String>,
    /// Readings that failed, with the error (the store unanswering).
    pub failed_readings: usize,
    pub journal: Vec<Entry>,
}

/// The shared, growing account of a run.
#[derive(Clone, Default)]
pub struct Watch(Arc<Mutex<Observed>>);

impl Watch {
    pub fn note(&self, clock: &Clock, what: Act) {
        let t = clock.now();
        if let Ok(mut o) = self.0.lock() {
            o.journal.push(Entry { t, what });
        }
    }

    pub fn snapshot(&self) -> Observed {
        self.0.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Reads the store every `every` until the returned handle is aborted.
    pub fn read_store(
        &self,
        store: Arc<AnyStore>,
        clock: Clock,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let watch = self.clone();
        tokio::spawn(async move {
            loop {
                let sent = clock.now();
                let listed = store.list_all(Kind::RecycleRequest).await;
                let received = clock.now();
                watch.record(&clock, sent, received, listed);
                tokio::time::sleep(every).await;
            }
        })
    }

    fn record(
        &self,
        clock: &Clock,
        sent: f64,
        received: f64,
        listed: Result<Vec<StoredRecord>, ecs_recycler::store::StoreError>,
    ) {
        let Ok(mut o) = self.0.lock() else { return };
        let Ok(records) = listed else {
            o.failed_readings += 1;
            return;
        };
        let mut reading = Reading {
            sent,
            received,
            records: BTreeMap::new(),
        };
        for r in records {
            if let Some(why) = unreadable(&r) {
                o.unreadable.entry(r.name.clone()).or_insert(why);
            }
            let service = r
                .spec
                .as_ref()
                .ok()
                .and_then(|s| s["service"].as_str())
                .unwrap_or_default()
                .to_string();
            let lease = r.lease.as_ref().map(|l| {
                let epoch = l.expires_at.timestamp_millis() as f64 / 1000.0;
                (l.holder.clone(), clock.from_epoch(epoch))
            });
            let phase = r
                .status
                .as_ref()
                .and_then(|s| s["phase"].as_str())
                .unwrap_or("Pending")
                .to_string();
            reading.records.insert(
                r.name.clone(),
                Seen {
                    service,
                    lease,
                    phase,
                },
            );
        }
        o.readings.push(reading);
    }
}

/// Why a record does not read as the operator wrote it, if it does not.
fn unreadable(r: &StoredRecord) -> Option<String> {
    if let Err(e) = &r.spec {
        return Some(format!("spec: {e}"));
    }
    ecs_recycler::request_status(r.status.as_ref()).err()
}
