//! The dry-run plan: what a request would do to its service, found by
//! rehearsing the real decision (`decide`) against a model of the service in
//! which every replacement takes the estimated time. The tasks it would
//! recycle, the capacity over the run, how long it would take, and every AWS
//! call that changes something — the same calls the operator would make,
//! because the same function decides them.
//!
//! The rehearsal is here; how long a replacement takes is [`estimate`],
//! the service it runs against [`model`], what it says of the ECS beneath
//! (capacity, room for the surge, protected tasks, Spot) [`capacity`], and
//! the plan in words [`render`].

mod capacity;
mod estimate;
pub(crate) mod images;
mod model;
mod render;

use std::time::Duration;

use chrono::{DateTime, Utc};

use self::model::Model;
use crate::request::decide::{self, Action, Context};
use crate::request::observation::Observation;
use crate::request::spec::RecycleSpec;
use crate::request::status::{DesiredChange, Phase, RecycleStatus};

pub(crate) use self::estimate::{Estimate, estimate};
pub(crate) use self::render::render;

/// One change the run would make, when, and the capacity around it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Step {
    /// From the start of the run.
    pub at: Duration,
    pub phase: Phase,
    /// The AWS call, as `service:Operation` with its arguments in words.
    pub call: String,
    pub desired: u32,
    /// Serving tasks at the lowest point of this step.
    pub lowest_running: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Preview {
    /// The tasks it would recycle, in order, with their start times.
    pub tasks: Vec<(String, Option<DateTime<Utc>>)>,
    pub original_desired: u32,
    pub steps: Vec<Step>,
    pub lowest_running: u32,
    pub duration: Duration,
    pub outcome: Phase,
    pub message: String,
    pub estimate: Estimate,
    /// The desired-count change the surge would make, if any.
    pub surge: Option<DesiredChange>,
    /// How the load balancers' drains shape the run, when the service has any.
    pub drains: Option<Drains>,
    /// What it says of the ECS beneath: capacity, room for the surge,
    /// protected tasks, Fargate Spot.
    pub capacity: Vec<String>,
}

/// A load-balanced service's drains as the rehearsal met them.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Drains {
    /// `tg/web-80`, each of the service's target groups.
    pub groups: Vec<String>,
    /// The longest deregistration delay among them, when it could be read.
    pub delay: Option<Duration>,
    pub maximum_percent: u32,
    /// Batches whose replacements had to wait for the stopped tasks to
    /// drain, because `maximumPercent` left no room beside them.
    pub blocked_batches: u32,
    pub batches: u32,
}

/// The task id: the last part of its ARN.
pub(crate) fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// How soon the rehearsal looks again while a transition is expected.
const POLL: Duration = Duration::from_secs(1);

/// Rehearses the run from `obs` with every replacement taking
/// `estimate.replacement`. The service is assumed to behave: no failures,
/// no autoscaler, no one else's deployment.
pub(crate) fn rehearse(
    name: &str,
    spec: &RecycleSpec,
    obs: &Observation,
    estimate: Estimate,
    now: DateTime<Utc>,
) -> Preview {
    let spec = rehearsed_spec(spec);
    let mut run = Rehearsal::new(obs, now);
    let original_desired = run.model.desired;
    for _ in 0..100_000 {
        if !run.look(name, &spec, obs, &estimate) {
            break;
        }
    }
    let tasks = planned_tasks(&run.status, obs);
    let capacity = capacity::lines(&spec, obs, tasks.len(), now);
    Preview {
        tasks,
        original_desired,
        steps: run.steps,
        lowest_running: run.lowest,
        duration: (run.clock - now).to_std().unwrap_or_default(),
        outcome: run.status.phase,
        message: run.status.message,
        estimate,
        surge: run.status.surge,
        drains: run.drains,
        capacity,
    }
}

/// The spec as rehearsed: the run as it would go once started, whatever
/// holds it today.
fn rehearsed_spec(spec: &RecycleSpec) -> RecycleSpec {
    let mut spec = spec.clone();
    spec.dry_run = false;
    spec.paused = false;
    spec.cancel = false;
    spec.not_after = None;
    // The gates are shown, and their alarms checked, beside the plan: the
    // rehearsal assumes they stay OK.
    spec.gates = None;
    // The hooks are listed beside the plan; the rehearsal assumes they answer succeeded.
    spec.hooks = Vec::new();
    spec
}

