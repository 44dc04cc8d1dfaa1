//! Records of an unknown kind. Any client may put an item into the table
//! (or edit the embedded store's file), so an item of kind `Widget` or
//! `RecycleRequests` can land in the active index, where no listing of a
//! kind ever returns it. [`report`], called by the reconciler on each tick,
//! marks each such record Failed with a message naming its kind and the
//! known kind it looks like a slip of, so the person who wrote it learns
//! why nothing happens, and it leaves the index. Its spec is kept as written.
//!
//! A look reads the whole active index once more, so it is made at most
//! once a minute: a person's typo reported within a minute is soon enough,
//! and a poll every 2 s would otherwise double the loop's reads.

use parking_lot::Mutex;
use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use crate::request::status::{Phase, RecycleStatus};
use crate::store::{Kind, Store, StoreError, Stray};
use crate::validate::nearest;

/// The least time between two looks for strays.
const LOOK_EVERY: Duration = Duration::from_secs(60);

/// What [`report`] remembers between ticks: when it may look next, and the
/// strays whose failed write it has logged already (each is logged once).
#[derive(Debug, Default)]
pub(super) struct Reported {
    inner: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    next_look: Option<Instant>,
    logged: HashSet<String>,
}

impl Reported {
    fn lock(&self) -> parking_lot::MutexGuard<'_, Memory> {
        self.inner.lock()
    }

    /// Whether a look is due now; if so, the next one is a minute away.
    fn look_now(&self) -> bool {
        let now = Instant::now();
        let mut memory = self.lock();
        if memory.next_look.is_some_and(|at| now < at) {
            return false;
        }
        memory.next_look = Some(now + LOOK_EVERY);
        true
    }
}

/// Looks for records of an unknown kind, if a minute has passed since the
/// last look, and marks each Failed. A write that fails is tried again at
/// the next look and logged once per record; one refused because the
/// record changed (or went) since it was listed is simply looked at again.
pub(super) async fn report<S: Store>(store: &S, reported: &Reported) {
    if !reported.look_now() {
        return;
    }
    let strays = match store.list_strays().await {
        Ok(strays) => strays,
        Err(e) => {
            tracing::warn!(error = %e, "could not look for records of an unknown kind; trying again in a minute");
            return;
        }
    };
    // A stray no longer listed was fixed or deleted: forgotten, so that it
    // is logged again if it comes back.
    let listed: HashSet<&str> = strays.iter().map(|s| s.key.as_str()).collect();
    reported
        .lock()
        .logged
        .retain(|key| listed.contains(key.as_str()));
    for stray in &strays {
        let message = message(stray);
        let status = failed(&message);
        match store.fail_stray(stray, status).await {
            Ok(_) => {
                reported.lock().logged.remove(&stray.key);
                tracing::warn!(key = %stray.key, kind = %stray.kind, "record of an unknown kind marked Failed: {message}");
            }
            Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => {}
            Err(e) => {
                if reported.lock().logged.insert(stray.key.clone()) {
                    tracing::warn!(
                        key = %stray.key,
                        kind = %stray.kind,
                        error = %e,
                        "could not mark a record of an unknown kind Failed ({message}); it stays in the active index and is tried again each minute without another log"
                    );
                }
            }
        }
    }
}

/// Why a stray is not worked on, with the known kind it looks like a slip of.
pub(super) fn message(stray: &Stray) -> String {
    let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    let reads = match known.split_last() {
        Some((last, rest)) if !rest.is_empty() => {
            format!("the operator reads {} and {last}", rest.join(", "))
        }
        _ => format!("the operator reads {}", known.join(" and ")),
    };
    if !stray.key.contains('/') {
        return format!("key {:?} is not \"<Kind>/<name>\"; {reads}", stray.key);
    }
    match nearest(&stray.kind, &known) {
        Some(k) => format!("unknown kind {:?} (did you mean {k}?); {reads}", stray.kind),
        None => format!("unknown kind {:?}; {reads}", stray.kind),
    }
}

