//! The dry-run plan: what a request would do to its service, found by
//! rehearsing the real decision (`decide`) against a model of the service in
//! which every replacement takes the estimated time. The tasks it would
//! recycle, the capacity over the run, how long it would take, and every AWS
//! call that changes something — the same calls the operator would make,
//! because the same function decides them.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::duration;
use crate::request::decide::{self, Action, Context};
use crate::request::observation::{DeploymentView, Observation, ServiceView, TaskView};
use crate::request::spec::RecycleSpec;
use crate::request::status::{DesiredChange, Event, Phase, Reason, RecycleStatus, ScalingSettings};

/// How long one replacement takes, and where the figure comes from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Estimate {
    /// From the stop of a task to its replacement running, healthy and the service stable.
    pub replacement: Duration,
    pub basis: String,
}

/// Estimates the replacement time: from this service's earlier runs when the
/// table remembers any (the time from each batch's stop to its "recycled"
/// event), else from its live tasks' PROVISIONING → RUNNING times plus an
/// assumed health-check time.
pub(crate) fn estimate(history: &[RecycleStatus], live: &[TaskView]) -> Estimate {
    let mut observed: Vec<Duration> = history
        .iter()
        .flat_map(|s| batch_times(&s.events))
        .collect();
    if !observed.is_empty() {
        observed.sort();
        let median = observed[observed.len() / 2];
        return Estimate {
            replacement: median,
            basis: format!(
                "median of {} replacement(s) observed in {} earlier run(s) on this service",
                observed.len(),
                history.len()
            ),
        };
    }
    let mut starts: Vec<Duration> = live
        .iter()
        .filter_map(|t| (t.started_at? - t.created_at?).to_std().ok())
        .collect();
    starts.sort();
    let start = starts.get(starts.len() / 2).copied();
    let health_checked = live.iter().any(|t| t.health_checked);
    let health = if health_checked {
        Duration::from_secs(30)
    } else {
        Duration::ZERO
    };
    let health_note = if health_checked {
        " + 30s assumed for the health check (one default interval; an earlier run on this service gives the real figure)"
    } else {
        " (no health check)"
    };
    match start {
        Some(start) => Estimate {
            replacement: start + health,
            basis: format!(
                "median start time {} of {} live task(s){health_note}",
                approx(start),
                starts.len()
            ),
        },
        None => Estimate {
            replacement: Duration::from_secs(60) + health,
            basis: format!("no start times observed; 60s assumed{health_note}"),
        },
    }
}

/// Each batch's time from its first stop to its "Recycled" event.
fn batch_times(events: &[Event]) -> Vec<Duration> {
    let mut out = Vec::new();
    let mut stopped_at: Option<DateTime<Utc>> = None;
    for e in events {
        match e.reason {
            Reason::Recycling if stopped_at.is_none() => stopped_at = Some(e.at),
            Reason::Recycled => {
                if let Some(t) = stopped_at.take()
                    && let Ok(d) = (e.at - t).to_std()
                {
                    out.push(d);
                }
            }
            _ => {}
        }
    }
    out
}

