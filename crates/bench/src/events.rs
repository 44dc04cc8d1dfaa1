//! Scenario `events`: the recycle of scenario `recycle` (the 20-task
//! service, batch 1, `maintainCapacity`) by an operator woken by ECS's
//! events, beside the polling operator, all at once on this machine: each
//! on its own simulator, the event-driven ones reading the simulator's
//! events from a queue of their own on one moto server. The feed perfect;
//! 20% of events dropped, 20% duplicated and reordered; and falling silent
//! a quarter into the run. Each reports ECS calls per recycled task,
//! duration ÷ ideal and whether every invariant held (from the timeline);
//! the silent one also how soon after the first change nobody heard of
//! the operator fell back to polling.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::harness::*;
use crate::product::EventsConfig;
use crate::scenarios::{
    CALLS_PER_TASK, OVERHEAD, TASKS, measure, sim_with_service, wait_finished, wait_status,
};
use crate::{BenchError, Figure};

const S: &str = "events";
const FELL_BACK: &str = "first change unheard → polling";
const INVARIANTS: &str = "every invariant held (1 = yes)";

/// What feeds the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Feed {
    Polling,
    Perfect,
    Unreliable,
    SilentMidRun,
}

impl Feed {
    const ALL: [Feed; 4] = [
        Feed::Polling,
        Feed::Perfect,
        Feed::Unreliable,
        Feed::SilentMidRun,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Polling => "polling (no events)",
            Self::Perfect => "events",
            Self::Unreliable => "events, 20% dropped, 20% duplicated, reordered",
            Self::SilentMidRun => "events, silent from a quarter in",
        }
    }

    /// The simulator's `events` settings for a feed into `queue`.
    fn settings(self, queue: &str) -> Option<Value> {
        match self {
            Self::Polling => None,
            Self::Unreliable => Some(json!({
                "sqsQueueUrl": queue, "drop": 0.2, "duplicate": 0.2, "reorder": true,
                // Copies held up to half a simulated second: 10 s on AWS's clock.
                "reorderWindow": "500ms",
            })),
            Self::Perfect | Self::SilentMidRun => Some(json!({"sqsQueueUrl": queue})),
        }
    }
}

/// Every feed, `runs` recycles each, all at once.
pub async fn events(runs: usize) -> Result<Vec<Figure>, BenchError> {
    let moto = tokio::task::spawn_blocking(test_support::moto::Moto::start)
        .await
        .map_err(|e| failed("start moto's server (the queues)", e))?;
    let sqs = aws_sdk_sqs::Client::new(
        &sdk_config(&moto.url, aws_config::retry::RetryConfig::standard()).await,
    );
    let mut work = JoinSet::new();
    for feed in Feed::ALL {
        for run in 0..runs.max(1) {
            let (sqs, moto_url) = (sqs.clone(), moto.url.clone());
            work.spawn(async move {
                let figures = recycle(feed, run, &sqs, &moto_url).await;
                (feed, figures)
            });
        }
    }
    let mut each: Vec<(Feed, Vec<Figure>)> = Vec::new();
    while let Some(done) = work.join_next().await {
        let (feed, figures) = done.map_err(|e| failed("an events run", e))?;
        each.push((feed, figures?));
    }
    let mut out = vec![Figure::new(
        S,
        "runs of each at once",
        runs.max(1) as f64,
        "",
    )];
    for feed in Feed::ALL {
        let runs: Vec<&Vec<Figure>> = each
            .iter()
            .filter(|(f, _)| *f == feed)
            .map(|(_, figures)| figures)
            .collect();
        out.extend(summary(feed, &runs));
    }
    drop(moto);
    Ok(out)
}

/// The means of the runs of one feed (the worst for the invariants and
/// the fall-back), with the targets the project set.
fn summary(feed: Feed, runs: &[&Vec<Figure>]) -> Vec<Figure> {
    let names = [
        "duration",
        OVERHEAD,
        CALLS_PER_TASK,
        "p50 healthy → next stop",
        "lowest running count",
        "looks woken by events",
        INVARIANTS,
        FELL_BACK,
    ];
    let mut out = Vec::new();
    for name in names {
        let values: Vec<f64> = runs
            .iter()
            .filter_map(|run| run.iter().find(|f| f.name == name))
            .map(|f| f.value)
            .collect();
        if values.is_empty() {
            continue;
        }
        let value = match name {
            INVARIANTS => values.iter().copied().fold(f64::MAX, f64::min),
            FELL_BACK => values.iter().copied().fold(f64::MIN, f64::max),
            _ => values.iter().sum::<f64>() / values.len() as f64,
        };
        let unit = runs[0]
            .iter()
            .find(|f| f.name == name)
            .map_or("", |f| f.unit);
        let figure = Figure::new(S, format!("{}: {name}", feed.label()), value, unit);
        out.push(match (feed, name) {
            (Feed::Perfect, CALLS_PER_TASK) => figure.at_most(4.0),
            (Feed::Perfect, OVERHEAD) => figure.at_most(1.02),
            (Feed::Unreliable, OVERHEAD) => figure.at_most(1.10),
            (Feed::SilentMidRun, FELL_BACK) => figure.at_most(scaled(15.0).as_secs_f64()),
            (_, INVARIANTS) => figure.at_least(1.0),
            _ => figure,
        });
    }
    out
}