/// The status the operator writes for a record it fails: phase, message,
/// the transition as an event and when it finished.
fn failed(message: &str) -> serde_json::Value {
    let mut status = RecycleStatus::default();
    status.transition(Utc::now(), Phase::Failed, message);
    serde_json::to_value(&status)
        .unwrap_or_else(|_| serde_json::json!({"phase": "Failed", "message": message}))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::DateTime;
    use serde_json::Value;

    use super::*;
    use crate::store::{StatusWrite, StoreResult, StoredRecord};

    fn stray(key: &str) -> Stray {
        Stray {
            key: key.into(),
            kind: key.split('/').next().unwrap_or_default().into(),
            version: 0,
            created_at: None,
        }
    }

    #[test]
    fn the_message_names_the_kind_and_the_one_it_looks_like() {
        assert_eq!(
            message(&stray("RecycleRequests/web")),
            "unknown kind \"RecycleRequests\" (did you mean RecycleRequest?); the operator reads RecycleRequest, RecycleSchedule and RecyclePolicy"
        );
        assert_eq!(
            message(&stray("recycleschedule/nightly")),
            "unknown kind \"recycleschedule\" (did you mean RecycleSchedule?); the operator reads RecycleRequest, RecycleSchedule and RecyclePolicy"
        );
        assert_eq!(
            message(&stray("Widget/w")),
            "unknown kind \"Widget\"; the operator reads RecycleRequest, RecycleSchedule and RecyclePolicy"
        );
        assert_eq!(
            message(&stray("web-rotate")),
            "key \"web-rotate\" is not \"<Kind>/<name>\"; the operator reads RecycleRequest, RecycleSchedule and RecyclePolicy"
        );
    }

    #[test]
    fn the_failed_status_reads_as_the_operators_own() {
        let status: RecycleStatus = serde_json::from_value(failed("unknown kind")).unwrap();
        assert_eq!(status.phase, Phase::Failed);
        assert_eq!(status.message, "unknown kind");
        assert!(status.finished_at.is_some());
        assert_eq!(status.events.len(), 1);
    }

    /// A store of strays only: what `report` lists and writes, with writes
    /// that fail while `refuse` is set.
    #[derive(Default)]
    struct Strays {
        listed: Mutex<Vec<Stray>>,
        written: Mutex<Vec<(String, Value)>>,
        looks: Mutex<usize>,
        refuse: Mutex<bool>,
    }

    impl Store for Strays {
        async fn list_strays(&self) -> StoreResult<Vec<Stray>> {
            *self.looks.lock() += 1;
            Ok(self.listed.lock().clone())
        }

        async fn fail_stray(&self, stray: &Stray, status: Value) -> StoreResult<u64> {
            if *self.refuse.lock() {
                return Err(StoreError::Unavailable("refused".into()));
            }
            self.listed.lock().retain(|s| s.key != stray.key);
            self.written.lock().push((stray.key.clone(), status));
            Ok(stray.version + 1)
        }

        async fn create(
            &self,
            _: Kind,
            _: &str,
            _: Value,
            _: DateTime<Utc>,
        ) -> StoreResult<StoredRecord> {
            unreachable!("report only lists and fails strays")
        }
        async fn get(&self, _: Kind, _: &str) -> StoreResult<Option<StoredRecord>> {
            unreachable!()
        }
        async fn list_active(&self, _: Kind) -> StoreResult<Vec<StoredRecord>> {
            unreachable!()
        }
        async fn list_all(&self, _: Kind) -> StoreResult<Vec<StoredRecord>> {
            unreachable!()
        }
        async fn update_spec(
            &self,
            _: Kind,
            _: &str,
            _: u64,
            _: Value,
        ) -> StoreResult<StoredRecord> {
            unreachable!()
        }
        async fn write_status(&self, _: Kind, _: &str, _: StatusWrite) -> StoreResult<u64> {
            unreachable!()
        }
        async fn acquire_lease(
            &self,
            _: Kind,
            _: &str,
            _: &str,
            _: DateTime<Utc>,
            _: DateTime<Utc>,
        ) -> StoreResult<bool> {
            unreachable!()
        }
        async fn release_lease(&self, _: Kind, _: &str, _: &str) -> StoreResult<()> {
            unreachable!()
        }
        async fn delete(&self, _: Kind, _: &str) -> StoreResult<()> {
            unreachable!()
        }
        async fn heartbeat(
            &self,
            _: &str,
            _: DateTime<Utc>,
            _: DateTime<Utc>,
        ) -> StoreResult<Vec<String>> {
            unreachable!()
        }
    }

    /// What `report` logs while `future` runs.
    async fn logs_of(future: impl std::future::Future<Output = ()>) -> String {
        use tracing::instrument::WithSubscriber;
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Sink(sink.clone()))
            .with_ansi(false)
            .finish();
        future.with_subscriber(subscriber).await;
        let bytes = buffer.lock().clone();
        String::from_utf8(bytes).unwrap()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_stray_is_failed_with_its_message_and_looks_come_a_minute_apart() {
        let store = Strays::default();
        *store.listed.lock() = vec![stray("RecycleRequests/web"), stray("Widget/w")];
        let reported = Reported::default();
        let logs = logs_of(report(&store, &reported)).await;
        let written = store.written.lock().clone();
        assert_eq!(written.len(), 2);
        assert_eq!(written[0].0, "RecycleRequests/web");
        assert_eq!(written[0].1["phase"], "Failed");
        assert_eq!(
            written[0].1["message"],
            message(&stray("RecycleRequests/web"))
        );
        assert_eq!(logs.matches("marked Failed").count(), 2, "{logs}");
        assert!(logs.contains("did you mean RecycleRequest?"), "{logs}");

        // Every tick calls it; the store is asked once a minute.
        *store.listed.lock() = vec![stray("Gadget/g")];
        for _ in 0..10 {
            tokio::time::advance(Duration::from_secs(5)).await;
            report(&store, &reported).await;
        }
        assert_eq!(*store.looks.lock(), 1, "no look within the minute");
        tokio::time::advance(Duration::from_secs(10)).await;
        report(&store, &reported).await;
        assert_eq!(*store.looks.lock(), 2);
        assert_eq!(store.written.lock().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_fails_is_tried_at_each_look_and_logged_once_with_the_key() {
        let store = Strays::default();
        *store.listed.lock() = vec![stray("Widget/w")];
        *store.refuse.lock() = true;
        let reported = Reported::default();
        let logs = logs_of(async {
            for _ in 0..5 {
                report(&store, &reported).await;
                tokio::time::advance(LOOK_EVERY).await;
            }
        })
        .await;
        assert_eq!(*store.looks.lock(), 5);
        assert_eq!(logs.matches("could not mark").count(), 1, "{logs}");
        assert!(logs.contains("Widget/w"), "{logs}");
        // Once the write goes through, it is marked Failed after all.
        *store.refuse.lock() = false;
        report(&store, &reported).await;
        assert_eq!(store.written.lock().len(), 1);
        assert!(store.listed.lock().is_empty());
    }
}
