//! Looking at services, many at once: the looks of one tick are made
//! together, sharing calls within each account and cluster (see [`calls`]
//! for the batching). Each record gets exactly the observation it would get
//! alone: its service, every task of it with desired status RUNNING, plus
//! the tasks of its batch in flight whatever their state (so "stable" is
//! judged against the batch). Two things keep the calls few:
//!
//! - A service whose tasks as last seen are provably all of them is not
//!   listed again: its remembered tasks are described ([`known_tasks`]).
//! - A step waiting for new tasks looks at its tasks first. While they show
//!   the step cannot be done (a task meant to run is not serving, or one
//!   being stopped still runs: the decision's judgement, handed to the look
//!   in [`Wanted::judge`]), the look
//!   ends there as [`Look::NotYet`] and the service is not asked for.
//!
//! A load-balanced service's look also reads each of its target groups'
//! targets (one DescribeTargetHealth per target group, shared by every
//! record of the look; see [`targets`]), so that a task counts as serving
//! only once the load balancer does.
//!
//! One look more names why a step is slow or failing: the tasks ECS stopped
//! (ListTasks with desired status STOPPED, then one DescribeTasks call),
//! with their `stoppedReason`. It is made only for a record not looked at
//! tasks-first (`awaiting` is `None`) whose whole look finds the service not
//! stable while no deployment rolls (a deployment's own `failedTasks`,
//! rollout reason and events say why it is slow), once per service per
//! look. A step waiting for new tasks is looked at tasks-first until it is
//! slow (past half its stability timeout) or failing
//! ([`crate::request::pacing::tasks_first`]), so a recycle going well never makes it;
//! a request waiting between batches for an unsettled service, or starting
//! on one, does. Its failure costs nothing: the stopped tasks are evidence,
//! not what the decision rests on.

pub(crate) mod calls;
mod targets;
#[cfg(all(test, feature = "simulator"))]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use self::calls::Shared;
use super::{AwsError, ClientPool, Clients, known_tasks};
use crate::request::look::{self, Wanted};
use crate::request::observation::{Evidence, Observation, TaskView};
use crate::request::spec::RecycleSpec;
use crate::request::status::RecycleStatus;

/// What one record needs looked at: its service, and what its decision
/// wants of the look ([`Wanted`]).
#[derive(Clone)]
pub(crate) struct Want {
    pub clients: Clients,
    pub cluster: String,
    pub service: String,
    pub look: Wanted,
}

impl Want {
    /// The look the decision over `status` wants of `spec`'s service: the
    /// one place every look of a request is built (a dry run's is a
    /// Pending request's). `tasks_first`: whether the look may end at its
    /// tasks.
    pub(crate) fn of(
        clients: &Clients,
        spec: &RecycleSpec,
        status: &RecycleStatus,
        now: DateTime<Utc>,
        tasks_first: bool,
    ) -> Self {
        Self {
            clients: clients.clone(),
            cluster: spec.cluster.clone(),
            service: spec.service.clone(),
            look: look::wanted(spec, status, now, tasks_first),
        }
    }
}

/// What a look found.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Look {
    /// The service and its tasks: what the decision needs.
    Whole(Observation),
    /// The tasks of a step waiting for new ones, which show it is not done;
    /// the service was not asked for.
    NotYet(Vec<TaskView>),
}

/// Observes one service, whole.
pub(crate) async fn observe(pool: &Arc<ClientPool>, want: Want) -> Result<Observation, AwsError> {
    let want = Want {
        look: Wanted {
            awaiting: None,
            ..want.look
        },
        ..want
    };
    match observe_all(pool, vec![want]).await.pop() {
        Some(Ok(Look::Whole(obs))) => Ok(obs),
        Some(Err(e)) => Err(e),
        _ => Err(not_made()),
    }
}

/// An answer that should always be there was not (a task failed): try again.
fn not_made() -> AwsError {
    AwsError::Transient {
        action: "observe".into(),
        message: "no observation was made".into(),
    }
}

/// Looks at every wanted service; the answers are in the order of `wants`.
/// A service that cannot be had is an observation (`service: Err`), not an
/// error; only failures worth trying again are errors.
pub(crate) async fn observe_all(
    pool: &Arc<ClientPool>,
    wants: Vec<Want>,
) -> Vec<Result<Look, AwsError>> {
    let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, w) in wants.iter().enumerate() {
        groups
            .entry((w.clients.account.clone(), w.cluster.clone()))
            .or_default()
            .push(i);
    }
    let wants = Arc::new(wants);
    let mut work = JoinSet::new();
    for (_, members) in groups {
        let pool = pool.clone();
        let wants = wants.clone();
        work.spawn(async move {
            let answers = ClusterLook::new(&pool, &wants, &members).run().await;
            members.into_iter().zip(answers).collect::<Vec<_>>()
        });
    }
    let mut out: Vec<Option<Result<Look, AwsError>>> = (0..wants.len()).map(|_| None).collect();
    while let Some(done) = work.join_next().await {
        match done {
            Ok(answers) => {
                for (i, answer) in answers {
                    out[i] = Some(answer);
                }
            }
            Err(e) => tracing::error!(error = %e, "an observation task failed"),
        }
    }
    out.into_iter()
        .map(|o| o.unwrap_or_else(|| Err(not_made())))
        .collect()
}

