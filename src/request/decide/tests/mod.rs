//! Table-driven tests of the decision: every phase, and every observation
//! that changes what is decided. One file per phase or concern, beside the
//! code it tests; the fixtures they share are here.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::*;
use crate::hooks::spec::Point;
use crate::request::observation::{
    DeploymentNote, DeploymentView, ServiceEvent, ServiceView, StoppedTask, TaskProtection,
    TaskView,
};
use crate::request::spec::parse_spec;
use crate::request::status::{DesiredChange, Event, Outcome, Plan, ProtectedTask, Reason};

mod capacity;
mod causes;
mod ending;
mod gates;
mod hooks;
mod pending;
mod protection;
mod recycling;
mod restoring;
mod stability;
mod strategy;
mod surging;
mod targets;
mod timeline;
mod unseen;
mod window;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

fn spec(extra: serde_json::Value) -> RecycleSpec {
    let mut v = json!({"cluster": "prod", "service": "web"});
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    parse_spec(&v, "spec").unwrap()
}

fn task(arn: &str, status: &str, desired_running: bool, healthy: bool, started: i64) -> TaskView {
    TaskView {
        arn: arn.into(),
        last_status: status.into(),
        desired_running,
        health: if healthy { "HEALTHY" } else { "UNKNOWN" }.into(),
        health_checked: true,
        started_at: Some(at(started)),
        created_at: Some(at(started - 10)),
        ..Default::default()
    }
}

fn serving(arn: &str, started: i64) -> TaskView {
    task(arn, "RUNNING", true, true, started)
}

fn service(desired: u32, running: u32, pending: u32) -> ServiceView {
    ServiceView {
        desired,
        running,
        pending,
        deployments: vec![DeploymentView {
            id: "ecs-svc/1".into(),
            primary: true,
            rollout: "COMPLETED".into(),
        }],
        ..Default::default()
    }
}

/// An observation of `svc` and `tasks`, none of them protected from
/// scale-in (as read right before a stop).
fn obs(svc: ServiceView, tasks: Vec<TaskView>) -> Observation {
    let protection = tasks.iter().map(|t| unprotected(&t.arn)).collect();
    Observation {
        service: Ok(svc),
        tasks,
        scaling: None,
        evidence: Default::default(),
        targets_refused: None,
        drain: None,
        protection,
        capacity: Default::default(),
    }
}

fn unprotected(arn: &str) -> TaskProtection {
    TaskProtection {
        arn: arn.into(),
        protected: false,
        until: None,
    }
}

fn steady3() -> Observation {
    obs(
        service(3, 3, 0),
        vec![serving("t2", 20), serving("t1", 10), serving("t3", 30)],
    )
}

fn run(spec: &RecycleSpec, status: &RecycleStatus, o: &Observation, now: i64) -> Decision {
    let ctx = Context {
        name: "rotate",
        spec,
        now: at(now),
        poll: Duration::from_secs(1),
        blocked_by: None,
        alarms: None,
        serving_since: None,
    };
    decide(&ctx, status, o)
}

fn in_phase(phase: Phase) -> RecycleStatus {
    RecycleStatus {
        phase,
        plan: Some(Plan {
            original_desired: 3,
            original_scaling: None,
            tasks: vec!["t1".into(), "t2".into(), "t3".into()],
            planned_at: at(0),
        }),
        started_at: Some(at(0)),
        ..Default::default()
    }
}

fn surged(phase: Phase) -> RecycleStatus {
    RecycleStatus {
        surge: Some(DesiredChange { from: 3, to: 4 }),
        ..in_phase(phase)
    }
}

fn batch_t1(phase: Phase) -> RecycleStatus {
    RecycleStatus {
        batch: vec!["t1".into()],
        stopped: vec!["t1".into()],
        step_started_at: Some(at(100)),
        ..surged(phase)
    }
}

fn provisioning(arn: &str, created: i64) -> TaskView {
    TaskView {
        arn: arn.into(),
        last_status: "PROVISIONING".into(),
        desired_running: true,
        health: "UNKNOWN".into(),
        health_checked: true,
        started_at: None,
        created_at: Some(at(created)),
        ..Default::default()
    }
}

/// t1's batch (begun at 100) with its replacement r1 still provisioning.
/// Batch t1's replacement r1 serves: the batch is done.
fn batch_t1_done() -> Observation {
    obs(
        service(4, 4, 0),
        vec![
            task("t1", "STOPPED", false, false, 10),
            serving("t2", 20),
            serving("t3", 30),
            serving("s", 50),
            serving("r1", 110),
        ],
    )
}

fn batch_waiting() -> Observation {
    obs(
        service(4, 3, 1),
        vec![
            task("t1", "STOPPED", false, false, 10),
            serving("t2", 20),
            serving("t3", 30),
            serving("s", 50),
            provisioning("r1", 150),
        ],
    )
}
