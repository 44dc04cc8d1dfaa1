//! A schedule drawn from a seed: the store, the replicas, the services, the
//! requests (the workload) and the faults (the nemesis, [`crate::nemesis`]),
//! each at a time relative to the run's start. The same seed gives the same
//! schedule: every choice comes from one generator seeded with it, drawn in
//! a fixed order, and nothing else is random here.

use serde_json::{Value, json};

use crate::nemesis::{Fault, FaultKind};
use crate::shape::{Protection, Shape};

/// The one cluster every service of a schedule is in.
pub const CLUSTER: &str = "c1";

/// The environment variable the replicas read the hook's secret from.
pub const HOOK_SECRET_ENV: &str = "CAMPAIGN_HOOK_SECRET";

/// Until when (seconds into the run) requests are created and faults begin.
pub const WINDOW: f64 = 10.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded store: one JSON file, shared by the replicas.
    Embedded,
    /// A DynamoDB table on moto's server, each replica through a proxy of its own.
    Dynamo,
}

impl StoreKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Dynamo => "dynamodb",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ServicePlan {
    pub name: String,
    pub tasks: u32,
    /// Container `app` has a health check (tasks turn HEALTHY).
    pub health_check: bool,
    /// Behind a load balancer: a task serves once its target is healthy.
    pub load_balancer: bool,
    /// An Application Auto Scaling target: (min, max).
    pub autoscaling: Option<(u32, u32)>,
    /// On a capacity provider strategy with FARGATE_SPOT.
    pub spot: Option<Spot>,
    /// On an EC2 capacity provider with managed scaling, one instance with
    /// room for its tasks and none more: the surge waits for a launch.
    /// Never behind a load balancer, never on Spot.
    pub ec2: bool,
}

/// A service's capacity provider strategy with Fargate Spot in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spot {
    /// FARGATE_SPOT alone.
    Only,
    /// FARGATE for the first task (`base` 1), then both by equal weight.
    Mixed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnAlarm {
    Pause,
    Abort,
}

#[derive(Clone, Debug)]
pub struct HookPlan {
    pub points: Vec<&'static str>,
    /// `onTimeout: fail` (else `continue`).
    pub on_timeout_fail: bool,
}

#[derive(Clone, Debug)]
pub struct RequestPlan {
    pub name: String,
    /// Index into [`Schedule::services`].
    pub service: usize,
    /// Seconds into the run at which it is created (0: before the replicas start).
    pub at: f64,
    pub batch_size: u32,
    pub maintain_capacity: bool,
    pub wait_ms: u64,
    pub gate: Option<OnAlarm>,
    pub hook: Option<HookPlan>,
    /// Seconds into the run at which `ecs-recycler cancel` is run.
    pub cancel_at: Option<f64>,
    /// `ecs-recycler pause` at the first, `resume` the second later.
    pub pause: Option<(f64, f64)>,
    /// What it does with tasks protected from scale-in.
    pub protection: Protection,
    /// Its strategy.
    pub shape: Shape,
}

/// A fault at a time, seconds into the run.
#[derive(Clone, Debug)]
pub struct Timed {
    pub at: f64,
    pub fault: Fault,
}

#[derive(Clone, Debug)]
pub struct Schedule {
    pub seed: u64,
    pub store: StoreKind,
    pub replicas: usize,
    pub services: Vec<ServicePlan>,
    pub requests: Vec<RequestPlan>,
    pub faults: Vec<Timed>,
    /// The replicas read ECS's events (`--events-queue`) from a queue on
    /// moto that the simulator sends them to.
    pub events: bool,
}

/// Salts the seed of the second generator (see [`Schedule::draw`]).
const BENEATH: u64 = 0x6265_6e65_6174_6821;

/// A uniform draw in `[lo, hi)`, to the millisecond so a schedule prints as it runs.
pub fn between(rng: &mut fastrand::Rng, lo: f64, hi: f64) -> f64 {
    let x = lo + rng.f64() * (hi - lo);
    (x * 1000.0).round() / 1000.0
}