/// The run so far: the model, the status the decision left, the clock,
/// and what it has done.
struct Rehearsal {
    model: Model,
    status: RecycleStatus,
    start: DateTime<Utc>,
    clock: DateTime<Utc>,
    steps: Vec<Step>,
    lowest: u32,
    drains: Option<Drains>,
}

impl Rehearsal {
    fn new(obs: &Observation, now: DateTime<Utc>) -> Self {
        let model = Model::from(obs);
        Self {
            lowest: model.serving(),
            model,
            status: RecycleStatus::default(),
            start: now,
            clock: now,
            steps: Vec::new(),
            drains: drains_of(obs),
        }
    }

    /// One look: the decision, its actions made on the model, and the clock
    /// moved on by what they wait for; `false` once the run has finished.
    fn look(
        &mut self,
        name: &str,
        spec: &RecycleSpec,
        obs: &Observation,
        estimate: &Estimate,
    ) -> bool {
        let ctx = Context {
            name,
            spec,
            now: self.clock,
            poll: POLL,
            blocked_by: None,
            alarms: None,
            serving_since: None,
        };
        let observed = self
            .model
            .observe(&self.status.batch, obs.scaling, self.clock);
        let d = decide::decide(&ctx, &self.status, &observed);
        let stops = d
            .actions
            .iter()
            .filter(|a| matches!(a, Action::StopTask { .. }))
            .count();
        let replacing = self.make(&d);
        self.status = d.status;
        if replacing {
            self.clock += chrono::Duration::from_std(estimate.replacement).unwrap_or_default();
            self.model.settle();
        }
        self.drain(&observed, stops);
        match d.requeue {
            None => return false,
            Some(after) if after.is_zero() || replacing => {}
            Some(after) => self.clock += chrono::Duration::from_std(after).unwrap_or_default(),
        }
        true
    }

    /// Makes the decision's actions on the model, each a step of the plan;
    /// answers whether any of them waits for new tasks.
    fn make(&mut self, d: &decide::Decision) -> bool {
        let mut replacing = false;
        for action in &d.actions {
            let call = self.model.apply(action);
            replacing |= match action {
                Action::StopTask { .. } => true,
                Action::SetDesired { from, to } => to > from,
                Action::SetScaling(_) => false,
            };
            let low = self.model.serving();
            self.lowest = self.lowest.min(low);
            self.steps.push(Step {
                at: (self.clock - self.start).to_std().unwrap_or_default(),
                phase: d.status.phase,
                call,
                desired: self.model.desired,
                lowest_running: low,
            });
        }
        replacing
    }

    /// A batch of `stops` on a load-balanced service: ECS launches the
    /// replacements only once the stopped tasks have drained, when
    /// `maximumPercent` leaves no room beside them, so the drain comes
    /// before the replacement time.
    fn drain(&mut self, observed: &Observation, stops: usize) {
        if let (Some(dr), Ok(svc)) = (self.drains.as_mut(), observed.service.as_ref())
            && stops > 0
        {
            dr.batches += 1;
            if decide::drain_blocks_replacements(svc, stops) {
                dr.blocked_batches += 1;
                let delay = dr.delay.unwrap_or_default();
                self.clock += chrono::Duration::from_std(delay).unwrap_or_default();
            }
        }
    }
}

/// The drains of a load-balanced service, none counted yet; `None` for a
/// service without load balancers.
fn drains_of(obs: &Observation) -> Option<Drains> {
    let balanced = obs
        .service
        .as_ref()
        .ok()
        .filter(|s| !s.load_balancers.is_empty());
    balanced.map(|svc| Drains {
        groups: svc
            .load_balancers
            .iter()
            .map(|lb| crate::request::observation::target_group_name(&lb.target_group_arn))
            .collect(),
        delay: obs.drain,
        maximum_percent: svc.maximum_percent,
        blocked_batches: 0,
        batches: 0,
    })
}

/// The planned tasks, in order, with their start times as observed.
fn planned_tasks(
    status: &RecycleStatus,
    obs: &Observation,
) -> Vec<(String, Option<DateTime<Utc>>)> {
    status
        .plan
        .as_ref()
        .map(|p| {
            p.tasks
                .iter()
                .map(|arn| {
                    let started = obs
                        .tasks
                        .iter()
                        .find(|t| &t.arn == arn)
                        .and_then(|t| t.started_at);
                    (arn.clone(), started)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
