//! The tasks of each service as last seen, so that a look can describe them
//! instead of listing them again. ListTasks is how new tasks are found, and
//! a service only gains a task when one of its tasks stops, its desired
//! count rises, or a deployment rolls. So when the counts show none of
//! that and every task remembered is still meant to run, the remembered set
//! is the whole set, and the look costs DescribeServices and DescribeTasks
//! only. Anything else, and the service is listed as usual. The rule is
//! pure (`candidate`, `confirmed`); the memory is per replica and
//! forgets services not looked at for a while. It also keeps when the
//! service was last listed: a set listed before a step began cannot hold
//! the tasks that step launched.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::request::observation::{ServiceView, TaskView};

/// A service's tasks are forgotten once it has not been looked at for this long.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// A service's tasks meant to run, as last seen.
#[derive(Clone, Debug)]
pub(crate) struct Remembered {
    pub arns: Vec<String>,
    /// When ListTasks last answered for the service, or when ECS's events
    /// named the tasks a step launched since ([`KnownTasks::learn`]).
    pub listed_at: DateTime<Utc>,
    seen: Instant,
}

type Key = (String, String, String);

/// (account, cluster, service) → its tasks as last seen.
#[derive(Default)]
pub(crate) struct KnownTasks {
    sets: Mutex<HashMap<Key, Remembered>>,
}

impl KnownTasks {
    fn lock(&self) -> parking_lot::MutexGuard<'_, HashMap<Key, Remembered>> {
        self.sets.lock()
    }

    pub(crate) fn get(&self, account: &str, cluster: &str, service: &str) -> Option<Remembered> {
        self.lock()
            .get(&(account.into(), cluster.into(), service.into()))
            .cloned()
    }

    /// Remembers the tasks seen in one look at a cluster, service by
    /// service: `(service, arns, listed_at)`, where `listed_at` is when
    /// ListTasks answered them and `None` when they were confirmed from
    /// memory. Services not looked at for a while are forgotten here, once
    /// a look rather than once a service.
    pub(crate) fn remember(
        &self,
        account: &str,
        cluster: &str,
        seen: impl IntoIterator<Item = (String, Vec<String>, Option<DateTime<Utc>>)>,
    ) {
        let now = Instant::now();
        let mut sets = self.lock();
        sets.retain(|_, r| now.duration_since(r.seen) < FORGET_AFTER);
        for (service, arns, listed_at) in seen {
            let key = (account.to_string(), cluster.to_string(), service);
            let listed_at = listed_at
                .or_else(|| sets.get(&key).map(|r| r.listed_at))
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            sets.insert(
                key,
                Remembered {
                    arns,
                    listed_at,
                    seen: now,
                },
            );
        }
    }
}

impl KnownTasks {
    /// ECS's events named the new tasks a step launched (as many as it
    /// launched): added to the service's remembered tasks, the set counts
    /// as listed at `at`, so the step's next look describes it instead of
    /// listing the service. Only a hint: a task the events missed shows in
    /// the look's own counts ([`candidate`], [`confirmed`]), which list the
    /// service then. Nothing remembered, nothing learnt.
    pub(crate) fn learn(
        &self,
        account: &str,
        cluster: &str,
        service: &str,
        launched: &[String],
        at: DateTime<Utc>,
    ) {
        let mut sets = self.lock();
        let key = (
            account.to_string(),
            cluster.to_string(),
            service.to_string(),
        );
        if let Some(r) = sets.get_mut(&key) {
            for arn in launched {
                if !r.arns.contains(arn) {
                    r.arns.push(arn.clone());
                }
            }
            r.listed_at = r.listed_at.max(at);
        }
    }
}

/// The remembered tasks worth describing instead of listing, or `None` when
/// the counts already show the service may have tasks not remembered.
/// Tasks the request is stopping (`in_flight`) are left out: their
/// replacements are new.
pub(crate) fn candidate(
    view: &ServiceView,
    known: Option<&[String]>,
    in_flight: &[String],
) -> Option<Vec<String>> {
    let known: Vec<String> = known?
        .iter()
        .filter(|arn| !in_flight.contains(arn))
        .cloned()
        .collect();
    let settled = view.deployment_in_progress().is_none()
        && view.running + view.pending == view.desired
        && known.len() >= view.desired as usize;
    settled.then_some(known)
}