impl Schedule {
    /// The schedule of `seed`: stores alternate by seed, the rest is drawn.
    pub fn draw(seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let store = if seed.is_multiple_of(2) {
            StoreKind::Embedded
        } else {
            StoreKind::Dynamo
        };
        let replicas = rng.usize(1..=3);
        let services = (0..rng.usize(2..=3))
            .map(|i| draw_service(&mut rng, i))
            .collect::<Vec<_>>();
        let requests = (0..rng.usize(2..=4))
            .map(|i| draw_request(&mut rng, i, &services))
            .collect();
        let mut schedule = Self {
            seed,
            store,
            replicas,
            services,
            requests,
            faults: Vec::new(),
            events: false,
        };
        for _ in 0..rng.usize(3..=7) {
            let kind = FaultKind::pick(&mut rng);
            if let Some(fault) = kind.draw(&mut rng, &schedule) {
                let at = between(&mut rng, 0.5, WINDOW);
                schedule.faults.push(Timed { at, fault });
            }
        }
        // What came with the ECS beneath (protection, Spot, the event feed,
        // strategies) is drawn from a generator of its own, after the rest:
        // a seed keeps the world, workload and faults it drew before them.
        let mut rng = fastrand::Rng::with_seed(seed ^ BENEATH);
        for s in &mut schedule.services {
            s.spot = (rng.f64() < 0.4).then(|| if rng.bool() { Spot::Only } else { Spot::Mixed });
            s.ec2 = s.spot.is_none() && !s.load_balancer && rng.f64() < 0.3;
        }
        for r in &mut schedule.requests {
            r.protection = Protection::draw(&mut rng);
            r.shape = Shape::draw(&mut rng);
        }
        schedule.events = rng.f64() < 0.5;
        for _ in 0..rng.usize(1..=3) {
            let kind = FaultKind::pick_beneath(&mut rng);
            if let Some(fault) = kind.draw(&mut rng, &schedule) {
                let at = schedule.beneath_at(&mut rng, &fault);
                schedule.faults.push(Timed { at, fault });
            }
        }
        // A service whose tasks hold work now and then: protected early in
        // a run, while its plan still has tasks to stop.
        for i in 0..schedule.requests.len() {
            if rng.f64() < 0.4 {
                let r = &schedule.requests[i];
                let at = between(&mut rng, r.at + 0.3, r.at + 3.0);
                let fault = Fault::protect(&mut rng, r.service);
                schedule.faults.push(Timed { at, fault });
            }
        }
        schedule.faults.sort_by(|a, b| a.at.total_cmp(&b.at));
        schedule
    }

    /// When a fault of the ECS beneath begins: a protection mostly in the
    /// first three seconds of a request on its service (a run here lasts a
    /// few seconds, and a task protected once it is stopped tests nothing),
    /// else at any moment of the window.
    fn beneath_at(&self, rng: &mut fastrand::Rng, fault: &Fault) -> f64 {
        let first = match fault {
            Fault::Protect { service, .. } => self
                .requests
                .iter()
                .filter(|r| r.service == *service)
                .map(|r| r.at)
                .min_by(f64::total_cmp),
            _ => None,
        };
        match first {
            Some(at) if rng.f64() < 0.7 => between(rng, at + 0.3, at + 3.0),
            _ => between(rng, 0.5, WINDOW),
        }
    }

    /// The request's spec as a client writes it.
    pub fn spec(&self, r: &RequestPlan, alarm: &str, hook_url: &str) -> Value {
        let mut spec = json!({
            "cluster": CLUSTER,
            "service": self.services[r.service].name,
            "batchSize": r.batch_size,
            "maintainCapacity": r.maintain_capacity,
            "wait": format!("{}ms", r.wait_ms),
            "stabilityTimeout": "8s",
        });
        if let Some(on_alarm) = r.gate {
            let on_alarm = match on_alarm {
                OnAlarm::Pause => "pause",
                OnAlarm::Abort => "abort",
            };
            spec["gates"] = json!({"alarms": {"names": [alarm], "onAlarm": on_alarm}});
        }
        r.protection.write(&mut spec);
        r.shape.write(&mut spec);
        if let Some(hook) = &r.hook {
            spec["hooks"] = json!([{
                "url": hook_url,
                "at": hook.points,
                "secret": {"env": HOOK_SECRET_ENV},
                "timeout": "500ms",
                "deadline": "3s",
                "onTimeout": if hook.on_timeout_fail { "fail" } else { "continue" },
            }]);
        }
        spec
    }

