//! Which records an event concerns, and what it tells them. An event is
//! the operator's when its account and cluster are those of an active
//! request (the listing says which: a request's account is its role's, or
//! the operator's own); anything else is foreign. The records this replica
//! steps are watched: what each waits on, as its last step left it. The
//! events of a watched service are kept as [`ServiceHints`], and each new
//! one is weighed for the records watching it: a step they show done wakes
//! its record (after the batch's wait, where the wait may count from the
//! event); a service's steady state or deployment wakes a record waiting
//! for the service to settle; the tasks a step launched are handed to the
//! next look.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::aws::events::parse::{About, Event};
use crate::request::hints::{Awaited, ServiceHints};
use crate::store::ListedRecord;

/// A service: (account — empty for the operator's own, else the role's —, cluster, service).
pub(crate) type Key = (String, String, String);

/// What one record of this replica waits on, as its last step left it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Watch {
    pub key: Key,
    /// The step waiting for new tasks, if it does.
    pub awaited: Option<Awaited>,
    /// The batch's wait, when it may count from the events' word (no
    /// hooks are asked after the batch, and no load balancer's health
    /// comes after the task's).
    pub wait: Option<Duration>,
    /// Waiting for the service to settle (between batches, restoring,
    /// starting): its steady state or a deployment wakes it.
    pub settling: bool,
    /// Behind a load balancer, as its last whole look saw it.
    pub load_balanced: bool,
}

/// What an event (or a watch) asks of the reconcile loop.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Effect {
    /// Look at `name` at `at`. `settled`: for a step the events showed
    /// done, (when it began, when they showed it done): a sample for pacing.
    Wake {
        name: String,
        at: DateTime<Utc>,
        settled: Option<(DateTime<Utc>, DateTime<Utc>)>,
    },
    /// The tasks a step launched, as the events named them: the look
    /// describes them instead of listing the service.
    Learn {
        key: Key,
        arns: Vec<String>,
        at: DateTime<Utc>,
    },
}

#[derive(Default)]
pub(crate) struct Routes {
    /// The operator's own account (the queue's), if known.
    own: Option<String>,
    /// The Region the operator works in, if known.
    region: Option<String>,
    /// (account, cluster) of every active request, from the last listing.
    served: HashSet<(String, String)>,
    /// The accounts of the roles of active requests.
    roles: HashSet<String>,
    /// Each listed request's (version, its (account, cluster)), so a spec
    /// is read once a version.
    listed: HashMap<String, (u64, Option<(String, String)>)>,
    watches: HashMap<String, Watched>,
    hints: HashMap<Key, ServiceHints>,
}

#[derive(Clone, Debug)]
struct Watched {
    watch: Watch,
    /// The step already woken for: each wakes once.
    woken: Option<DateTime<Utc>>,
}

impl Routes {
    pub(crate) fn new(own: Option<String>, region: Option<String>) -> Self {
        Self {
            own,
            region,
            ..Self::default()
        }
    }

    /// The active requests as listed: which accounts and clusters are served.
    pub(crate) fn listed(&mut self, records: &[ListedRecord]) {
        let names: HashSet<&str> = records.iter().map(|r| r.name.as_str()).collect();
        self.listed.retain(|name, _| names.contains(name.as_str()));
        let gone: Vec<String> = self
            .watches
            .keys()
            .filter(|n| !names.contains(n.as_str()))
            .cloned()
            .collect();
        for name in gone {
            self.unwatch(&name);
        }
        for r in records {
            let fresh = self
                .listed
                .get(&r.name)
                .is_some_and(|(v, _)| *v == r.version);
            if !fresh {
                self.listed
                    .insert(r.name.clone(), (r.version, served_by(&r.spec)));
            }
        }
        self.served = self
            .listed
            .values()
            .filter_map(|(_, s)| s.clone())
            .collect();
        self.roles = self
            .served
            .iter()
            .filter(|(account, _)| !account.is_empty())
            .map(|(account, _)| account.clone())
            .collect();
    }

    /// The (account, cluster) an event is about, as the operator keys its
    /// changes: the account empty for the operator's own.
    pub(crate) fn place(&self, e: &Event) -> Option<(String, String)> {
        if self.region.as_ref().is_some_and(|r| *r != e.region) {
            return None;
        }
        let cluster = e.cluster.clone()?;
        let own = match &self.own {
            Some(own) => *own == e.account,
            // Without the queue's account, an account no role names is ours.
            None => !self.roles.contains(&e.account),
        };
        let account = if own {
            String::new()
        } else {
            e.account.clone()
        };
        Some((account, cluster))
    }

    /// The (account, cluster) an event is about, if this operator serves it.
    pub(crate) fn serves(&self, e: &Event) -> Option<(String, String)> {
        self.place(e).filter(|key| self.served.contains(key))
    }

    /// Records `watch` for `name` at `now`, and weighs what is known of its service.
    pub(crate) fn watch(&mut self, name: &str, watch: Watch, now: DateTime<Utc>) -> Vec<Effect> {
        let key = watch.key.clone();
        let woken = self.watches.get(name).and_then(|w| w.woken);
        self.watches
            .insert(name.to_string(), Watched { watch, woken });
        self.hints.entry(key).or_default();
        self.weigh(name, now, false)
    }

