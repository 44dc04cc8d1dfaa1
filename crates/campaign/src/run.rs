//! One schedule, end to end: the world made from its plan, the replicas
//! started, every act of the schedule done at its time (requests created,
//! verbs run, faults begun and healed), every fault healed and every
//! replica running again, then the requests given a bound to finish, a
//! lease more for any late call to show, and the checks run on what was
//! seen. A run that cannot be made (the harness's failure, not the
//! operator's) says so apart from violations.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use ecs_recycler::store::{Kind, Store};

use crate::bed::replicas::LEASE_SECONDS;
use crate::bed::{Bed, Shared};
use crate::checks::{self, Evidence, Run, Violation};
use crate::nemesis::FaultKind;
use crate::plan::Schedule;
use crate::timeline::World;
use crate::watch::{Act, Entry};

/// How long, after the schedule's last act, every request has to finish.
pub const LIVENESS: Duration = Duration::from_secs(45);

/// How often the store is read while a schedule runs.
const READ_EVERY: Duration = Duration::from_millis(40);

/// What one schedule came to.
pub struct Outcome {
    pub schedule: Schedule,
    pub violations: Vec<Violation>,
    /// Mutating calls the fence check judged, and could not.
    pub judged: usize,
    pub unjudged: usize,
    /// Stops that raced a protection set after their read.
    pub raced: usize,
    /// Faults that acted on something, by kind.
    pub injected: BTreeMap<FaultKind, usize>,
    pub seconds: f64,
    /// Why the run could not be made, if it could not.
    pub harness: Option<String>,
    /// The acts as they happened, on the simulator's clock.
    pub journal: Vec<Entry>,
    /// The run's directory (logs, timeline, store), kept when something was found.
    pub kept: Option<PathBuf>,
    /// Each request's phase at the end.
    pub ends: Vec<(String, String)>,
}

/// A record created or a verb run, beside the schedule.
type Beside = std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// One act of a schedule.
#[derive(Clone, Copy, Debug)]
enum Step {
    Create(usize),
    Verb(&'static str, usize),
    Begin(usize),
    Heal(usize),
}

fn steps(s: &Schedule) -> Vec<(f64, Step)> {
    let mut steps = Vec::new();
    for (i, r) in s.requests.iter().enumerate() {
        if r.at > 0.0 {
            steps.push((r.at, Step::Create(i)));
        }
        if let Some(at) = r.cancel_at {
            steps.push((at, Step::Verb("cancel", i)));
        }
        if let Some((at, held)) = r.pause {
            steps.push((at, Step::Verb("pause", i)));
            steps.push((at + held, Step::Verb("resume", i)));
        }
    }
    for (i, f) in s.faults.iter().enumerate() {
        steps.push((f.at, Step::Begin(i)));
        if f.fault.lasts() > 0.0 {
            steps.push((f.at + f.fault.lasts(), Step::Heal(i)));
        }
    }
    steps.sort_by(|a, b| a.0.total_cmp(&b.0));
    steps
}

pub async fn run(seed: u64, shared: &Shared) -> Outcome {
    let schedule = Schedule::draw(seed);
    let started = Instant::now();
    let task = tokio::spawn(run_schedule(schedule.clone(), shared.clone()));
    let mut outcome = match task.await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => failed_run(schedule, format!("{e:#}")),
        Err(e) => failed_run(schedule, format!("the run panicked: {e}")),
    };
    outcome.seconds = started.elapsed().as_secs_f64();
    outcome
}

fn failed_run(schedule: Schedule, why: String) -> Outcome {
    Outcome {
        schedule,
        violations: Vec::new(),
        judged: 0,
        unjudged: 0,
        raced: 0,
        injected: BTreeMap::new(),
        seconds: 0.0,
        harness: Some(why),
        journal: Vec::new(),
        kept: None,
        ends: Vec::new(),
    }
}

