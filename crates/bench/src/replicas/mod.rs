//! Scenario: replicas that share the work and the API share. Three
//! operator processes on one DynamoDB table behind moto (the issue's
//! setting; `--replica-store file` puts them on one embedded store file
//! instead) against one simulator with ECS's realistic buckets, then one
//! replica on the same work, on a table of its own, for the time. Besides
//! the figures (each replica's share of the steps, the account's
//! calls a second per category against the share, three's time against
//! one's) it reports, for both runs, what explains the times: the steps by
//! outcome, token waits per category, leases given back and taken over,
//! ECS calls per request, each replica's DynamoDB calls by operation and
//! moto's time to answer them (through a counting proxy per replica,
//! [`crate::store_calls`]), and the CPU the operators, moto and the
//! simulator used. Progress is read from the replicas' own gauges, so the
//! benchmark does not load the store it measures.
//!
//! Here the scenario's course and its headline figures; one run of N
//! replicas is in `run.rs`, reading a replica's metrics in `scrape.rs`,
//! and the figures of a run in `figures.rs`.

mod figures;
mod run;
mod scrape;

use std::path::Path;

use test_support::moto::Moto;

use self::figures::{category_figures, explaining_figures};
use self::run::{Bed, run};
use crate::harness::*;
use crate::{BenchError, Figure};

/// The simulator's default: each task's start and health times vary by ±20 %.
const JITTER: f64 = 0.2;

/// Where the replicas keep their records (`--replica-store`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplicaStore {
    /// One embedded store file, locked by every write of every replica.
    File,
    /// One DynamoDB table behind moto's server, started for the scenario.
    Dynamodb,
}

/// The scenario: three replicas on one store, then one on the same work.
pub async fn replicas(
    services: usize,
    store: ReplicaStore,
    keep_logs: Option<&Path>,
    binary: &Path,
) -> Result<Vec<Figure>, BenchError> {
    const S: &str = "replicas";
    let moto = match store {
        ReplicaStore::File => None,
        // It waits for moto's first answer, blocking: off the async threads.
        ReplicaStore::Dynamodb => Some(
            tokio::task::spawn_blocking(Moto::start)
                .await
                .map_err(|e| failed("start moto", e))?,
        ),
    };
    let (sim, url) = spawn_sim(binary, timings(JITTER))?;
    let ecs = ecs_client(&url).await;
    let names = make_services(&ecs, services).await?;
    throttle_realistically(&url).await?;
    let bed = Bed {
        binary,
        url: &url,
        sim_pid: sim.0.id(),
        moto: moto.as_ref(),
        names: &names,
        keep_logs,
    };
    let three = run(&bed, 3, "three").await?;
    let store_name = match store {
        ReplicaStore::File => "one embedded store file",
        ReplicaStore::Dynamodb => "one DynamoDB table (moto)",
    };
    let mut figures = vec![
        Figure::new(S, format!("requests, on {store_name}"), services as f64, ""),
        Figure::new(S, "time for all to finish, 3 replicas", three.elapsed, "s"),
    ];
    let steps = three.steps();
    let total: f64 = steps.iter().sum();
    for (i, n) in steps.iter().enumerate() {
        figures.push(
            Figure::new(
                S,
                format!("replica {i}: share of the steps"),
                n / total.max(1.0),
                "",
            )
            .between(1.0 / 3.0 * 0.8, 1.0 / 3.0 * 1.2),
        );
    }
    let throttled = three.timeline["calls"].as_array().map_or(0, |c| {
        c.iter()
            .filter(|c| c["t"].as_f64().unwrap_or(0.0) >= three.t0)
            .filter(|c| c["error"] == "ThrottlingException")
            .count()
    });
    figures.push(Figure::new(S, "ThrottlingException answers", throttled as f64, "").at_most(0.0));
    figures.extend(category_figures(S, "", &three));
    let mut explaining = explaining_figures(S, "3 replicas", &three, services);
    let three_time = three.elapsed;
    drop(three);
    // The same work for one replica, on services now steady again.
    make_services_steady(&ecs, &names).await?;
    let one = run(&bed, 1, "one").await?;
    figures.push(Figure::new(
        S,
        "time for all to finish, 1 replica",
        one.elapsed,
        "s",
    ));
    figures.push(Figure::new(
        S,
        "3 replicas' time ÷ 1 replica's",
        three_time / one.elapsed,
        "",
    ));
    figures.extend(category_figures(S, "1 replica, ", &one));
    explaining.extend(explaining_figures(S, "1 replica", &one, services));
    figures.extend(explaining);
    Ok(figures)
}