    pub(crate) fn unwatch(&mut self, name: &str) {
        if let Some(gone) = self.watches.remove(name) {
            let key = gone.watch.key;
            if !self.watches.values().any(|w| w.watch.key == key) {
                self.hints.remove(&key);
            }
        }
    }

    /// A new event about (account, cluster), received at `received`.
    pub(crate) fn apply(
        &mut self,
        (account, cluster): (String, String),
        e: Event,
        received: DateTime<Utc>,
    ) -> Vec<Effect> {
        let steady = e.is_steady_state();
        let (service, settling_news) = match e.about {
            About::Task {
                arn,
                service: Some(service),
                seen,
                ..
            } => {
                let key = (account.clone(), cluster.clone(), service.clone());
                match self.hints.get_mut(&key) {
                    Some(h) => h.task(&arn, seen),
                    None => return Vec::new(),
                }
                (service, false)
            }
            About::Service {
                service,
                changed_at,
                ..
            } => {
                let key = (account.clone(), cluster.clone(), service.clone());
                match self.hints.get_mut(&key) {
                    Some(h) if steady => h.steady(e.time, changed_at, received),
                    Some(_) => {}
                    None => return Vec::new(),
                }
                (service, true)
            }
            _ => return Vec::new(),
        };
        let key = (account, cluster, service);
        let names: Vec<String> = self
            .watches
            .iter()
            .filter(|(_, w)| w.watch.key == key)
            .map(|(n, _)| n.clone())
            .collect();
        names
            .iter()
            .flat_map(|name| self.weigh(name, received, settling_news))
            .collect()
    }

