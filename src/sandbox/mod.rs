//! `ecs-recycler sandbox`: the simulator, an embedded store and the operator
//! in one process, so a newcomer sees a service recycled in under a minute
//! with no AWS account. It builds a demo service, applies a demo request
//! through the same checks as `apply`, shows each task as it is stopped and
//! replaced, and ends with a summary checked against the invariants — read
//! from the simulator's audit timeline, not from the operator's own account
//! — and the chart of the run, drawn from its status as `describe` draws it.

pub mod fixture;

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use chrono::Utc;
use ecs_sim::{SimOptions, Simulator, Timings};
use serde_json::Value;

use crate::aws::limit::ApiShare;
use crate::aws::sdk::{self, Timeouts};
use crate::cli::apply::{self, Source};
use crate::cli::chart::{self, Look};
use crate::cli::present;
use crate::cli::{CliError, say};
use crate::operator::{Operator, OperatorConfig};
use crate::request::status::{Phase, Reason, RecycleStatus};
use crate::store::embedded::EmbeddedStore;
use crate::store::{Kind, Store};
use fixture::FixtureError;

const CLUSTER: &str = "demo";
const SERVICE: &str = "web";
const REQUEST: &str = "demo-recycle";

#[derive(Clone, Debug)]
pub struct SandboxOptions {
    /// Tasks of the demo service.
    pub tasks: u32,
    pub batch_size: u32,
    /// The pause after each batch.
    pub wait: Duration,
    /// PROVISIONING → RUNNING of a new task.
    pub task_start: Duration,
    /// RUNNING → HEALTHY.
    pub task_healthy: Duration,
    /// Keep the store here instead of a temporary file (inspect it afterwards with `get --store`).
    pub store: Option<PathBuf>,
    /// The whole run gives up after this.
    pub timeout: Duration,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            tasks: 5,
            batch_size: 1,
            wait: Duration::from_secs(2),
            task_start: Duration::from_millis(2500),
            task_healthy: Duration::from_millis(1500),
            store: None,
            timeout: Duration::from_secs(120),
        }
    }
}

/// What the run did, as the simulator saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub phase: Phase,
    pub message: String,
    pub duration: Duration,
    pub planned: usize,
    pub recycled: usize,
    pub original_desired: u64,
    pub lowest_running: u64,
    pub peak_desired: u64,
    pub final_desired: u64,
    /// Planned tasks stopped more than once, or replacements stopped: both must be empty.
    pub stopped_twice: usize,
    pub replacements_stopped: usize,
    pub calls: usize,
}

impl Summary {
    /// Succeeded, with every invariant the sandbox can see held.
    pub fn holds(&self) -> bool {
        self.phase == Phase::Succeeded
            && self.lowest_running >= self.original_desired
            && self.final_desired == self.original_desired
            && self.recycled == self.planned
            && self.stopped_twice == 0
            && self.replacements_stopped == 0
    }
}

pub async fn run(
    opts: SandboxOptions,
    tty: bool,
    out: &mut dyn Write,
) -> Result<Summary, CliError> {
    if opts.tasks == 0 || opts.tasks > 100 {
        return Err(CliError::Invalid("--tasks must be from 1 to 100".into()));
    }
    let clock = Instant::now();
    let sim = Simulator::start(SimOptions {
        timings: Timings {
            task_start: opts.task_start.as_secs_f64(),
            task_healthy: opts.task_healthy.as_secs_f64(),
            task_stop: 1.0,
            scheduler: 0.25,
            jitter: 0.25,
        },
        ..SimOptions::default()
    })
    .await
    .map_err(|e| CliError::Unreachable(format!("the simulator could not start: {e}")))?;
    let result = drive(&sim, &opts, tty, out, clock).await;
    sim.shutdown().await;
    result
}