/// One look at the services of one account and cluster.
struct ClusterLook<'a> {
    pool: &'a ClientPool,
    wants: &'a [Want],
    members: &'a [usize],
    clients: Clients,
    cluster: String,
    /// Service → its tasks meant to run, listed or remembered.
    tasks_of: HashMap<String, Shared<Vec<String>>>,
    /// Services listed by this look.
    listed: HashSet<String>,
    /// Task ARN → its view, for every task described by this look.
    described: Shared<HashMap<String, TaskView>>,
}

impl<'a> ClusterLook<'a> {
    fn new(pool: &'a ClientPool, wants: &'a [Want], members: &'a [usize]) -> Self {
        let first = &wants[members[0]];
        Self {
            pool,
            wants,
            members,
            clients: first.clients.clone(),
            cluster: first.cluster.clone(),
            tasks_of: HashMap::new(),
            listed: HashSet::new(),
            described: Ok(HashMap::new()),
        }
    }

    fn remembered(&self, service: &str) -> Option<known_tasks::Remembered> {
        self.pool
            .looks
            .known_tasks
            .get(&self.clients.account, &self.cluster, service)
    }

    /// The batch in flight of every member on `service`.
    fn in_flight(&self, service: &str) -> Vec<String> {
        self.members
            .iter()
            .map(|i| &self.wants[*i])
            .filter(|w| w.service == service)
            .flat_map(|w| w.look.batch.iter().cloned())
            .collect()
    }

    async fn list(&mut self, services: Vec<String>) {
        if services.is_empty() {
            return;
        }
        let listed = calls::list_tasks(&self.clients, &self.cluster, &services).await;
        for (service, tasks) in listed {
            self.listed.insert(service.clone());
            self.tasks_of.insert(service, tasks);
        }
    }

    /// Describes every task of `members` not described yet.
    async fn describe(&mut self, members: &[usize]) {
        let Ok(described) = &self.described else {
            return;
        };
        let mut seen = HashSet::new();
        let mut arns = Vec::new();
        for i in members {
            let w = &self.wants[*i];
            if let Some(Ok(tasks)) = self.tasks_of.get(&w.service) {
                for arn in tasks.iter().chain(&w.look.batch) {
                    if !described.contains_key(arn) && seen.insert(arn.clone()) {
                        arns.push(arn.clone());
                    }
                }
            }
        }
        if arns.is_empty() {
            return;
        }
        match calls::describe_tasks(self.pool, &self.clients, &self.cluster, &arns).await {
            Ok(more) => {
                if let Ok(d) = &mut self.described {
                    d.extend(more);
                }
            }
            Err(e) => self.described = Err(e),
        }
    }

    /// The member's tasks: those meant to run, then its batch, each once.
    fn tasks(&self, want: &Want) -> Result<Vec<TaskView>, AwsError> {
        let listed = match self.tasks_of.get(&want.service) {
            Some(Ok(list)) => list,
            Some(Err(e)) => return Err(e.clone()),
            None => return Err(not_made()),
        };
        let described = self.described.as_ref().map_err(Clone::clone)?;
        let mut added = HashSet::new();
        Ok(listed
            .iter()
            .chain(&want.look.batch)
            .filter(|arn| added.insert(*arn))
            .filter_map(|arn| described.get(arn).cloned())
            .collect())
    }

