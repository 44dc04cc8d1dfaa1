//! One look at the services of one account and cluster, sharing its calls
//! between every record of the look: tasks-first for the steps waiting for
//! new tasks, then the services, their tasks (remembered where that proves
//! them all), scalable targets, load balancers' targets, and the stopped
//! tasks of a service found unsettled.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::calls::{self, Shared};
use super::{Look, Want, capacity, gone, not_made, targets};
use crate::aws::{AwsError, ClientPool, Clients, known_tasks, protection};
use crate::request::observation::{InstanceRoom, Observation, ServiceView, TaskView};
use crate::request::status::ScalingSettings;

/// One look at the services of one account and cluster.
pub(super) struct ClusterLook<'a> {
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
    pub(super) fn new(pool: &'a ClientPool, wants: &'a [Want], members: &'a [usize]) -> Self {
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
                for arn in tasks.iter().chain(&w.look.batch).chain(&w.look.watched) {
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
            .chain(&want.look.watched)
            .filter(|arn| added.insert(*arn))
            .filter_map(|arn| described.get(arn).cloned())
            .collect())
    }

    pub(super) async fn run(mut self) -> Vec<Result<Look, AwsError>> {
        let (mut answers, waiting) = self.tasks_first().await;
        // Everyone else, and the waiting steps that may be done: the services.
        let rest: Vec<usize> = self
            .members
            .iter()
            .copied()
            .filter(|i| !answers.contains_key(i))
            .collect();
        let services = self.services(&rest).await;
        let tasked = self.tasks_of_services(&rest, &services).await;
        self.remember(&tasked, &waiting);
        let scaling = self.scaling(&rest, &services).await;
        let balanced = self.load_balancers(&tasked, &services).await;
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
                Some(Ok(Err(reason))) => Ok(Look::Whole(Box::new(gone(reason.clone())))),
                // AWS refusing to show the service (no such cluster) is what
                // the request fails with; anything else, a denied read
                // included (a person fixes the role), is tried again.
                Some(Err(e @ AwsError::Refused { .. })) if !e.is_denied() => {
                    Ok(Look::Whole(Box::new(gone(e.to_string()))))
                }
                Some(Err(e)) => Err(e.clone()),
                None => Err(not_made()),
            };
            answers.insert(*i, answer);
        }
        self.add_stopped(&mut wholes).await;
        for (i, e) in self.add_capacity(&mut wholes).await {
            wholes.remove(&i);
            answers.insert(i, Err(e));
        }
        for (i, obs) in wholes {
            answers.insert(i, Ok(Look::Whole(Box::new(obs))));
        }
        self.members
            .iter()
            .map(|i| answers.remove(i).unwrap_or_else(|| Err(not_made())))
            .collect()
    }

    /// Steps waiting for new tasks: their tasks first, answered `NotYet`
    /// while they show the step is not done. A set listed before the step
    /// began cannot hold what it launched: listed again. Answers those
    /// answers, and the members looked at this way.
    async fn tasks_first(&mut self) -> (HashMap<usize, Result<Look, AwsError>>, Vec<usize>) {
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
        let mut answers = HashMap::new();
        for i in &waiting {
            let w = &self.wants[*i];
            if let Ok(tasks) = self.tasks(w)
                && (w.look.judge.unfinished)(&w.look.batch, &tasks)
            {
                answers.insert(*i, Ok(Look::NotYet(tasks)));
            }
        }
        (answers, waiting)
    }

    /// The services of `members`, described (ten a call).
    async fn services(&self, members: &[usize]) -> Services {
        let mut names: Vec<String> = members
            .iter()
            .map(|i| self.wants[*i].service.clone())
            .collect();
        names.sort();
        names.dedup();
        calls::describe_services(&self.clients, &self.cluster, &names).await
    }

    /// The tasks meant to run of every active service whose tasks `members`
    /// need: remembered and confirmed where that proves them all, listed
    /// otherwise; then described. Answers those services.
    async fn tasks_of_services(&mut self, members: &[usize], services: &Services) -> Vec<String> {
        let tasked: Vec<String> = self
            .unique(members, |w| w.look.tasks)
            .into_iter()
            .filter(|n| view(services, n).is_some())
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
            match view(services, name)
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
        self.describe(members).await;
        // A remembered task that stopped or is gone: listed after all.
        let mut relist = Vec::new();
        if let Ok(described) = &self.described {
            for (name, c) in &candidates {
                match view(services, name).and_then(|v| known_tasks::confirmed(v, c, described)) {
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
            self.describe(members).await;
        }
        tasked
    }

    /// The services of `members` that pass `wanted`, each once, in order.
    fn unique(&self, members: &[usize], wanted: impl Fn(&Want) -> bool) -> Vec<String> {
        let mut names: Vec<String> = members
            .iter()
            .map(|i| &self.wants[*i])
            .filter(|w| wanted(w))
            .map(|w| w.service.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The scalable targets of the active services whose members need them.
    async fn scaling(
        &self,
        members: &[usize],
        services: &Services,
    ) -> Shared<HashMap<String, ScalingSettings>> {
        let scaled: Vec<String> = self
            .unique(members, |w| w.look.scaling)
            .into_iter()
            .filter(|n| view(services, n).is_some())
            .collect();
        calls::scalable_targets(&self.clients, &self.cluster, &scaled).await
    }

    /// The targets of every load-balanced service whose tasks are looked
    /// at (each target group asked once, whoever shares it), and each
    /// service's longest deregistration delay.
    async fn load_balancers(&self, tasked: &[String], services: &Services) -> Balanced {
        let mut groups: Vec<String> = tasked
            .iter()
            .filter_map(|n| view(services, n))
            .flat_map(|v| {
                v.load_balancers
                    .iter()
                    .map(|lb| lb.target_group_arn.clone())
            })
            .collect();
        groups.sort();
        groups.dedup();
        let health = targets::health(&self.clients, &groups).await;
        let mut drains = HashMap::new();
        for name in tasked {
            if let Some(v) = view(services, name).filter(|v| !v.load_balancers.is_empty()) {
                let arns: Vec<String> = v
                    .load_balancers
                    .iter()
                    .map(|lb| lb.target_group_arn.clone())
                    .collect();
                let drain = targets::longest_drain(self.pool, &self.clients, &arns).await;
                drains.insert(name.clone(), drain);
            }
        }
        Balanced { health, drains }
    }

    /// The one look more: the stopped tasks of each service whose whole
    /// look finds it unsettled, for every member on it.
    async fn add_stopped(&self, wholes: &mut HashMap<usize, Observation>) {
        let mut services: Vec<String> = wholes
            .iter()
            .filter(|(i, obs)| {
                let w = &self.wants[**i];
                // A step still looked at tasks-first is neither slow nor
                // failing: it may merely be seen before ECS launched its
                // task. Unless a task beyond the desired count still runs
                // while its tasks are done: someone else's stop (Fargate
                // Spot's) that the decision tells from ours by its code.
                w.look.tasks
                    && obs.service.as_ref().is_ok_and(|svc| {
                        svc.deployment_in_progress().is_none()
                            && !(w.look.judge.stable)(svc, &obs.tasks)
                            && (w.look.awaiting.is_none() || svc.running > svc.desired)
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

    /// The cluster's room and capacity providers for the members whose
    /// decision needs them (a task ECS could not place on launch type EC2,
    /// a task waiting for a capacity provider, a dry run), and a dry run's
    /// protection of every task. Answers the members that could not be
    /// looked at whole; a dry run's look says what it could not read and
    /// goes on.
    async fn add_capacity(
        &self,
        wholes: &mut HashMap<usize, Observation>,
    ) -> Vec<(usize, AwsError)> {
        let mut failed = Vec::new();
        let mut room: Option<Shared<Vec<InstanceRoom>>> = None;
        for (i, obs) in wholes.iter_mut() {
            let w = &self.wants[*i];
            let Ok(svc) = obs.service.clone() else {
                continue;
            };
            let preview = w.look.preview;
            let wants_room = (preview && svc.on_ec2())
                || w.look.step.is_some_and(|since| {
                    (w.look.judge.needs_room)(&svc, &obs.evidence, &obs.tasks, since)
                });
            let mut names: Vec<String> = obs
                .tasks
                .iter()
                .filter(|t| t.waits_for_capacity())
                .filter_map(|t| t.capacity_provider.clone())
                .collect();
            if preview {
                names.extend(svc.strategy.iter().map(|s| s.provider.clone()));
            }
            names.sort();
            names.dedup();
            let mut trouble = Vec::new();
            if wants_room {
                if room.is_none() {
                    room = Some(capacity::room(&self.clients, &self.cluster).await);
                }
                match room.clone() {
                    Some(Ok(r)) => obs.capacity.room = Some(r),
                    Some(Err(e)) => trouble.push(e),
                    None => {}
                }
            }
            if !names.is_empty() {
                let kept = &self.pool.looks.providers;
                match capacity::providers(kept, &self.clients, &names).await {
                    Ok(p) => obs.capacity.providers = p,
                    Err(e) => trouble.push(e),
                }
            }
            if preview {
                let arns: Vec<String> = obs
                    .tasks
                    .iter()
                    .filter(|t| t.desired_running)
                    .map(|t| t.arn.clone())
                    .collect();
                match protection::read(&self.clients, &self.cluster, &arns).await {
                    Ok(p) => obs.protection = p,
                    Err(e) => trouble.push(e),
                }
            }
            match trouble.into_iter().next() {
                None => {}
                Some(e) if preview => obs.capacity.unread.push(e.to_string()),
                Some(e) => failed.push((*i, e)),
            }
        }
        failed
    }

    fn whole(
        &self,
        want: &Want,
        described: &calls::Described,
        scaling: &Shared<HashMap<String, ScalingSettings>>,
        balanced: &Balanced,
    ) -> Result<Observation, AwsError> {
        let mut tasks = match self.tasks(want) {
            _ if !want.look.tasks => Vec::new(),
            Ok(tasks) => tasks,
            Err(e @ AwsError::Refused { .. }) if !e.is_denied() => return Ok(gone(e.to_string())),
            Err(e) => return Err(e),
        };
        let mut targets_refused = None;
        if want.look.tasks {
            match targets::fill(&mut tasks, &described.view.load_balancers, &balanced.health) {
                Ok(()) => {}
                Err(e @ AwsError::Refused { .. }) if !e.is_denied() => {
                    targets_refused = Some(e.to_string())
                }
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
            protection: Vec::new(),
            capacity: Default::default(),
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
struct Balanced {
    health: HashMap<String, Shared<Vec<targets::Row>>>,
    /// Service → the longest deregistration delay of its target groups.
    drains: HashMap<String, Option<std::time::Duration>>,
}

/// Each service described, or why it could not be.
type Services = HashMap<String, Shared<Result<calls::Described, String>>>;

/// The view of a service that could be described and is active.
fn view<'s>(services: &'s Services, name: &str) -> Option<&'s ServiceView> {
    match services.get(name) {
        Some(Ok(Ok(described))) => Some(&described.view),
        _ => None,
    }
}
