//! Scenario `traffic`: a 10-task service behind a target group with ELB's
//! default 300 s deregistration delay, under steady traffic, recycled four
//! ways: by the operator, by `update-service --force-new-deployment`, by the
//! original Lambda's loop (StopTask one task, then boto3's `services_stable`
//! waiter: no deployment rolling and running = desired), and by a naive
//! loop that waits for each stopped task to be STOPPED. For each, the time,
//! the requests dropped and the lowest count of healthy targets, from the
//! simulator's traffic samples.

use std::time::{Duration, Instant};

use ecs_sim::{SimOptions, Simulator};
use serde_json::{Value, json};
use test_support::load_balancer::{
    Behind, TargetGroupSettings, healthy_targets, service_behind, target_group,
};

use crate::harness::*;
use crate::product::{Kind, Store};
use crate::{BenchError, Figure};

const S: &str = "traffic";
const TASKS: i32 = 10;
const RPS: u32 = 50;
/// ELB's default; on the simulator's target clock, sped up like the rest.
const DELAY: i32 = 300;

struct Bed {
    sim: Simulator,
    ecs: aws_sdk_ecs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    tg: String,
}

async fn bed() -> Result<Bed, BenchError> {
    let sim = Simulator::start(SimOptions {
        timings: timings(0.2),
        ..SimOptions::default()
    })
    .await
    .map_err(|e| failed("start the simulator", e))?;
    sim.configure(json!({"targetTimeScale": SCALE}))
        .map_err(|e| failed("speed up the target clock", e))?;
    let config = sdk_config(sim.url(), aws_config::retry::RetryConfig::standard()).await;
    let ecs = aws_sdk_ecs::Client::new(&config);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    let settings = TargetGroupSettings {
        deregistration_delay: DELAY,
        ..TargetGroupSettings::default()
    };
    let tg = target_group(&elb, "web", settings).await;
    let behind = Behind {
        health_check: true,
        ..Behind::new("bench", "web", TASKS, &tg)
    };
    service_behind(&ecs, &behind).await;
    wait_steady(
        &ecs,
        "bench",
        &["web".into()],
        TASKS as usize,
        Duration::from_secs(120),
    )
    .await?;
    let bed = Bed { sim, ecs, elb, tg };
    bed.wait_healthy(TASKS as usize, Duration::from_secs(120))
        .await?;
    bed.sim
        .set_traffic(json!({"cluster": "bench", "service": "web", "rps": RPS}))
        .map_err(|e| failed("start the traffic", e))?;
    Ok(bed)
}

impl Bed {
    async fn healthy(&self) -> Result<usize, BenchError> {
        Ok(healthy_targets(&self.elb, &self.tg).await)
    }