/// `2.6s` under a minute, `1m35s` above: as precise as an estimate deserves.
fn approx(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64()).replace(".0s", "s")
    } else {
        duration::format(Duration::from_secs(d.as_secs_f64().round() as u64))
    }
}

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
    let mut model = Model::from(obs);
    let original_desired = model.desired;
    let mut status = RecycleStatus::default();
    let mut clock = now;
    let mut steps = Vec::new();
    let mut lowest = model.serving();
    let poll = Duration::from_secs(1);
    let balanced = obs
        .service
        .as_ref()
        .ok()
        .filter(|s| !s.load_balancers.is_empty());
    let mut drains = balanced.map(|svc| Drains {
        groups: svc
            .load_balancers
            .iter()
            .map(|lb| crate::request::observation::target_group_name(&lb.target_group_arn))
            .collect(),
        delay: obs.drain,
        maximum_percent: svc.maximum_percent,
        blocked_batches: 0,
        batches: 0,
    });
    for _ in 0..100_000 {
        let ctx = Context {
            name,
            spec: &spec,
            now: clock,
            poll,
            blocked_by: None,
            alarms: None,
        };
        let observed = model.observe(&status.batch, obs.scaling);
        let d = decide::decide(&ctx, &status, &observed);
        let mut replacing = false;
        let stops = d
            .actions
            .iter()
            .filter(|a| matches!(a, Action::StopTask { .. }))
            .count();
        for action in &d.actions {
            let call = model.apply(action);
            replacing |= match action {
                Action::StopTask { .. } => true,
                Action::SetDesired { from, to } => to > from,
                Action::SetScaling(_) => false,
            };
            let low = model.serving();
            lowest = lowest.min(low);
            steps.push(Step {
                at: (clock - now).to_std().unwrap_or_default(),
                phase: d.status.phase,
                call,
                desired: model.desired,
                lowest_running: low,
            });
        }
        status = d.status;
        if replacing {
            clock += chrono::Duration::from_std(estimate.replacement).unwrap_or_default();
            model.settle();
        }
        if let (Some(dr), Ok(svc)) = (drains.as_mut(), observed.service.as_ref())
            && stops > 0
        {
            dr.batches += 1;
            // ECS launches the replacements only once the stopped tasks
            // have drained: the drain comes before the replacement time.
            if decide::drain_blocks_replacements(svc, stops) {
                dr.blocked_batches += 1;
                let delay = dr.delay.unwrap_or_default();
                clock += chrono::Duration::from_std(delay).unwrap_or_default();
            }
        }
        match d.requeue {
            None => break,
            Some(after) if after.is_zero() || replacing => {}
            Some(after) => clock += chrono::Duration::from_std(after).unwrap_or_default(),
        }
    }
    let tasks = status
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
        .unwrap_or_default();
    Preview {
        tasks,
        original_desired,
        steps,
        lowest_running: lowest,
        duration: (clock - now).to_std().unwrap_or_default(),
        outcome: status.phase,
        message: status.message,
        estimate,
        surge: status.surge,
        drains,
    }
}

/// The service as the rehearsal sees it: tasks that run and serve as soon
/// as the estimate says, and a scheduler that keeps `desired` of them.
struct Model {
    desired: u32,
    /// The service's load balancers and maximumPercent, as observed.
    balanced: ServiceView,
    drain: Option<Duration>,
    tasks: Vec<ModelTask>,
    scaling: Option<ScalingSettings>,
    launched: usize,
}

struct ModelTask {
    arn: String,
    /// Desired RUNNING and not stopped.
    up: bool,
    /// Running and healthy (a launched replacement is not, until `settle`).
    serving: bool,
    started_at: Option<DateTime<Utc>>,
}

impl Model {
    fn from(obs: &Observation) -> Self {
        let desired = obs.service.as_ref().map_or(0, |s| s.desired);
        let balanced = obs.service.clone().unwrap_or_default();
        Self {
            desired,
            balanced: ServiceView {
                load_balancers: balanced.load_balancers,
                maximum_percent: balanced.maximum_percent,
                ..Default::default()
            },
            drain: obs.drain,
            tasks: obs
                .tasks
                .iter()
                .filter(|t| t.desired_running)
                .map(|t| ModelTask {
                    arn: t.arn.clone(),
                    up: true,
                    serving: t.is_serving(),
                    started_at: t.started_at,
                })
                .collect(),
            scaling: obs.scaling,
            launched: 0,
        }
    }

    fn serving(&self) -> u32 {
        self.tasks.iter().filter(|t| t.up && t.serving).count() as u32
    }

    fn observe(&self, batch: &[String], scaling: Option<ScalingSettings>) -> Observation {
        let running = self.tasks.iter().filter(|t| t.up).count() as u32;
        Observation {
            service: Ok(ServiceView {
                desired: self.desired,
                running,
                pending: 0,
                deployments: vec![DeploymentView {
                    id: "ecs-svc/rehearsal".into(),
                    primary: true,
                    rollout: "COMPLETED".into(),
                }],
                ..self.balanced.clone()
            }),
            tasks: self
                .tasks
                .iter()
                .filter(|t| t.up || batch.contains(&t.arn))
                .map(|t| TaskView {
                    arn: t.arn.clone(),
                    last_status: if t.up { "RUNNING" } else { "STOPPED" }.into(),
                    desired_running: t.up,
                    health: "HEALTHY".into(),
                    health_checked: false,
                    started_at: t.started_at,
                    created_at: t.started_at,
                    ..Default::default()
                })
                .collect(),
            scaling: self.scaling.or(scaling),
            evidence: Default::default(),
            targets_refused: None,
            drain: self.drain,
        }
    }