async fn drive(
    sim: &Simulator,
    opts: &SandboxOptions,
    tty: bool,
    out: &mut dyn Write,
    clock: Instant,
) -> Result<Summary, CliError> {
    let sdk = demo_service(sim, opts, out, clock).await?;
    let (path, temporary) = match &opts.store {
        Some(p) => (p.clone(), false),
        None => (
            std::env::temp_dir().join(format!("ecs-recycler-sandbox-{}.json", std::process::id())),
            true,
        ),
    };
    let store = Arc::new(EmbeddedStore::open(&path).map_err(|e| {
        CliError::Unreachable(format!("cannot open the store at {}: {e}", path.display()))
    })?);
    apply_demo(store.as_ref(), opts, out).await?;
    let started = sim.now();
    let operator_sdk = sdk::with_timeouts(&sdk, OPERATOR_TIMEOUTS);
    let operator = Operator::builder(store.clone(), operator_sdk, operator_config())
        .start()
        .await
        .map_err(|e| CliError::Unreachable(e.to_string()))?;
    let watched = watch(store.as_ref(), sim, opts, tty, out, started).await;
    operator.stop().await;
    if temporary {
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(path.with_extension("json.lock"));
    }
    let status = watched?;
    let summary = summarize(&status, &sim.timeline(), started);
    print_summary(out, &summary, opts, clock.elapsed());
    // The run as any run's is drawn: from its status, not the simulator's audit.
    let look = if tty { Look::stdout() } else { Look::PLAIN };
    if let Some(drawn) = chart::draw(&status, Utc::now(), look) {
        say(out, "\nThe run, from its status (as describe draws it)");
        let _ = write!(out, "{drawn}");
    }
    if let Some(p) = &opts.store {
        say(
            out,
            format!(
                "\nThe request is kept: ecs-recycler describe {REQUEST} --store {}",
                p.display()
            ),
        );
    }
    Ok(summary)
}

/// The simulator is in this process: an answer later than these is a fault.
const OPERATOR_TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(1),
    attempt: Duration::from_secs(3),
    operation: Duration::from_secs(10),
};

/// The sandbox's operator: quick looks, short leases, one replica.
fn operator_config() -> OperatorConfig {
    OperatorConfig {
        replica_id: "sandbox".into(),
        concurrency: 4,
        poll_interval: Duration::from_millis(250),
        idle_poll_interval: Duration::from_secs(2),
        policy_interval: Duration::from_secs(10),
        lease_duration: Duration::from_secs(5),
        retention: Duration::from_secs(3600),
        api_share: ApiShare::default(),
        aws_timeouts: OPERATOR_TIMEOUTS,
    }
}

/// Makes the demo service and waits until its tasks run and are healthy;
/// answers the SDK configuration that reaches the simulator.
async fn demo_service(
    sim: &Simulator,
    opts: &SandboxOptions,
    out: &mut dyn Write,
    clock: Instant,
) -> Result<aws_config::SdkConfig, CliError> {
    let sdk = fixture::client_config(sim.url(), RetryConfig::standard()).await;
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    say(
        out,
        format!(
            "Simulator (ECS + Application Auto Scaling) at {}",
            sim.url()
        ),
    );
    let demo = [SERVICE.to_string()];
    let made = match fixture::create_service(&ecs, CLUSTER, SERVICE, opts.tasks as i32, true).await
    {
        Ok(()) => {
            fixture::wait_steady(&ecs, CLUSTER, &demo, opts.tasks as usize, opts.timeout).await
        }
        Err(e) => Err(e),
    };
    made.map_err(|e| match e {
        FixtureError::Aws(why) => CliError::Unreachable(format!("the demo service: {why}")),
        FixtureError::NotSteady(why) => CliError::Unsuccessful(why),
    })?;
    say(
        out,
        format!(
            "Service {CLUSTER}/{SERVICE}: {} tasks running and healthy ({:.1}s)",
            opts.tasks,
            clock.elapsed().as_secs_f64()
        ),
    );
    Ok(sdk)
}

/// Applies the demo request as `apply` would, saying what it applies.
async fn apply_demo(
    store: &EmbeddedStore,
    opts: &SandboxOptions,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let manifest = demo_manifest(opts);
    say(out, "\nApplying this request:\n");
    for line in manifest.lines() {
        say(out, format!("    {line}"));
    }
    let (mut good, bad) = apply::check(&[Source {
        name: "sandbox.yaml".into(),
        text: manifest,
    }]);
    if let Some(b) = bad.first() {
        return Err(CliError::Invalid(format!(
            "the demo request is invalid: {b}"
        )));
    }
    let doc = good.remove(0).doc;
    // A kept store may hold an earlier run's request of the same name.
    let _ = store.delete(Kind::RecycleRequest, REQUEST).await;
    store
        .create(Kind::RecycleRequest, &doc.name, doc.spec, Utc::now())
        .await?;
    say(
        out,
        format!(
            "{} created\n",
            apply::resource(Kind::RecycleRequest, REQUEST)
        ),
    );
    Ok(())
}