    /// The schedule as lines a person reads: the world, then every action
    /// with its time into the run.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "seed {}: store {}, {} replica(s){}",
            self.seed,
            self.store.name(),
            self.replicas,
            if self.events {
                ", reading ECS's events"
            } else {
                ""
            }
        )];
        for s in &self.services {
            lines.push(format!(
                "  service {}: {} tasks{}{}{}",
                s.name,
                s.tasks,
                if s.health_check { ", health check" } else { "" },
                if s.load_balancer {
                    ", load balancer"
                } else {
                    ""
                },
                s.autoscaling
                    .map(|(lo, hi)| format!(", autoscaling {lo}..{hi}"))
                    .unwrap_or_default()
            ));
            match s.spot {
                Some(Spot::Only) => lines.last_mut().unwrap().push_str(", on FARGATE_SPOT"),
                Some(Spot::Mixed) => lines
                    .last_mut()
                    .unwrap()
                    .push_str(", on FARGATE (base 1) and FARGATE_SPOT"),
                None => {}
            }
            if s.ec2 {
                let line = lines.last_mut().unwrap();
                line.push_str(", on EC2 (managed scaling, no room to spare)");
            }
        }
        let mut actions: Vec<(f64, String)> = Vec::new();
        for r in &self.requests {
            actions.push((r.at, self.describe_request(r)));
            if let Some(at) = r.cancel_at {
                actions.push((at, format!("cancel {}", r.name)));
            }
            if let Some((at, held)) = r.pause {
                actions.push((at, format!("pause {}", r.name)));
                actions.push((at + held, format!("resume {}", r.name)));
            }
        }
        for f in &self.faults {
            actions.push((f.at, f.fault.describe(self)));
        }
        actions.sort_by(|a, b| a.0.total_cmp(&b.0));
        lines.extend(
            actions
                .into_iter()
                .map(|(at, what)| format!("  {at:>7.3}s  {what}")),
        );
        lines
    }

    fn describe_request(&self, r: &RequestPlan) -> String {
        let mut text = format!(
            "request {} on {}: {}, {}, wait {}ms",
            r.name,
            self.services[r.service].name,
            match r.shape.has_batches() {
                true => format!("batch {}", r.batch_size),
                false => "no batchSize".into(),
            },
            if r.maintain_capacity {
                "surge"
            } else {
                "no surge"
            },
            r.wait_ms
        );
        text.push_str(&r.shape.describe());
        text.push_str(&r.protection.describe());
        if let Some(gate) = r.gate {
            text.push_str(&format!(", gate ({gate:?})"));
        }
        if let Some(hook) = &r.hook {
            text.push_str(&format!(
                ", hook at {} (onTimeout {})",
                hook.points.join("+"),
                if hook.on_timeout_fail {
                    "fail"
                } else {
                    "continue"
                }
            ));
        }
        text
    }
}

fn draw_service(rng: &mut fastrand::Rng, i: usize) -> ServicePlan {
    let tasks = rng.u32(3..=5);
    ServicePlan {
        name: format!("s{i}"),
        tasks,
        health_check: rng.bool(),
        load_balancer: rng.f64() < 0.4,
        autoscaling: (rng.f64() < 0.6).then_some((1, tasks + 4)),
        spot: None,
        ec2: false,
    }
}

fn draw_request(rng: &mut fastrand::Rng, i: usize, services: &[ServicePlan]) -> RequestPlan {
    let service = rng.usize(..services.len());
    let at = if rng.f64() < 0.5 {
        0.0
    } else {
        between(rng, 0.2, WINDOW * 0.6)
    };
    let gate = (rng.f64() < 0.3).then(|| {
        if rng.f64() < 0.7 {
            OnAlarm::Pause
        } else {
            OnAlarm::Abort
        }
    });
    let hook = (rng.f64() < 0.35).then(|| {
        let all = ["beforeStart", "beforeBatch", "afterBatch", "afterEnd"];
        let mut points: Vec<&'static str> = all.into_iter().filter(|_| rng.bool()).collect();
        if points.is_empty() {
            points.push("beforeBatch");
        }
        HookPlan {
            points,
            on_timeout_fail: rng.bool(),
        }
    });
    RequestPlan {
        name: format!("r{i}"),
        service,
        at,
        batch_size: rng.u32(1..=2).min(services[service].tasks - 1),
        maintain_capacity: rng.f64() < 0.75,
        wait_ms: if rng.bool() { 0 } else { 200 },
        gate,
        hook,
        cancel_at: (rng.f64() < 0.15).then(|| between(rng, at + 0.5, at + 6.0)),
        pause: (rng.f64() < 0.15)
            .then(|| (between(rng, at + 0.3, at + 4.0), between(rng, 0.5, 2.5))),
        protection: Protection::Default,
        shape: Shape::Batches,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_schedule_and_stores_alternate() {
        for seed in 0..50 {
            assert_eq!(
                Schedule::draw(seed).describe(),
                Schedule::draw(seed).describe()
            );
        }
        assert_eq!(Schedule::draw(4).store, StoreKind::Embedded);
        assert_eq!(Schedule::draw(5).store, StoreKind::Dynamo);
        assert_ne!(Schedule::draw(1).describe(), Schedule::draw(3).describe());
    }
}
