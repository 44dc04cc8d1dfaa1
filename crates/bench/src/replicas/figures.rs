//! The figures of a run: the account's calls per category against the
//! share (with targets), and what explains the run's time (none): its
//! pace, its calls, its leases, the CPU of each process and the store's
//! calls.

use std::collections::BTreeMap;

use serde_json::Value;

use super::run::Run;
use crate::Figure;
use crate::harness::*;
use crate::store_calls::Calls;

/// Each category's calls since `since`, by the simulator's clock, sorted.
fn calls_by_category(timeline: &Value, since: f64) -> BTreeMap<&'static str, Vec<f64>> {
    let mut out: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for c in timeline["calls"].as_array().into_iter().flatten() {
        let t = c["t"].as_f64().unwrap_or(0.0);
        let op = c["op"].as_str().unwrap_or("");
        if t < since || op.starts_with("_sim") {
            continue;
        }
        let service = if is_ecs_call(op) {
            api_limits::Service::Ecs
        } else {
            api_limits::Service::ApplicationAutoScaling
        };
        if let Some(category) = api_limits::category_of(service, op) {
            out.entry(category.name).or_default().push(t);
        }
    }
    out
}

/// The most calls in any window of one second.
fn busiest_second(times: &[f64]) -> usize {
    let mut most = 0;
    let mut first = 0;
    for (i, t) in times.iter().enumerate() {
        while times[first] < t - 1.0 {
            first += 1;
        }
        most = most.max(i + 1 - first);
    }
    most
}

/// The account's calls per category against the share: the busiest second
/// and the mean rate over the run. `prefix` names the run ("" for the
/// three replicas', as the figures).
pub(super) fn category_figures(s: &'static str, prefix: &str, run: &Run) -> Vec<Figure> {
    let mut figures = Vec::new();
    let t0 = run.t0;
    for (category, times) in calls_by_category(&run.timeline, t0) {
        let (burst, rate) = share_of(category);
        let span = times.last().unwrap_or(&t0) - times.first().unwrap_or(&t0);
        figures.push(
            Figure::new(
                s,
                format!(
                    "{prefix}{category}: most calls in one second (share: burst + a second's refill)"
                ),
                busiest_second(&times) as f64,
                "",
            )
            .at_most(burst + rate),
        );
        figures.push(
            Figure::new(
                s,
                format!("{prefix}{category}: calls a second over the run (share's refill {rate})"),
                times.len() as f64 / span.max(1.0),
                "",
            )
            .at_most(rate),
        );
    }
    figures
}

/// What explains a run's time, no target: when half and nine tenths were
/// done, the steps by outcome, the calls, the waits, the leases, the CPU.
pub(super) fn explaining_figures(
    s: &'static str,
    label: &str,
    run: &Run,
    requests: usize,
) -> Vec<Figure> {
    let mut figures = pace(s, label, run, requests);
    figures.extend(calls(s, label, run, requests));
    figures.extend(leases(s, label, run));
    figures.extend(cpu(s, label, run));
    figures.extend(store(s, label, run, requests));
    figures
}

fn per_request(n: f64, requests: usize) -> f64 {
    n / requests.max(1) as f64
}

/// When half and nine tenths were done, and the steps it took.
fn pace(s: &'static str, label: &str, run: &Run, requests: usize) -> Vec<Figure> {
    let mut figures = vec![
        Figure::new(
            s,
            format!("{label}: half the requests finished"),
            run.half,
            "s",
        ),
        Figure::new(
            s,
            format!("{label}: nine tenths of the requests finished"),
            run.nine_tenths,
            "s",
        ),
    ];
    let steps: f64 = run.steps().iter().sum();
    figures.push(Figure::new(
        s,
        format!("{label}: steps per request"),
        per_request(steps, requests),
        "",
    ));
    for (outcome, n) in run.total_by("ecs_recycler_reconciles_total", "outcome") {
        figures.push(Figure::new(
            s,
            format!("{label}: steps ended {outcome}"),
            n,
            "",
        ));
    }
    let step_sum = run.total("ecs_recycler_step_duration_seconds_sum");
    let step_count = run.total("ecs_recycler_step_duration_seconds_count");
    figures.push(Figure::new(
        s,
        format!("{label}: mean step time"),
        step_sum / step_count.max(1.0),
        "s",
    ));
    figures
}