fn demo_manifest(opts: &SandboxOptions) -> String {
    format!(
        "apiVersion: ecs-recycler/v1
kind: RecycleRequest
metadata:
  name: {REQUEST}
spec:
  cluster: {CLUSTER}
  service: {SERVICE}
  maintainCapacity: true   # one spare task for the run: never below desired
  batchSize: {}
  wait: {}
  stabilityTimeout: 1m
",
        opts.batch_size,
        crate::duration::format(opts.wait)
    )
}

/// Prints a line per event of the request and per replacement task, with a
/// progress bar (redrawn in place on a terminal), until the request ends.
async fn watch<S: Store>(
    store: &S,
    sim: &Simulator,
    opts: &SandboxOptions,
    tty: bool,
    out: &mut dyn Write,
    started: f64,
) -> Result<RecycleStatus, CliError> {
    let until = Instant::now() + opts.timeout;
    let mut events_seen = 0usize;
    let mut tasks_seen: HashSet<String> = HashSet::new();
    let mut last_bar = String::new();
    loop {
        let record = store
            .get(Kind::RecycleRequest, REQUEST)
            .await?
            .ok_or_else(|| CliError::NotFound("the demo request disappeared".into()))?;
        let status = crate::request::status::request_status(record.status.as_ref())
            .map_err(CliError::Unsuccessful)?;
        let timeline = sim.timeline();
        let mut lines = Vec::new();
        for e in status.events.iter().skip(events_seen) {
            lines.push(event_line(e, &status));
        }
        events_seen = status.events.len();
        // The first tasks the service launched after the request began are
        // the spare capacity the surge asked for; the rest replace stopped ones.
        let spares = status
            .surge
            .map_or(0, |c| c.to.saturating_sub(c.from) as usize);
        let launched = launched_since(&timeline, started);
        for (arn, t) in new_healthy_tasks(&timeline, started, &mut tasks_seen) {
            let rank = launched
                .iter()
                .position(|a| *a == arn)
                .unwrap_or(usize::MAX);
            let what = if rank < spares {
                "spare task"
            } else {
                "replacement"
            };
            lines.push(format!(
                "  {:>6.1}s  + {what} {} running and healthy",
                t - started,
                crate::request::preview::short(&arn)
            ));
        }
        let (done, total) = status.progress();
        let (desired, running) = counts(&timeline);
        let bar = format!(
            "  {} {done}/{total}  {:?}  desired {desired}, running {running}",
            present::bar(done, total, 20),
            status.phase
        );
        if tty {
            let _ = write!(out, "\r\x1b[K");
        }
        for l in &lines {
            say(out, l);
        }
        if tty {
            let _ = write!(out, "{bar}");
            let _ = out.flush();
        } else if bar != last_bar {
            say(out, &bar);
        }
        last_bar = bar;
        if status.phase.is_terminal() {
            if tty {
                say(out, "");
            }
            return Ok(status);
        }
        if Instant::now() > until {
            return Err(CliError::Unsuccessful(format!(
                "the demo request did not finish within {}; it is {:?}: {}",
                crate::duration::format(opts.timeout),
                status.phase,
                status.message
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn event_line(e: &crate::request::status::Event, status: &RecycleStatus) -> String {
    let at = status
        .started_at
        .map_or(0.0, |s| (e.at - s).num_milliseconds() as f64 / 1000.0);
    match (&e.task, &e.reason) {
        (Some(task), Reason::Recycling) => format!(
            "  {at:>6.1}s  - {}: stopping {}",
            e.message.split(':').next().unwrap_or_default(),
            crate::request::preview::short(task)
        ),
        _ => format!("  {at:>6.1}s  {}", e.message),
    }
}

/// Tasks of the demo service launched after `since`, in launch order.
fn launched_since(timeline: &Value, since: f64) -> Vec<String> {
    let mut out: Vec<(f64, String)> = timeline["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["cluster"] == CLUSTER && t["service"] == SERVICE)
        .filter_map(|t| {
            let created = t["transitions"][0]["t"].as_f64()?;
            (created > since).then(|| {
                (
                    created,
                    t["taskArn"].as_str().unwrap_or_default().to_string(),
                )
            })
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out.into_iter().map(|(_, arn)| arn).collect()
}

/// Tasks of the demo service that became healthy after `since`, once each.
fn new_healthy_tasks(
    timeline: &Value,
    since: f64,
    seen: &mut HashSet<String>,
) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for t in timeline["tasks"].as_array().into_iter().flatten() {
        if t["cluster"] != CLUSTER || t["service"] != SERVICE {
            continue;
        }
        let arn = t["taskArn"].as_str().unwrap_or_default().to_string();
        if seen.contains(&arn) {
            continue;
        }
        let healthy_at = t["transitions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["healthStatus"] == "HEALTHY")
            .and_then(|x| x["t"].as_f64());
        let created = t["transitions"][0]["t"].as_f64().unwrap_or(0.0);
        if let Some(at) = healthy_at {
            seen.insert(arn.clone());
            if created > since {
                out.push((arn, at));
            }
        }
    }
    out.sort_by(|a, b| a.1.total_cmp(&b.1));
    out
}

/// The demo service's (desired, running) at the last sample.
fn counts(timeline: &Value) -> (u64, u64) {
    samples(timeline).last().map_or((0, 0), |s| (s.1, s.2))
}

/// (t, desired, running) of the demo service.
fn samples(timeline: &Value) -> Vec<(f64, u64, u64)> {
    timeline["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["cluster"] == CLUSTER && s["service"] == SERVICE)
        .and_then(|s| s["samples"].as_array())
        .into_iter()
        .flatten()
        .map(|x| {
            (
                x["t"].as_f64().unwrap_or(0.0),
                x["desired"].as_u64().unwrap_or(0),
                x["running"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn summarize(status: &RecycleStatus, timeline: &Value, started: f64) -> Summary {
    let s = samples(timeline);
    let before = s.iter().rev().find(|x| x.0 <= started).copied();
    let during: Vec<(f64, u64, u64)> = s.iter().filter(|x| x.0 > started).copied().collect();
    let original_desired = status
        .plan
        .as_ref()
        .map_or(before.map_or(0, |b| b.1), |p| p.original_desired as u64);
    let lowest_running = during
        .iter()
        .map(|x| x.2)
        .chain(before.map(|b| b.2))
        .min()
        .unwrap_or(0);
    let peak_desired = during.iter().map(|x| x.1).max().unwrap_or(original_desired);
    let final_desired = s.last().map_or(0, |x| x.1);
    let planned: Vec<String> = status
        .plan
        .as_ref()
        .map(|p| p.tasks.clone())
        .unwrap_or_default();
    let mut stops: Vec<String> = Vec::new();
    let mut replacements_stopped = 0;
    for t in timeline["tasks"].as_array().into_iter().flatten() {
        if t["cluster"] != CLUSTER || t["service"] != SERVICE || t["stoppedBy"] != "StopTask" {
            continue;
        }
        let arn = t["taskArn"].as_str().unwrap_or_default().to_string();
        if !planned.contains(&arn) {
            replacements_stopped += 1;
        }
        stops.push(arn);
    }
    let unique: HashSet<&String> = stops.iter().collect();
    let calls = timeline["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["t"].as_f64().unwrap_or(0.0) >= started)
        .count();
    Summary {
        phase: status.phase,
        message: status.message.clone(),
        duration: match (status.started_at, status.finished_at) {
            (Some(a), Some(b)) => (b - a).to_std().unwrap_or_default(),
            _ => Duration::ZERO,
        },
        planned: planned.len(),
        recycled: status.recycled().count(),
        original_desired,
        lowest_running,
        peak_desired,
        final_desired,
        stopped_twice: stops.len() - unique.len(),
        replacements_stopped,
        calls,
    }
}

fn print_summary(out: &mut dyn Write, s: &Summary, opts: &SandboxOptions, total: Duration) {
    let check = |ok: bool| if ok { "ok" } else { "VIOLATED" };
    say(out, "\nSummary");
    say(
        out,
        format!("  Outcome:          {:?}: {}", s.phase, s.message),
    );
    say(
        out,
        format!(
            "  Duration:         {:.1}s for the recycle ({:.1}s in all, with the demo service's start)",
            s.duration.as_secs_f64(),
            total.as_secs_f64()
        ),
    );
    say(
        out,
        format!(
            "  Tasks recycled:   {} of {} planned, in batches of {}; each stopped once, no replacement stopped [{}]",
            s.recycled,
            s.planned,
            opts.batch_size,
            check(s.stopped_twice == 0 && s.replacements_stopped == 0)
        ),
    );
    say(
        out,
        format!(
            "  Lowest running:   {} against desired {} [{}]",
            s.lowest_running,
            s.original_desired,
            check(s.lowest_running >= s.original_desired)
        ),
    );
    say(
        out,
        format!(
            "  Desired count:    {} → {} during the run → {} after [{}]",
            s.original_desired,
            s.peak_desired,
            s.final_desired,
            check(s.final_desired == s.original_desired)
        ),
    );
    say(
        out,
        format!(
            "  AWS calls:        {} (reads and writes, from the simulator's audit timeline)",
            s.calls
        ),
    );
}
