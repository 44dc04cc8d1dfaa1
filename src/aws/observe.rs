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
//! A look reads the cluster's capacity only where the decision needs it
//! (a task of a launch type EC2 service ECS could not place, a task waiting
//! for a capacity provider, a dry run: see [`capacity`]); a Fargate
//! service's look never does.
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
pub(crate) mod capacity;
mod cluster;
mod targets;
#[cfg(all(test, feature = "simulator"))]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use self::cluster::ClusterLook;
use super::{AwsError, ClientPool, Clients};
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
    /// The look a dry run makes of `spec`'s service: a Pending request's,
    /// with the cluster's capacity and every task's protection.
    pub(crate) fn preview(clients: &Clients, spec: &RecycleSpec, now: DateTime<Utc>) -> Self {
        Self {
            clients: clients.clone(),
            cluster: spec.cluster.clone(),
            service: spec.service.clone(),
            look: look::preview(spec, now),
        }
    }

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
    /// The service and its tasks: what the decision needs (boxed: far
    /// larger than the tasks alone).
    Whole(Box<Observation>),
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
        Some(Ok(Look::Whole(obs))) => Ok(*obs),
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

fn gone(reason: String) -> Observation {
    Observation {
        service: Err(reason),
        tasks: Vec::new(),
        scaling: None,
        evidence: Evidence::default(),
        targets_refused: None,
        drain: None,
        protection: Vec::new(),
        capacity: Default::default(),
    }
}