    /// Makes the change and answers the call in words.
    fn apply(&mut self, action: &Action) -> String {
        match action {
            Action::SetDesired { from, to } => {
                self.desired = *to;
                let up: Vec<usize> = (0..self.tasks.len())
                    .filter(|i| self.tasks[*i].up)
                    .collect();
                // Scaling in, ECS stops tasks; the newest go first here.
                for i in up.iter().rev().take(up.len().saturating_sub(*to as usize)) {
                    self.tasks[*i].up = false;
                }
                self.fill();
                format!("ecs:UpdateService desiredCount {from} → {to}")
            }
            Action::StopTask { arn, reason } => {
                if let Some(t) = self.tasks.iter_mut().find(|t| &t.arn == arn) {
                    t.up = false;
                }
                self.fill();
                format!("ecs:StopTask {} (reason {reason:?})", short(arn))
            }
            Action::SetScaling(s) => {
                self.scaling = Some(*s);
                format!(
                    "application-autoscaling:RegisterScalableTarget min {}, max {}, dynamic scale-in {}",
                    s.min,
                    s.max,
                    if s.dynamic_scaling_in_suspended {
                        "suspended"
                    } else {
                        "resumed"
                    }
                )
            }
        }
    }

    /// The scheduler launches replacements up to desired; they serve after `settle`.
    fn fill(&mut self) {
        while (self.tasks.iter().filter(|t| t.up).count() as u32) < self.desired {
            self.launched += 1;
            self.tasks.push(ModelTask {
                arn: format!("replacement-{}", self.launched),
                up: true,
                serving: false,
                started_at: None,
            });
        }
    }

    fn settle(&mut self) {
        for t in &mut self.tasks {
            t.serving = t.up;
        }
        self.tasks.retain(|t| t.up);
    }
}

/// The task id: the last part of its ARN.
pub(crate) fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The preview in words, for `apply --dry-run`.
pub(crate) fn render(p: &Preview, spec: &RecycleSpec, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let target = format!("{}/{}", spec.cluster, spec.service);
    out.push_str(&format!(
        "  Plan for {target}: recycle {} of {} running task(s) in batches of {}, {}\n",
        p.tasks.len(),
        p.original_desired,
        spec.batch_size,
        if spec.maintain_capacity {
            format!("with {} spare", spec.batch_size)
        } else {
            "without spare capacity".into()
        }
    ));
    for (i, (arn, started)) in p.tasks.iter().enumerate() {
        let age = started.map_or(String::new(), |s| {
            format!("  (started {} ago)", crate::cli::present::age(s, now))
        });
        out.push_str(&format!("    {:>3}. {}{age}\n", i + 1, short(arn)));
    }
    out.push_str("  Changes it would make (time from start, call, desired, lowest running):\n");
    for s in &p.steps {
        out.push_str(&format!(
            "    {:>7}  {:<9}  {}  desired {}, running ≥ {}\n",
            approx(s.at),
            format!("{:?}", s.phase),
            s.call,
            s.desired,
            s.lowest_running
        ));
    }
    out.push_str(&format!(
        "  Reads while it waits (each poll): ecs:DescribeServices, ecs:ListTasks, ecs:DescribeTasks, application-autoscaling:DescribeScalableTargets{}\n",
        if p.drains.is_some() {
            ", elasticloadbalancing:DescribeTargetHealth (one per target group)"
        } else {
            ""
        }
    ));
    if let Some(surge) = p.surge {
        out.push_str(&format!(
            "  Restoring takes the surge back only while desired is still {} (the count it set); a count the autoscaler or a person sets during the run is left as it is\n",
            surge.to
        ));
    }
    let floor = if spec.maintain_capacity {
        p.original_desired
    } else {
        p.original_desired.saturating_sub(spec.batch_size)
    };
    out.push_str(&format!(
        "  Lowest running: {} (original desired {}, guaranteed floor {floor})\n",
        p.lowest_running, p.original_desired
    ));
    out.push_str(&format!(
        "  Estimated duration: {} (each replacement {}: {})\n",
        approx(p.duration),
        approx(p.estimate.replacement),
        p.estimate.basis
    ));
    if let Some(d) = &p.drains {
        out.push_str(&render_drains(d, p, spec));
    }
    out.push_str(&format!("  Would end: {:?}: {}\n", p.outcome, p.message));
    out
}