/// The service's tasks meant to run, when the described candidates prove to
/// be all of them: exactly as many still meant to run as desired. `None`:
/// one has stopped or is gone, and the service must be listed.
pub(crate) fn confirmed(
    view: &ServiceView,
    candidates: &[String],
    described: &HashMap<String, TaskView>,
) -> Option<Vec<String>> {
    let running: Vec<String> = candidates
        .iter()
        .filter(|arn| described.get(*arn).is_some_and(|t| t.desired_running))
        .cloned()
        .collect();
    (running.len() == view.desired as usize).then_some(running)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::observation::DeploymentView;

    fn view(desired: u32, running: u32, pending: u32, rollout: &str) -> ServiceView {
        ServiceView {
            desired,
            running,
            pending,
            deployments: vec![DeploymentView {
                id: "d".into(),
                primary: true,
                rollout: rollout.into(),
            }],
            ..Default::default()
        }
    }

    fn arns(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn described(meant: &[&str], stopping: &[&str]) -> HashMap<String, TaskView> {
        let task = |arn: &str, desired_running| TaskView {
            arn: arn.into(),
            last_status: "RUNNING".into(),
            desired_running,
            health: "HEALTHY".into(),
            health_checked: true,
            started_at: None,
            created_at: None,
            ..Default::default()
        };
        meant
            .iter()
            .map(|a| (a.to_string(), task(a, true)))
            .chain(stopping.iter().map(|a| (a.to_string(), task(a, false))))
            .collect()
    }

    #[test]
    fn a_settled_service_is_described_from_memory() {
        let v = view(2, 2, 0, "COMPLETED");
        let c = candidate(&v, Some(&arns(&["a", "b"])), &[]).unwrap();
        assert_eq!(c, arns(&["a", "b"]));
        assert_eq!(confirmed(&v, &c, &described(&["a", "b"], &[])), Some(c));
    }

    #[test]
    fn anything_that_may_have_added_a_task_is_listed() {
        let ab = arns(&["a", "b"]);
        let known = || Some(ab.as_slice());
        assert_eq!(
            candidate(&view(2, 2, 0, "COMPLETED"), None, &[]),
            None,
            "nothing remembered"
        );
        assert_eq!(
            candidate(&view(3, 2, 0, "COMPLETED"), known(), &[]),
            None,
            "scaled out"
        );
        assert_eq!(
            candidate(&view(2, 2, 1, "COMPLETED"), known(), &[]),
            None,
            "a task starting"
        );
        assert_eq!(
            candidate(&view(2, 3, 0, "COMPLETED"), known(), &[]),
            None,
            "a task too many"
        );
        assert_eq!(
            candidate(&view(2, 2, 0, "IN_PROGRESS"), known(), &[]),
            None,
            "a deployment"
        );
        assert_eq!(
            candidate(&view(2, 2, 0, "COMPLETED"), known(), &arns(&["b"])),
            None,
            "a task of the batch being stopped: its replacement is new"
        );
    }

    #[test]
    fn a_remembered_task_that_stopped_means_listing() {
        let v = view(2, 2, 0, "COMPLETED");
        let c = candidate(&v, Some(&arns(&["a", "b"])), &[]).unwrap();
        // Stopped by someone else: its replacement is not remembered.
        assert_eq!(confirmed(&v, &c, &described(&["a"], &["b"])), None);
        // Forgotten by ECS: the same.
        assert_eq!(confirmed(&v, &c, &described(&["a"], &[])), None);
    }

    #[test]
    fn tasks_the_events_named_join_a_remembered_set_and_nothing_else() {
        let k = KnownTasks::default();
        let at = |s: i64| DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap();
        k.learn("", "prod", "web", &arns(&["new"]), at(10));
        assert!(k.get("", "prod", "web").is_none(), "nothing remembered");
        k.remember("", "prod", [("web".into(), arns(&["a", "b"]), Some(at(0)))]);
        k.learn("", "prod", "web", &arns(&["new", "a"]), at(10));
        let r = k.get("", "prod", "web").unwrap();
        assert_eq!((r.arns, r.listed_at), (arns(&["a", "b", "new"]), at(10)));
        // The look's own counts still decide whether that is all of them.
        let v = view(2, 2, 0, "COMPLETED");
        let c = candidate(&v, Some(&arns(&["a", "b", "new"])), &arns(&["b"])).unwrap();
        assert_eq!(confirmed(&v, &c, &described(&["a"], &["new"])), None);
    }

    #[test]
    fn scaled_in_to_the_remembered_tasks_still_running() {
        // Three remembered, one stopped by the scale-in: the two left are all.
        let v = view(2, 2, 0, "COMPLETED");
        let c = candidate(&v, Some(&arns(&["a", "b", "c"])), &[]).unwrap();
        assert_eq!(
            confirmed(&v, &c, &described(&["a", "c"], &["b"])),
            Some(arns(&["a", "c"]))
        );
    }
}