    async fn run(mut self) -> Vec<Result<Look, AwsError>> {
        let mut answers: HashMap<usize, Result<Look, AwsError>> = HashMap::new();

        // Steps waiting for new tasks: their tasks first. A set listed
        // before the step began cannot hold what it launched: list again.
        let waiting: Vec<usize> = self
            .members
            .iter()
            .copied()
            .filter(|i| self.wants[*i].look.awaiting.is_some())
            .collect();
        let mut to_list = Vec::new();
        for i in &waiting {
            let w = &self.wants[*i];
            let step = w.look.awaiting.unwrap_or(DateTime::<Utc>::MAX_UTC);
            match self.remembered(&w.service) {
                Some(r) if r.listed_at >= step => {
                    self.tasks_of.insert(w.service.clone(), Ok(r.arns));
                }
                _ => to_list.push(w.service.clone()),
            }
        }
        to_list.sort();
        to_list.dedup();
        self.list(to_list).await;
        self.describe(&waiting).await;
        for i in &waiting {
            let w = &self.wants[*i];
            if let Ok(tasks) = self.tasks(w)
                && (w.look.judge.unfinished)(&w.look.batch, &tasks)
            {
                answers.insert(*i, Ok(Look::NotYet(tasks)));
            }
        }

        // Everyone else, and the waiting steps that may be done: the services.
        let rest: Vec<usize> = self
            .members
            .iter()
            .copied()
            .filter(|i| !answers.contains_key(i))
            .collect();
        let mut names: Vec<String> = rest
            .iter()
            .map(|i| self.wants[*i].service.clone())
            .collect();
        names.sort();
        names.dedup();
        let services = calls::describe_services(&self.clients, &self.cluster, &names).await;
        let view = |name: &str| match services.get(name) {
            Some(Ok(Ok(described))) => Some(&described.view),
            _ => None,
        };
        let active: Vec<String> = names
            .iter()
            .filter(|n| view(n).is_some())
            .cloned()
            .collect();
        let tasked: Vec<String> = active
            .iter()
            .filter(|n| {
                rest.iter()
                    .any(|i| &self.wants[*i].service == *n && self.wants[*i].look.tasks)
            })
            .cloned()
            .collect();
        let mut candidates: HashMap<String, Vec<String>> = HashMap::new();
        let mut to_list = Vec::new();
        for name in &tasked {
            if self.listed.contains(name) {
                continue;
            }
            let remembered = match self.tasks_of.get(name) {
                Some(Ok(arns)) => Some(arns.clone()),
                _ => self.remembered(name).map(|r| r.arns),
            };
            let in_flight = self.in_flight(name);
            match view(name)
                .and_then(|v| known_tasks::candidate(v, remembered.as_deref(), &in_flight))
            {
                Some(c) => {
                    self.tasks_of.insert(name.clone(), Ok(c.clone()));
                    candidates.insert(name.clone(), c);
                }
                None => to_list.push(name.clone()),
            }
        }
        self.list(to_list).await;
        self.describe(&rest).await;
        // A remembered task that stopped or is gone: listed after all.
        let mut relist = Vec::new();
        if let Ok(described) = &self.described {
            for (name, c) in &candidates {
                match view(name).and_then(|v| known_tasks::confirmed(v, c, described)) {
                    Some(running) => {
                        self.tasks_of.insert(name.clone(), Ok(running));
                    }
                    None => relist.push(name.clone()),
                }
            }
        }
        if !relist.is_empty() {
            relist.sort();
            self.list(relist).await;
            self.describe(&rest).await;
        }
        self.remember(&tasked, &waiting);

        let scaled: Vec<String> = {
            let mut s: Vec<String> = rest
                .iter()
                .map(|i| &self.wants[*i])
                .filter(|w| w.look.scaling && active.contains(&w.service))
                .map(|w| w.service.clone())
                .collect();
            s.sort();
            s.dedup();
            s
        };
        let scaling = calls::scalable_targets(&self.clients, &self.cluster, &scaled).await;

        // The target groups of every load-balanced service whose tasks are
        // looked at: each asked once, whoever shares it.
        let groups: Vec<String> = {
            let mut g: Vec<String> = tasked
                .iter()
                .filter_map(|n| view(n))
                .flat_map(|v| {
                    v.load_balancers
                        .iter()
                        .map(|lb| lb.target_group_arn.clone())
                })
                .collect();
            g.sort();
            g.dedup();
            g
        };
        let health = targets::health(&self.clients, &groups).await;
        let mut drains = HashMap::new();
        for name in &tasked {
            if let Some(v) = view(name).filter(|v| !v.load_balancers.is_empty()) {
                let arns: Vec<String> = v
                    .load_balancers
                    .iter()
                    .map(|lb| lb.target_group_arn.clone())
                    .collect();
                let drain = targets::longest_drain(self.pool, &self.clients, &arns).await;
                drains.insert(name.clone(), drain);
            }
        }
        let balanced = Balanced {
            health: &health,
            drains: &drains,
        };

        let mut wholes = HashMap::new();
        for i in &rest {
            let w = &self.wants[*i];
            let answer = match services.get(&w.service) {
                Some(Ok(Ok(described))) => match self.whole(w, described, &scaling, &balanced) {
                    Ok(obs) => {
                        wholes.insert(*i, obs);
                        continue;
                    }
                    Err(e) => Err(e),
                },
                Some(Ok(Err(reason))) => Ok(Look::Whole(gone(reason.clone()))),
                // AWS refusing to show the service (denied, no such cluster) is
                // what the request fails with; anything else is tried again.
                Some(Err(e @ AwsError::Refused { .. })) => Ok(Look::Whole(gone(e.to_string()))),
                Some(Err(e)) => Err(e.clone()),
                None => Err(not_made()),
            };
            answers.insert(*i, answer);
        }
        self.add_stopped(&mut wholes).await;
        for (i, obs) in wholes {
            answers.insert(i, Ok(Look::Whole(obs)));
        }
        self.members
            .iter()
            .map(|i| answers.remove(i).unwrap_or_else(|| Err(not_made())))
            .collect()
    }