/// The AWS calls, as the simulator saw them and as the operators sent
/// them, and the waits for their tokens.
fn calls(s: &'static str, label: &str, run: &Run, requests: usize) -> Vec<Figure> {
    let mut figures = Vec::new();
    let (ecs, aas) = calls_since(&run.timeline, run.t0);
    figures.push(Figure::new(
        s,
        format!("{label}: ECS calls per request"),
        per_request(ecs as f64, requests),
        "",
    ));
    figures.push(Figure::new(
        s,
        format!("{label}: Application Auto Scaling calls per request"),
        per_request(aas as f64, requests),
        "",
    ));
    for (op, n) in ecs_calls_by_operation(&run.timeline, run.t0) {
        figures.push(Figure::new(
            s,
            format!("{label}: {op} calls per request"),
            per_request(n as f64, requests),
            "",
        ));
    }
    let outcomes = run.total_by("ecs_recycler_aws_calls_total", "outcome");
    for outcome in ["deferred", "not_sent", "throttled"] {
        figures.push(Figure::new(
            s,
            format!("{label}: AWS calls answered {outcome} (client side)"),
            outcomes.get(outcome).copied().unwrap_or(0.0),
            "",
        ));
    }
    for (category, secs) in run.total_by("ecs_recycler_api_token_wait_seconds_total", "category") {
        figures.push(Figure::new(
            s,
            format!("{label}: seconds waited for tokens: {category}"),
            secs,
            "s",
        ));
    }
    figures
}

/// Leases taken, given back, and taken over from a replica too slow to
/// renew them.
fn leases(s: &'static str, label: &str, run: &Run) -> Vec<Figure> {
    vec![
        Figure::new(
            s,
            format!("{label}: leases taken (free records claimed)"),
            run.logged("lease taken") as f64,
            "",
        ),
        Figure::new(
            s,
            format!("{label}: leases given back (another replica's part)"),
            run.logged("lease given back: another replica's part") as f64,
            "",
        ),
        Figure::new(
            s,
            format!("{label}: leases taken over (expired)"),
            run.total("ecs_recycler_lease_takeovers_total"),
            "",
        ),
        // The other side of a takeover: a holder that found its lease gone,
        // not having renewed it in time.
        Figure::new(
            s,
            format!("{label}: leases found taken over by another replica"),
            run.logged("lease taken over by another replica") as f64,
            "",
        ),
    ]
}

/// The CPU of the operators, of moto (when the records are there) and of
/// the simulator.
fn cpu(s: &'static str, label: &str, run: &Run) -> Vec<Figure> {
    let mut figures = vec![Figure::new(
        s,
        format!("{label}: CPU time, the operators"),
        run.cpu_operators,
        "s",
    )];
    if let Some(cpu) = run.cpu_moto {
        figures.push(Figure::new(
            s,
            format!("{label}: CPU time, the store (moto)"),
            cpu,
            "s",
        ));
    }
    figures.push(Figure::new(
        s,
        format!("{label}: CPU time, the simulator"),
        run.cpu_sim,
        "s",
    ));
    figures
}

/// The store's calls by operation and moto's time to answer them, the
/// listings, and the bytes answered.
fn store(s: &'static str, label: &str, run: &Run, requests: usize) -> Vec<Figure> {
    let mut figures = Vec::new();
    let mut store_calls: BTreeMap<&str, Calls> = BTreeMap::new();
    for (op, c) in run.store_calls.iter().flatten() {
        let all = store_calls.entry(op.as_str()).or_default();
        all.sent += c.sent;
        all.answered += c.answered;
        all.seconds += c.seconds;
    }
    for (op, c) in &store_calls {
        figures.push(Figure::new(
            s,
            format!("{label}: DynamoDB {op} calls per request"),
            per_request(c.sent as f64, requests),
            "",
        ));
        figures.push(Figure::new(
            s,
            format!("{label}: DynamoDB {op}: mean time to moto's answer"),
            c.seconds / c.answered.max(1) as f64,
            "s",
        ));
    }
    // The listing (a Query of the active index) is the call whose cost
    // grows with the active records.
    for (i, calls) in run.store_calls.iter().enumerate() {
        figures.push(Figure::new(
            s,
            format!("{label}: replica {i}: DynamoDB queries (listings) a second"),
            calls.get("query").map_or(0, |c| c.sent) as f64 / run.elapsed.max(1.0),
            "",
        ));
    }
    figures.push(Figure::new(
        s,
        format!("{label}: listings of the store by the benchmark itself"),
        run.own_listings as f64,
        "",
    ));
    if !run.store_calls.is_empty() {
        figures.push(Figure::new(
            s,
            format!("{label}: MiB the store answered"),
            run.store_answered as f64 / (1024.0 * 1024.0),
            "MiB",
        ));
    }
    figures
}