    async fn wait_healthy(&self, n: usize, within: Duration) -> Result<(), BenchError> {
        let deadline = Instant::now() + within;
        while self.healthy().await? < n {
            if Instant::now() > deadline {
                return Err(BenchError(format!("{n} targets never became healthy")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    async fn running(&self) -> Result<Vec<String>, BenchError> {
        let listed = self
            .ecs
            .list_tasks()
            .cluster("bench")
            .service_name("web")
            .send()
            .await
            .map_err(|e| failed("ListTasks", e))?;
        Ok(listed.task_arns().to_vec())
    }

    /// boto3's `services_stable`: one deployment, running = desired.
    async fn services_stable(&self) -> Result<bool, BenchError> {
        let d = self
            .ecs
            .describe_services()
            .cluster("bench")
            .services("web")
            .send()
            .await
            .map_err(|e| failed("DescribeServices", e))?;
        Ok(d.services()
            .iter()
            .all(|s| s.deployments().len() == 1 && s.running_count() == s.desired_count()))
    }

    async fn last_status(&self, arn: &str) -> Result<String, BenchError> {
        let d = self
            .ecs
            .describe_tasks()
            .cluster("bench")
            .tasks(arn)
            .send()
            .await
            .map_err(|e| failed("DescribeTasks", e))?;
        Ok(d.tasks()
            .first()
            .and_then(|t| t.last_status())
            .unwrap_or("STOPPED")
            .to_string())
    }

    async fn stop(&self, arn: &str) -> Result<(), BenchError> {
        self.ecs
            .stop_task()
            .cluster("bench")
            .task(arn)
            .send()
            .await
            .map_err(|e| failed("StopTask", e))?;
        Ok(())
    }
}

/// How one way of recycling went.
struct Outcome {
    seconds: f64,
    dropped: f64,
    lowest_healthy: f64,
}

/// Dropped requests and the lowest healthy targets from `since` on, from
/// the traffic samples.
fn outcome(timeline: &Value, since: f64, until: f64) -> Outcome {
    let samples = timeline["traffic"]["bench/web"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let window: Vec<&Value> = samples
        .iter()
        .filter(|s| s["t"].as_f64().is_some_and(|t| t >= since))
        .collect();
    Outcome {
        seconds: until - since,
        dropped: window
            .iter()
            .filter_map(|s| s["dropped"].as_u64())
            .sum::<u64>() as f64,
        lowest_healthy: window
            .iter()
            .filter_map(|s| s["healthyTargets"].as_u64())
            .min()
            .unwrap_or(0) as f64,
    }
}

async fn by_operator() -> Result<Outcome, BenchError> {
    let bed = bed().await?;
    let op = LocalOperator::start(bed.sim.url(), operator_config("bench")).await;
    let t0 = bed.sim.now();
    create_rotate(op.store.as_ref()).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        let status = op
            .store
            .get(Kind::RecycleRequest, "rotate")
            .await
            .map_err(|e| failed("read the store", e))?
            .and_then(|r| r.status)
            .unwrap_or(Value::Null);
        if matches!(status["phase"].as_str(), Some("Succeeded" | "Failed")) {
            break status;
        }
        if Instant::now() > deadline {
            return Err(BenchError(format!("the recycle did not finish: {status}")));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let t1 = bed.sim.now();
    op.stop().await;
    if status["phase"] != "Succeeded" {
        return Err(BenchError(format!("the recycle did not succeed: {status}")));
    }
    Ok(outcome(&bed.sim.timeline(), t0, t1))
}

async fn by_force_new_deployment() -> Result<Outcome, BenchError> {
    let bed = bed().await?;
    let before = bed.running().await?;
    let t0 = bed.sim.now();
    force_new_deployment(&bed.ecs).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = bed.running().await?;
        if bed.services_stable().await?
            && now.iter().all(|t| !before.contains(t))
            && bed.healthy().await? >= TASKS as usize
        {
            break;
        }
        if Instant::now() > deadline {
            return Err(BenchError("the deployment did not finish".into()));
        }
    }
    let t1 = bed.sim.now();
    Ok(outcome(&bed.sim.timeline(), t0, t1))
}

/// The Lambda's loop, or (`until_stopped`) the naive one.
async fn by_loop(until_stopped: bool) -> Result<Outcome, BenchError> {
    let bed = bed().await?;
    let planned = bed.running().await?;
    let t0 = bed.sim.now();
    // boto3's waiter delay, scaled like everything else.
    let poll = scaled(15.0);
    for arn in &planned {
        bed.stop(arn).await?;
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            tokio::time::sleep(poll).await;
            let done = if until_stopped {
                bed.last_status(arn).await? == "STOPPED" && bed.services_stable().await?
            } else {
                bed.services_stable().await?
            };
            if done {
                break;
            }
            if Instant::now() > deadline {
                return Err(BenchError(format!("{arn}'s replacement never settled")));
            }
        }
    }
    let t1 = bed.sim.now();
    Ok(outcome(&bed.sim.timeline(), t0, t1))
}

pub async fn traffic() -> Result<Vec<Figure>, BenchError> {
    let mut out = vec![
        Figure::new(S, "tasks", TASKS as f64, ""),
        Figure::new(S, "requests a second", RPS as f64, ""),
        Figure::new(
            S,
            "deregistration delay (scaled)",
            DELAY as f64 / SCALE,
            "s",
        ),
    ];
    for (way, outcome) in [
        ("ecs-recycler", by_operator().await?),
        ("force-new-deployment", by_force_new_deployment().await?),
        (
            "Lambda loop (StopTask + services_stable)",
            by_loop(false).await?,
        ),
        (
            "naive loop (each stopped task STOPPED)",
            by_loop(true).await?,
        ),
    ] {
        let dropped = Figure::new(S, format!("{way}: requests dropped"), outcome.dropped, "");
        let lowest = Figure::new(
            S,
            format!("{way}: lowest healthy targets"),
            outcome.lowest_healthy,
            "",
        );
        let (dropped, lowest) = if way == "ecs-recycler" {
            (dropped.at_most(0.0), lowest.at_least(TASKS as f64))
        } else {
            (dropped, lowest)
        };
        out.push(Figure::new(
            S,
            format!("{way}: duration"),
            outcome.seconds,
            "s",
        ));
        out.push(dropped);
        out.push(lowest);
    }
    Ok(out)
}