/// One recycle under `feed`: its figures.
async fn recycle(
    feed: Feed,
    run: usize,
    sqs: &aws_sdk_sqs::Client,
    moto_url: &str,
) -> Result<Vec<Figure>, BenchError> {
    let (sim, _) = sim_with_service().await?;
    let config = operator_config("bench");
    let op = match feed {
        Feed::Polling => LocalOperator::start(sim.url(), config).await,
        _ => {
            let queue = sqs
                .create_queue()
                .queue_name(format!("ecs-events-{feed:?}-{run}"))
                .send()
                .await
                .map_err(|e| failed("CreateQueue", e))?
                .queue_url
                .unwrap_or_default();
            if let Some(settings) = feed.settings(&queue) {
                sim.configure(json!({ "events": settings }))
                    .map_err(BenchError)?;
            }
            let events = EventsConfig {
                queue_url: queue,
                safety_poll: scaled(EventsConfig::DEFAULT_SAFETY_POLL.as_secs_f64()),
            };
            LocalOperator::start_with_events(sim.url(), moto_url, config, events).await
        }
    };
    let t0 = sim.now();
    create_rotate(op.store.as_ref()).await?;
    let silence = match feed {
        Feed::SilentMidRun => Some(silence(&sim, &op).await?),
        _ => None,
    };
    let status = wait_finished(op.store.as_ref(), "rotate", Duration::from_secs(600)).await?;
    let t1 = sim.now();
    let wakes = op.metrics.events.wakes.get() as f64;
    op.stop().await;
    if status["phase"] != "Succeeded" {
        return Err(BenchError(format!(
            "{}: the recycle did not succeed: {status}",
            feed.label()
        )));
    }
    let timeline = sim.timeline();
    let mut figures = measure(S, &timeline, (t0, t1), &status);
    figures.push(Figure::new(S, "looks woken by events", wakes, ""));
    let held = invariants_held(&timeline, t0);
    figures.push(Figure::new(S, INVARIANTS, f64::from(u8::from(held)), ""));
    if let Some(silence) = silence {
        let fell_back = silence
            .await
            .map_err(|e| failed("the silence's watch", e))??;
        let first_change = first_change_after(&timeline, fell_back.silent_at);
        let after = first_change.map_or(f64::NAN, |c| fell_back.unhealthy_at - c);
        figures.push(Figure::new(S, FELL_BACK, after, "s"));
    }
    Ok(figures)
}

/// When the feed went silent and when the operator said it unhealthy
/// (simulator time).
struct FellBack {
    silent_at: f64,
    unhealthy_at: f64,
}

/// A quarter into the run, the feed falls silent; the answer comes once
/// the operator has noticed (its `events_feed_healthy` at 0).
async fn silence(
    sim: &ecs_sim::Simulator,
    op: &LocalOperator,
) -> Result<tokio::task::JoinHandle<Result<FellBack, BenchError>>, BenchError> {
    let quarter = TASKS as usize / 4;
    let a_quarter_in = |s: &Value| s["stopped"].as_array().map_or(0, Vec::len) >= quarter;
    let within = Duration::from_secs(300);
    wait_status(
        op.store.as_ref(),
        "rotate",
        within,
        "get a quarter in",
        a_quarter_in,
    )
    .await?;
    let queue = sim.events()["sqsQueueUrl"].clone();
    sim.configure(json!({"events": {"sqsQueueUrl": queue, "silent": true}}))
        .map_err(BenchError)?;
    let silent_at = sim.now();
    let silenced = Instant::now();
    let metrics = op.metrics.clone();
    Ok(tokio::spawn(async move {
        while metrics.events.feed_healthy.get() != 0 {
            if silenced.elapsed() > Duration::from_secs(300) {
                return Err(BenchError("the silent feed was never noticed".into()));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // The simulator runs on this machine's clock.
        Ok(FellBack {
            silent_at,
            unhealthy_at: silent_at + silenced.elapsed().as_secs_f64(),
        })
    }))
}

/// When the operator first stopped a task or changed the desired count
/// after `since` (simulator time): ECS's events of it were due then.
fn first_change_after(timeline: &Value, since: f64) -> Option<f64> {
    timeline["calls"]
        .as_array()?
        .iter()
        .filter(|c| matches!(c["op"].as_str(), Some("StopTask" | "UpdateService")))
        .filter(|c| c.get("error").is_none())
        .filter_map(|c| c["t"].as_f64())
        .find(|t| *t >= since)
}

/// The invariants, from the timeline: the 20 tasks running when the run
/// began each stopped once by StopTask and no other task stopped so;
/// running never below 20; the desired count back at 20.
fn invariants_held(timeline: &Value, t0: f64) -> bool {
    let calls = timeline["calls"].as_array().cloned().unwrap_or_default();
    let stops: Vec<&str> = calls
        .iter()
        .filter(|c| c["op"] == "StopTask" && c.get("error").is_none())
        .filter(|c| c["t"].as_f64().is_some_and(|t| t >= t0))
        .filter_map(|c| c["params"]["task"].as_str())
        .collect();
    let mut distinct = stops.clone();
    distinct.sort();
    distinct.dedup();
    let tasks = timeline["tasks"].as_array().cloned().unwrap_or_default();
    let created_before = |arn: &str| {
        tasks.iter().any(|t| {
            t["taskArn"] == arn && t["transitions"][0]["t"].as_f64().is_some_and(|c| c < t0)
        })
    };
    let (low_running, _) = lowest_counts(timeline, "bench", "web", t0);
    let final_desired = timeline["services"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["service"] == "web"))
        .and_then(|s| s["samples"].as_array()?.last()?["desired"].as_u64());
    stops.len() == TASKS as usize
        && distinct.len() == stops.len()
        && stops.iter().all(|arn| created_before(arn))
        && low_running >= TASKS as u64
        && final_desired == Some(TASKS as u64)
}