async fn run_schedule(schedule: Schedule, shared: Shared) -> anyhow::Result<Outcome> {
    let mut bed = Bed::setup(schedule.clone(), &shared).await?;
    let reader = bed
        .watch
        .read_store(bed.store.clone(), bed.sim.clock, READ_EVERY);
    for (i, r) in schedule.requests.iter().enumerate() {
        if r.at == 0.0 {
            bed.create_request(i).await?;
        }
    }
    for i in 0..bed.replicas.count() {
        bed.replicas.start(i)?;
    }
    let injected = perform(&mut bed, &schedule).await?;
    settle(&bed).await;
    // Long enough for a late answer to be acted on, and seen.
    tokio::time::sleep(Duration::from_secs_f64(LEASE_SECONDS + 0.5)).await;
    reader.abort();
    let timeline = bed.sim.timeline().await?;
    let records = bed.store.list_all(Kind::RecycleRequest).await?;
    let scaling_end = scaling_end(&bed).await?;
    bed.replicas.stop_all();
    let logs: Vec<(String, String)> = bed
        .replicas
        .logs()
        .iter()
        .map(|(id, path)| {
            (
                id.clone(),
                std::fs::read_to_string(path).unwrap_or_default(),
            )
        })
        .collect();
    let observed = bed.watch.snapshot();
    let runs: BTreeMap<String, Run> = records
        .iter()
        .map(|r| {
            let spec = r.spec.clone().unwrap_or_default();
            let status = r.status.clone().unwrap_or_default();
            (
                r.name.clone(),
                Run::of(&r.name, &spec, &status, &bed.sim.clock),
            )
        })
        .collect();
    let ends = evidence_ends(&runs);
    let evidence = Evidence {
        schedule: &schedule,
        world: World::new(&timeline),
        runs,
        observed: &observed,
        logs: &logs,
        scaling_end,
        lease: LEASE_SECONDS,
    };
    let verdict = checks::check(&evidence);
    let found = !verdict.violations.is_empty();
    let kept = if found || shared.keep {
        for what in ["timeline", "events"] {
            let (_, body) =
                test_support::raw_request(&bed.sim.url, "GET", &format!("/_sim/{what}"), &[], b"")
                    .await;
            let _ = std::fs::write(bed.dir.join(format!("{what}.json")), body);
        }
        Some(bed.dir.clone())
    } else {
        let _ = std::fs::remove_dir_all(&bed.dir);
        None
    };
    Ok(Outcome {
        schedule,
        violations: verdict.violations,
        judged: verdict.judged,
        unjudged: verdict.unjudged,
        raced: verdict.raced,
        injected,
        seconds: 0.0,
        harness: None,
        journal: observed.journal,
        kept,
        ends,
    })
}

fn evidence_ends(runs: &BTreeMap<String, Run>) -> Vec<(String, String)> {
    runs.values()
        .map(|r| (r.name.clone(), r.phase.clone()))
        .collect()
}

/// Does every act of the schedule at its time, then has every replica
/// running again; answers the faults that acted on something, by kind.
async fn perform(bed: &mut Bed, schedule: &Schedule) -> anyhow::Result<BTreeMap<FaultKind, usize>> {
    let zero = tokio::time::Instant::now();
    let mut injected: BTreeMap<FaultKind, usize> = BTreeMap::new();
    // Records created and verbs run go on beside the schedule, one after
    // another in the schedule's order: a store held by a stopped replica
    // must not keep its SIGCONT from coming, nor a resume overtake its pause.
    let (send, mut acts) = tokio::sync::mpsc::unbounded_channel::<Beside>();
    let beside = tokio::spawn(async move {
        while let Some(act) = acts.recv().await {
            act.await?;
        }
        anyhow::Ok(())
    });
    for (at, step) in steps(schedule) {
        tokio::time::sleep_until(zero + Duration::from_secs_f64(at)).await;
        match step {
            Step::Create(i) => {
                let _ = send.send(Box::pin(bed.create_request(i)));
            }
            Step::Verb(verb, i) => {
                let verb = bed.verb(verb, &schedule.requests[i].name);
                let _ = send.send(Box::pin(async move {
                    verb.await;
                    Ok(())
                }));
            }
            Step::Begin(i) => {
                let fault = &schedule.faults[i].fault;
                if bed.begin(fault).await {
                    *injected.entry(fault.kind()).or_default() += 1;
                }
            }
            Step::Heal(i) => bed.heal(&schedule.faults[i].fault).await,
        }
    }
    for i in 0..bed.replicas.count() {
        if let Some(id) = bed.replicas.resume(i) {
            bed.watch.note(&bed.sim.clock, Act::Resumed(id));
        }
        bed.replicas.start(i)?;
    }
    drop(send);
    beside.await??;
    Ok(injected)
}

/// Waits until every request of the schedule is finished, or [`LIVENESS`].
async fn settle(bed: &Bed) {
    let deadline = tokio::time::Instant::now() + LIVENESS;
    while tokio::time::Instant::now() < deadline {
        let Ok(records) = bed.store.list_all(Kind::RecycleRequest).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let finished = records
            .iter()
            .filter(|r| {
                r.status
                    .as_ref()
                    .and_then(|s| s["phase"].as_str())
                    .is_some_and(|p| {
                        ["Succeeded", "Failed", "Cancelled", "WindowClosed"].contains(&p)
                    })
            })
            .count();
        if finished == bed.schedule.requests.len() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Each autoscaling target at the end: (min, max, anything suspended).
async fn scaling_end(bed: &Bed) -> anyhow::Result<BTreeMap<String, (u32, u32, bool)>> {
    use aws_sdk_applicationautoscaling::types::ServiceNamespace;
    let answer = bed
        .clients
        .aas
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Ecs)
        .send()
        .await
        .context("describe the scalable targets")?;
    let mut out = BTreeMap::new();
    for t in answer.scalable_targets() {
        let name = t.resource_id().rsplit('/').next().unwrap_or_default();
        let suspended = t.suspended_state().is_some_and(|s| {
            s.dynamic_scaling_in_suspended() == Some(true)
                || s.dynamic_scaling_out_suspended() == Some(true)
                || s.scheduled_scaling_suspended() == Some(true)
        });
        out.insert(
            name.to_string(),
            (t.min_capacity() as u32, t.max_capacity() as u32, suspended),
        );
    }
    Ok(out)
}