    /// The one look more: the stopped tasks of each service whose whole
    /// look finds it unsettled, for every member on it.
    async fn add_stopped(&self, wholes: &mut HashMap<usize, Observation>) {
        let mut services: Vec<String> = wholes
            .iter()
            .filter(|(i, obs)| {
                let w = &self.wants[**i];
                // A step still looked at tasks-first is neither slow nor
                // failing: it may merely be seen before ECS launched its task.
                w.look.tasks
                    && w.look.awaiting.is_none()
                    && obs.service.as_ref().is_ok_and(|svc| {
                        svc.deployment_in_progress().is_none()
                            && !(w.look.judge.stable)(svc, &obs.tasks)
                    })
            })
            .map(|(i, _)| self.wants[*i].service.clone())
            .collect();
        services.sort();
        services.dedup();
        for service in services {
            // Our own stops are in the batch already, with our reason.
            let ours = self.in_flight(&service);
            let stopped = match calls::list_stopped(&self.clients, &self.cluster, &service).await {
                Ok(arns) => {
                    let arns: Vec<String> =
                        arns.into_iter().filter(|a| !ours.contains(a)).collect();
                    calls::stopped_tasks(&self.clients, &self.cluster, &arns).await
                }
                Err(e) => Err(e),
            };
            let stopped = match stopped {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(cluster = %self.cluster, service = %service, error = %e, "could not look at the stopped tasks");
                    continue;
                }
            };
            for (i, obs) in wholes.iter_mut() {
                if self.wants[*i].service == service {
                    obs.evidence.stopped = stopped.clone();
                }
            }
        }
    }

    fn whole(
        &self,
        want: &Want,
        described: &calls::Described,
        scaling: &Shared<HashMap<String, crate::request::status::ScalingSettings>>,
        balanced: &Balanced<'_>,
    ) -> Result<Observation, AwsError> {
        let mut tasks = match self.tasks(want) {
            _ if !want.look.tasks => Vec::new(),
            Ok(tasks) => tasks,
            Err(e @ AwsError::Refused { .. }) => return Ok(gone(e.to_string())),
            Err(e) => return Err(e),
        };
        let mut targets_refused = None;
        if want.look.tasks {
            match targets::fill(&mut tasks, &described.view.load_balancers, balanced.health) {
                Ok(()) => {}
                Err(e @ AwsError::Refused { .. }) => targets_refused = Some(e.to_string()),
                Err(e) => return Err(e),
            }
        }
        let scaling = if want.look.scaling {
            scaling
                .as_ref()
                .map_err(Clone::clone)?
                .get(&want.service)
                .copied()
        } else {
            None
        };
        Ok(Observation {
            service: Ok(described.view.clone()),
            tasks,
            scaling,
            evidence: described.evidence.clone(),
            targets_refused,
            drain: balanced.drains.get(&want.service).copied().flatten(),
        })
    }

    /// Remembers each service's tasks meant to run, for the next look.
    fn remember(&self, active: &[String], waiting: &[usize]) {
        let now = Utc::now();
        let mut services: Vec<&String> = active.iter().collect();
        services.extend(waiting.iter().map(|i| &self.wants[*i].service));
        services.sort();
        services.dedup();
        let seen = services
            .into_iter()
            .filter_map(|name| match self.tasks_of.get(name) {
                Some(Ok(arns)) => Some((
                    name.clone(),
                    arns.clone(),
                    self.listed.contains(name).then_some(now),
                )),
                _ => None,
            });
        self.pool
            .looks
            .known_tasks
            .remember(&self.clients.account, &self.cluster, seen);
    }
}

/// What the look read of the load balancers, for every member.
struct Balanced<'a> {
    health: &'a HashMap<String, Shared<Vec<targets::Row>>>,
    /// Service → the longest deregistration delay of its target groups.
    drains: &'a HashMap<String, Option<std::time::Duration>>,
}

fn gone(reason: String) -> Observation {
    Observation {
        service: Err(reason),
        tasks: Vec::new(),
        scaling: None,
        evidence: Evidence::default(),
        targets_refused: None,
        drain: None,
    }
}