/// What the drains do to the run, and a warning when they rule it.
fn render_drains(d: &Drains, p: &Preview, spec: &RecycleSpec) -> String {
    let groups = d.groups.join(", ");
    let Some(delay) = d.delay else {
        return format!(
            "  Load balancing: {groups}; the deregistration delay could not be read (elasticloadbalancing:DescribeTargetGroupAttributes), so the estimate leaves the drains out\n"
        );
    };
    let mut out = format!(
        "  Load balancing: each replacement counts only once healthy in {groups}; each stopped task drains for up to {} (deregistration delay) before ECS stops it\n",
        duration::format(delay)
    );
    if d.blocked_batches == 0 {
        out.push_str(&format!(
            "  Drains overlap the next batches (maximumPercent {}% leaves room beside them); the last stopped tasks drain for up to {} after the run ends\n",
            d.maximum_percent,
            duration::format(delay)
        ));
        return out;
    }
    let drained = delay * d.blocked_batches;
    let needed = needed_percent(p, spec);
    out.push_str(&format!(
        "  Warning: maximumPercent {}% leaves no room to launch a replacement beside a draining task, so each of {} batches waits for its stopped tasks to drain first; raise maximumPercent to {needed}% to overlap the drains\n",
        d.maximum_percent, d.blocked_batches
    ));
    if drained * 2 >= p.duration {
        out.push_str(&format!(
            "  Warning: each stop drains for up to {} ({groups} deregistration delay): {} tasks take about {}; lower it, or raise batchSize\n",
            duration::format(delay),
            p.tasks.len(),
            approx(p.duration)
        ));
    }
    out
}

