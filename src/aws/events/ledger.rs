//! Which events were already handled, in bounded memory. ECS sends each
//! event at least once and in any order: a task's events carry a
//! `version` that grows with every change, so a copy has the version last
//! seen (a duplicate) and an older one is stale; other events are known by
//! EventBridge's `id`, which the copies of one event share. The oldest
//! entries go first once the ledger is full: an event older than anything
//! kept is taken as new, which costs at most one look.

use std::collections::{HashMap, HashSet, VecDeque};

use super::parse::{About, Event};

/// Tasks whose newest version is kept.
const TASKS_KEPT: usize = 16_384;
/// Event ids kept.
const IDS_KEPT: usize = 4_096;

/// What the ledger makes of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    New,
    /// The same version of the task, or the same event, again.
    Duplicate,
    /// An older version of a task than one already handled.
    Stale,
}

impl Admit {
    /// The label of `ecs_recycler_events_ignored_total{reason}`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
        }
    }
}

#[derive(Default)]
pub(crate) struct Ledger {
    versions: HashMap<String, u64>,
    tasks: VecDeque<String>,
    ids: HashSet<String>,
    id_order: VecDeque<String>,
}

impl Ledger {
    /// Whether `event` is new, and if so remembers it.
    pub(crate) fn admit(&mut self, event: &Event) -> Admit {
        match &event.about {
            About::Task { arn, version, .. } => self.task(arn, *version),
            _ => self.id(&event.id),
        }
    }

    fn task(&mut self, arn: &str, version: u64) -> Admit {
        match self.versions.get_mut(arn) {
            Some(last) if version == *last => Admit::Duplicate,
            Some(last) if version < *last => Admit::Stale,
            Some(last) => {
                *last = version;
                Admit::New
            }
            None => {
                if self.tasks.len() == TASKS_KEPT
                    && let Some(oldest) = self.tasks.pop_front()
                {
                    self.versions.remove(&oldest);
                }
                self.tasks.push_back(arn.to_string());
                self.versions.insert(arn.to_string(), version);
                Admit::New
            }
        }
    }

    fn id(&mut self, id: &str) -> Admit {
        if self.ids.contains(id) {
            return Admit::Duplicate;
        }
        if self.id_order.len() == IDS_KEPT
            && let Some(oldest) = self.id_order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.id_order.push_back(id.to_string());
        self.ids.insert(id.to_string());
        Admit::New
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::events::parse::Kind;
    use crate::request::hints::{Health, TaskSeen};
    use chrono::{DateTime, Utc};

    fn event(id: &str, about: About) -> Event {
        Event {
            id: id.into(),
            kind: Kind::Other,
            account: "1".into(),
            region: "r".into(),
            time: DateTime::<Utc>::MIN_UTC,
            cluster: None,
            about,
        }
    }

    fn task(arn: &str, version: u64) -> Event {
        event(
            &format!("{arn}-{version}"),
            About::Task {
                arn: arn.into(),
                version,
                service: None,
                seen: TaskSeen {
                    last_status: "RUNNING".into(),
                    desired_status: "RUNNING".into(),
                    created_at: None,
                    health: Health::Unknown,
                    changed_at: None,
                    received: DateTime::<Utc>::MIN_UTC,
                },
            },
        )
    }

    #[test]
    fn copies_and_older_versions_of_a_task_are_told_apart_from_news() {
        let mut l = Ledger::default();
        assert_eq!(l.admit(&task("a", 2)), Admit::New);
        assert_eq!(l.admit(&task("a", 2)), Admit::Duplicate);
        assert_eq!(l.admit(&task("a", 1)), Admit::Stale, "arrived late");
        assert_eq!(
            l.admit(&task("a", 4)),
            Admit::New,
            "a version skipped is fine"
        );
        assert_eq!(l.admit(&task("a", 3)), Admit::Stale);
        assert_eq!(l.admit(&task("b", 1)), Admit::New);
    }

    #[test]
    fn other_events_are_known_by_their_id() {
        let mut l = Ledger::default();
        assert_eq!(l.admit(&event("x", About::Other)), Admit::New);
        assert_eq!(l.admit(&event("x", About::Other)), Admit::Duplicate);
        assert_eq!(l.admit(&event("y", About::Other)), Admit::New);
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_go_first() {
        let mut l = Ledger::default();
        for i in 0..TASKS_KEPT + 5 {
            l.admit(&task(&format!("t{i}"), 1));
        }
        for i in 0..IDS_KEPT + 5 {
            l.admit(&event(&format!("e{i}"), About::Other));
        }
        assert_eq!(l.versions.len(), TASKS_KEPT);
        assert_eq!(l.ids.len(), IDS_KEPT);
        assert_eq!(l.admit(&task("t0", 1)), Admit::New, "forgotten");
        assert_eq!(
            l.admit(&task(&format!("t{}", TASKS_KEPT + 4), 1)),
            Admit::Duplicate
        );
    }
}