    /// What is known of `name`'s service means for it at `now`;
    /// `service_news`: a steady state or deployment of it was just received.
    fn weigh(&mut self, name: &str, now: DateTime<Utc>, service_news: bool) -> Vec<Effect> {
        let Some(w) = self.watches.get_mut(name) else {
            return Vec::new();
        };
        let Some(hints) = self.hints.get(&w.watch.key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match &w.watch.awaited {
            Some(step) => {
                if let Some(arns) = hints.launched(step) {
                    out.push(Effect::Learn {
                        key: w.watch.key.clone(),
                        arns,
                        at: now,
                    });
                }
                if w.woken != Some(step.since)
                    && let Some(at) = hints.settled(step)
                {
                    w.woken = Some(step.since);
                    let wait = chrono::Duration::from_std(w.watch.wait.unwrap_or_default())
                        .unwrap_or_default();
                    out.push(Effect::Wake {
                        name: name.to_string(),
                        at: at + wait,
                        settled: Some((step.since, at)),
                    });
                }
            }
            None if w.watch.settling && service_news => {
                out.push(Effect::Wake {
                    name: name.to_string(),
                    at: now,
                    settled: None,
                });
            }
            None => {}
        }
        out
    }

    /// When the events showed `name`'s step that began at `step` done, if they did.
    pub(crate) fn settled(&self, name: &str, step: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let w = &self.watches.get(name)?.watch;
        let awaited = w.awaited.as_ref().filter(|a| a.since == step)?;
        self.hints.get(&w.key)?.settled(awaited)
    }

    /// Whether `name`'s service is load-balanced, as last watched.
    pub(crate) fn load_balanced(&self, name: &str) -> Option<bool> {
        self.watches.get(name).map(|w| w.watch.load_balanced)
    }

    /// Whether `name`'s batch wait may count from the events' word.
    pub(crate) fn waits_from_events(&self, name: &str) -> bool {
        self.watches
            .get(name)
            .is_some_and(|w| w.watch.wait.is_some())
    }

    /// The records whose step waits for new tasks.
    pub(crate) fn awaiting(&self) -> Vec<String> {
        self.watches
            .iter()
            .filter(|(_, w)| w.watch.awaited.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// (account, cluster) a listed request's spec names: the account of its
/// role, or empty for the operator's own. `None` when it cannot be read.
fn served_by(spec: &Result<Box<str>, String>) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(spec.as_deref().ok()?).ok()?;
    let cluster = v.get("cluster")?.as_str()?.to_string();
    let account = v
        .get("roleArn")
        .and_then(|r| r.as_str())
        .and_then(|arn| arn.split(':').nth(4))
        .unwrap_or_default()
        .to_string();
    Some((account, cluster))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::events::parse::Kind;
    use crate::request::hints::{Health, TaskSeen};

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn listed(name: &str, spec: &str) -> ListedRecord {
        ListedRecord {
            name: name.into(),
            spec: Ok(spec.into()),
            phase: None,
            version: 1,
            created_at: None,
            lease: None,
        }
    }

    fn event(account: &str, cluster: &str, about: About) -> Event {
        Event {
            id: "e".into(),
            kind: Kind::Other,
            account: account.into(),
            region: "us-east-1".into(),
            time: at(0),
            cluster: Some(cluster.into()),
            about,
        }
    }

    fn task(arn: &str, last: &str, desired: &str, created: i64, health: Health, r: i64) -> About {
        About::Task {
            arn: arn.into(),
            version: 1,
            service: Some("web".into()),
            seen: TaskSeen {
                last_status: last.into(),
                desired_status: desired.into(),
                created_at: Some(at(created)),
                health,
                changed_at: None,
                received: at(r),
            },
        }
    }

    fn routes() -> Routes {
        let mut r = Routes::new(Some("111111111111".into()), Some("us-east-1".into()));
        r.listed(&[
            listed("rotate", r#"{"cluster": "prod", "service": "web"}"#),
            listed(
                "theirs",
                r#"{"cluster": "prod", "service": "api", "roleArn": "arn:aws:iam::222222222222:role/r"}"#,
            ),
        ]);
        r
    }

    fn key() -> Key {
        (String::new(), "prod".into(), "web".into())
    }

    fn batch_watch(wait: Option<Duration>) -> Watch {
        Watch {
            key: key(),
            awaited: Some(Awaited {
                since: at(100),
                stopped: vec!["old".into()],
                launched: 1,
                health_checked: true,
            }),
            wait,
            settling: false,
            load_balanced: false,
        }
    }

    #[test]
    fn events_of_accounts_regions_and_clusters_not_served_are_foreign() {
        let r = routes();
        let ours = event("111111111111", "prod", About::Other);
        assert_eq!(r.serves(&ours), Some((String::new(), "prod".into())));
        let role = event("222222222222", "prod", About::Other);
        assert_eq!(
            r.serves(&role),
            Some(("222222222222".into(), "prod".into()))
        );
        for foreign in [
            event("111111111111", "staging", About::Other),
            event("333333333333", "prod", About::Other),
            Event {
                region: "eu-west-1".into(),
                ..ours.clone()
            },
            Event {
                cluster: None,
                ..ours
            },
        ] {
            assert_eq!(r.serves(&foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn a_step_the_events_show_done_wakes_its_record_once_after_its_wait() {
        let mut r = routes();
        let wait = Duration::from_secs(30);
        assert!(
            r.watch("rotate", batch_watch(Some(wait)), at(100))
                .is_empty()
        );
        let served = (String::new(), "prod".to_string());
        let e = |about| event("111111111111", "prod", about);
        let got = r.apply(
            served.clone(),
            e(task("old", "STOPPING", "STOPPED", 0, Health::Healthy, 101)),
            at(101),
        );
        assert!(got.is_empty(), "{got:?}");
        let got = r.apply(
            served.clone(),
            e(task("new", "PENDING", "RUNNING", 101, Health::Unknown, 102)),
            at(102),
        );
        assert!(
            matches!(&got[..], [Effect::Learn { arns, .. }] if arns == &["new".to_string()]),
            "{got:?}"
        );
        let got = r.apply(
            served.clone(),
            e(task("new", "RUNNING", "RUNNING", 101, Health::Healthy, 105)),
            at(105),
        );
        assert!(
            got.contains(&Effect::Wake {
                name: "rotate".into(),
                at: at(135),
                settled: Some((at(100), at(105)))
            }),
            "{got:?}"
        );
        assert_eq!(r.settled("rotate", at(100)), Some(at(105)));
        assert_eq!(r.settled("rotate", at(99)), None, "another step");
        // A steady state after it: the step was woken already.
        let steady = About::Service {
            service: "web".into(),
            name: "SERVICE_STEADY_STATE".into(),
            changed_at: None,
        };
        let got = r.apply(served, e(steady), at(106));
        assert!(
            !got.iter().any(|x| matches!(x, Effect::Wake { .. })),
            "{got:?}"
        );
    }

    #[test]
    fn a_record_waiting_for_its_service_to_settle_wakes_at_its_steady_state() {
        let mut r = routes();
        r.watch(
            "rotate",
            Watch {
                key: key(),
                awaited: None,
                wait: None,
                settling: true,
                load_balanced: false,
            },
            at(0),
        );
        let served = (String::new(), "prod".to_string());
        let noise = task("x", "RUNNING", "RUNNING", 0, Health::Healthy, 1);
        assert!(
            r.apply(served.clone(), event("111111111111", "prod", noise), at(1))
                .is_empty()
        );
        let steady = About::Service {
            service: "web".into(),
            name: "SERVICE_STEADY_STATE".into(),
            changed_at: None,
        };
        let got = r.apply(served, event("111111111111", "prod", steady), at(2));
        assert_eq!(
            got,
            [Effect::Wake {
                name: "rotate".into(),
                at: at(2),
                settled: None
            }]
        );
    }

    #[test]
    fn news_of_services_nobody_here_watches_is_not_kept() {
        let mut r = routes();
        let served = (String::new(), "prod".to_string());
        let got = r.apply(
            served,
            event(
                "111111111111",
                "prod",
                task("n", "RUNNING", "RUNNING", 1, Health::Healthy, 1),
            ),
            at(1),
        );
        assert!(got.is_empty());
        assert!(r.hints.is_empty());
        r.watch("rotate", batch_watch(None), at(0));
        r.unwatch("rotate");
        assert!(r.hints.is_empty() && r.watches.is_empty());
    }
}