/// The maximumPercent that lets a batch's replacements launch beside its
/// draining tasks, at the desired count of the run.
fn needed_percent(p: &Preview, spec: &RecycleSpec) -> u32 {
    let desired = p.surge.map_or(p.original_desired, |s| s.to).max(1) as u64;
    (((desired + spec.batch_size as u64) * 100).div_ceil(desired)) as u32
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn spec(maintain: bool, batch: u32) -> RecycleSpec {
        let mut v = serde_json::json!({"cluster": "prod", "service": "web", "wait": "30s"});
        v["maintainCapacity"] = maintain.into();
        v["batchSize"] = batch.into();
        crate::request::spec::parse_spec(&v, "spec").unwrap()
    }

    fn service(n: u32) -> Observation {
        let t0 = DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z")
            .unwrap()
            .to_utc();
        Observation {
            service: Ok(ServiceView {
                desired: n,
                running: n,
                pending: 0,
                deployments: vec![DeploymentView {
                    id: "d".into(),
                    primary: true,
                    rollout: "COMPLETED".into(),
                }],
                ..Default::default()
            }),
            tasks: (0..n)
                .map(|i| TaskView {
                    arn: format!("arn:aws:ecs:us-east-1:1:task/prod/t{i}"),
                    last_status: "RUNNING".into(),
                    desired_running: true,
                    health: "HEALTHY".into(),
                    health_checked: true,
                    started_at: Some(t0 + chrono::Duration::seconds(20 + i as i64)),
                    created_at: Some(t0 + chrono::Duration::seconds(i as i64)),
                    ..Default::default()
                })
                .collect(),
            scaling: None,
            evidence: Default::default(),
            targets_refused: None,
            drain: None,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T06:00:00Z")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn with_spare_capacity_the_floor_is_the_original_desired_count() {
        let est = estimate(&[], &service(3).tasks);
        assert_eq!(est.replacement, Duration::from_secs(50), "{}", est.basis);
        let p = rehearse("r", &spec(true, 1), &service(3), est, now());
        assert_eq!(p.outcome, Phase::Succeeded, "{}", p.message);
        assert_eq!(p.tasks.len(), 3);
        assert_eq!(p.lowest_running, 3);
        let calls: Vec<&str> = p.steps.iter().map(|s| s.call.as_str()).collect();
        assert_eq!(calls.len(), 5, "{calls:?}");
        assert!(calls[0].starts_with("ecs:UpdateService desiredCount 3 → 4"));
        assert!(calls[1..4].iter().all(|c| c.starts_with("ecs:StopTask")));
        assert!(calls[4].starts_with("ecs:UpdateService desiredCount 4 → 3"));
        // surge + 3 replacements at 50s, 3 waits of 30s.
        assert_eq!(p.duration, Duration::from_secs(4 * 50 + 3 * 30));
        let text = render(&p, &spec(true, 1), now());
        assert!(
            text.contains("Restoring takes the surge back only while desired is still 4 (the count it set); a count the autoscaler or a person sets during the run is left as it is"),
            "{text}"
        );
        let without = rehearse("r", &spec(false, 1), &service(3), estimate(&[], &[]), now());
        assert!(!render(&without, &spec(false, 1), now()).contains("takes the surge back"));
    }

    #[test]
    fn without_spare_capacity_a_batch_below_desired_is_shown() {
        let est = estimate(&[], &service(4).tasks);
        let p = rehearse("r", &spec(false, 2), &service(4), est, now());
        assert_eq!(p.outcome, Phase::Succeeded);
        assert_eq!(p.lowest_running, 2);
        assert_eq!(p.steps.len(), 4);
    }

    #[test]
    fn earlier_runs_give_the_estimate() {
        let t = now();
        let ev = |s: i64, reason: &str| Event {
            at: t + chrono::Duration::seconds(s),
            reason: Reason::from(reason.to_string()),
            message: String::new(),
            task: None,
        };
        let earlier = RecycleStatus {
            events: vec![
                ev(0, "Recycling"),
                ev(12, "Recycled"),
                ev(42, "Recycling"),
                ev(56, "Recycled"),
            ],
            ..Default::default()
        };
        let est = estimate(&[earlier], &service(2).tasks);
        assert_eq!(est.replacement, Duration::from_secs(14));
        assert!(
            est.basis
                .contains("2 replacement(s) observed in 1 earlier run"),
            "{}",
            est.basis
        );
    }

    fn behind_a_target_group(n: u32, maximum_percent: u32, delay: u64) -> Observation {
        let mut o = service(n);
        if let Ok(svc) = o.service.as_mut() {
            svc.load_balancers = vec![crate::request::observation::LoadBalancerView {
                target_group_arn:
                    "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web-80/73e2d6bc".into(),
                container_name: "web".into(),
                container_port: 80,
            }];
            svc.maximum_percent = maximum_percent;
        }
        o.drain = Some(Duration::from_secs(delay));
        o
    }

    #[test]
    fn drains_that_maximum_percent_makes_the_replacements_wait_for_are_in_the_estimate_and_warned()
    {
        // 20 tasks, maximumPercent 100: each batch waits 300s of drain.
        let o = behind_a_target_group(20, 100, 300);
        let est = estimate(&[], &o.tasks);
        let p = rehearse("r", &spec(true, 1), &o, est.clone(), now());
        assert_eq!(p.outcome, Phase::Succeeded, "{}", p.message);
        let d = p.drains.as_ref().unwrap();
        assert_eq!((d.blocked_batches, d.batches), (20, 20));
        assert!(
            p.duration >= Duration::from_secs(20 * 300),
            "{:?}",
            p.duration
        );
        let text = render(&p, &spec(true, 1), now());
        assert!(
            text.contains("each stop drains for up to 5m (tg/web-80 deregistration delay): 20 tasks take about"),
            "{text}"
        );
        assert!(text.contains("raise maximumPercent to 105%"), "{text}");
        assert!(
            text.contains("elasticloadbalancing:DescribeTargetHealth"),
            "{text}"
        );
        // With room beside the drains, they overlap: no drain in the estimate.
        let roomy = behind_a_target_group(20, 200, 300);
        let p = rehearse("r", &spec(true, 1), &roomy, est, now());
        assert_eq!(p.drains.as_ref().unwrap().blocked_batches, 0);
        assert!(
            p.duration < Duration::from_secs(20 * 300),
            "{:?}",
            p.duration
        );
        let text = render(&p, &spec(true, 1), now());
        assert!(text.contains("Drains overlap the next batches"), "{text}");
        assert!(!text.contains("Warning"), "{text}");
    }
}
