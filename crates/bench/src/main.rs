//! `ecs-recycler-bench`: the operator measured against the simulator, on
//! realistic ECS timings scaled down (see [`harness::SCALE`]), so the whole
//! run takes a few minutes. Each scenario reports figures, with a target
//! where the project has one; the table goes to stdout, then the same as
//! JSON (and to `--json FILE` when asked).
//!
//! A development tool, not part of the operator's image. Most scenarios run
//! the operator's library in this process; the scale scenario runs the
//! simulator, and the failover scenario the operator, as child processes of
//! the product's binary (`ecs-recycler sim`, `ecs-recycler operator`), found
//! beside this one in the same target directory unless `--operator-binary`
//! says otherwise: `cargo build --release && cargo run --release -p
//! ecs-recycler-bench`.

mod events;
mod harness;
mod policy_fleet;
mod replicas;
mod scale;
mod scenarios;
mod store_calls;
mod traffic;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use ecs_recycler_bench::{memory_store, product};
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(
    name = "ecs-recycler-bench",
    about = "Measure the operator against the simulator; print a table and JSON."
)]
pub struct BenchArgs {
    /// Run only these scenarios: retry-modes, recycle, events, scale, replicas, failover, force-deployment, policy-fleet, traffic.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the simulator timeline of the recycle scenario (its first run's) or the scale scenario to this file, to see where the time and calls went.
    #[arg(long, value_name = "FILE")]
    timeline: Option<PathBuf>,
    /// Recycles run at once in the recycle scenario; its figures are their means.
    #[arg(long, default_value_t = 3)]
    recycle_runs: usize,
    /// Recycles of each feed run at once in the events scenario (the
    /// polling one among them); its figures are their means.
    #[arg(long, default_value_t = 1)]
    events_runs: usize,
    /// Services in the scale scenario (spread over 10 clusters).
    #[arg(long, default_value_t = 1000)]
    scale_services: usize,
    /// Requests (one a service) in the replicas scenario.
    #[arg(long, default_value_t = 1000)]
    replica_requests: usize,
    /// Where the replicas scenario's three replicas keep their records: one
    /// DynamoDB table behind moto (started from the pinned venv under
    /// `target/moto-venv`, made with pip if missing), or one embedded store file.
    #[arg(long, value_enum, default_value = "dynamodb")]
    replica_store: replicas::ReplicaStore,
    /// Keep the replicas scenario's operator logs (JSON lines) in this
    /// directory, one subdirectory a run, to read after it.
    #[arg(long, value_name = "DIR")]
    replica_logs: Option<PathBuf>,
    /// Requests queued on each service in the scale scenario (they run one
    /// after another); 10 makes the 10,000-request run.
    #[arg(long, default_value_t = 1)]
    scale_queue: usize,
    /// The `ecs-recycler` binary the scale and failover scenarios run as child
    /// processes [default: `ecs-recycler` beside this program, as `cargo build` leaves it].
    #[arg(long, value_name = "PATH")]
    operator_binary: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("the benchmark failed: {0}")]
pub struct BenchError(pub String);

impl From<product::FixtureError> for BenchError {
    fn from(e: product::FixtureError) -> Self {
        Self(e.to_string())
    }
}

fn main() -> ExitCode {
    // The scale scenario measures the operator in this process: the
    // allocator must be the one the operator runs with.
    product::bound_allocator_arenas();
    let args = BenchArgs::parse();
    init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The table goes to stdout; logs (the in-process operator's, kept to
/// warnings) go to stderr, as text on a terminal and JSON lines otherwise.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
}

/// The `ecs-recycler` binary: the one given, else the one in this program's
/// directory (`cargo build` puts every binary of the workspace in one
/// target directory).
fn operator_binary(given: Option<&Path>) -> Result<PathBuf, BenchError> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    let exe =
        std::env::current_exe().map_err(|e| BenchError(format!("this program's path: {e}")))?;
    let dir = exe
        .parent()
        .ok_or_else(|| BenchError(format!("{} has no directory", exe.display())))?;
    Ok(dir.join(format!("ecs-recycler{}", std::env::consts::EXE_SUFFIX)))
}

/// One measured figure.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    pub scenario: &'static str,
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    /// The target, as text (`≤ 1.05`), when the project has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Whether the target is met; absent without a target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
}

impl Figure {
    fn new(
        scenario: &'static str,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) -> Self {
        Self {
            scenario,
            name: name.into(),
            value,
            unit,
            target: None,
            met: None,
        }
    }

    /// A target of at least `min`.
    fn at_least(mut self, min: f64) -> Self {
        self.target = Some(format!("≥ {min}"));
        self.met = Some(self.value >= min);
        self
    }

    /// A target of at least `min` and at most `max`. (Chaining
    /// [`Figure::at_least`] and [`Figure::at_most`] keeps only the last.)
    fn between(mut self, min: f64, max: f64) -> Self {
        self.target = Some(format!("{min:.3} to {max:.3}"));
        self.met = Some(self.value >= min && self.value <= max);
        self
    }

    /// A target of at most `max`.
    fn at_most(mut self, max: f64) -> Self {
        self.target = Some(format!("≤ {max}"));
        self.met = Some(self.value <= max);
        self
    }
}

const SCENARIOS: [&str; 9] = [
    "retry-modes",
    "recycle",
    "events",
    "scale",
    "replicas",
    "failover",
    "force-deployment",
    "policy-fleet",
    "traffic",
];

async fn run(args: BenchArgs) -> Result<(), BenchError> {
    for name in &args.only {
        if !SCENARIOS.contains(&name.as_str()) {
            return Err(BenchError(format!(
                "--only {name}: no such scenario; use {}",
                SCENARIOS.join(", ")
            )));
        }
    }
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let binary = operator_binary(args.operator_binary.as_deref())?;
    // Checked before any scenario runs: a run of several minutes should not
    // fail at its third scenario for want of it.
    if (wanted("scale") || wanted("replicas") || wanted("failover")) && !binary.is_file() {
        return Err(BenchError(format!(
            "no operator binary at {}: build it first (`cargo build --release` puts it \
             beside this program) or say where it is with --operator-binary",
            binary.display()
        )));
    }
    let mut figures = Vec::new();
    let mut failures = Vec::new();
    let started = std::time::Instant::now();
    // The scale scenario reads this process's peak memory: it goes first,
    // before the other scenarios' simulators have grown it.
    for name in [
        "scale",
        "retry-modes",
        "recycle",
        "events",
        "replicas",
        "failover",
        "force-deployment",
        "policy-fleet",
        "traffic",
    ] {
        if !wanted(name) {
            continue;
        }
        let result = match name {
            "scale" => {
                scale::scale(
                    args.scale_services,
                    args.scale_queue,
                    &binary,
                    args.timeline.as_deref(),
                )
                .await
            }
            "retry-modes" => scenarios::retry_modes().await,
            "recycle" => scenarios::recycle(args.timeline.as_deref(), args.recycle_runs).await,
            "events" => events::events(args.events_runs).await,
            "failover" => scenarios::failover(&binary).await,
            "policy-fleet" => policy_fleet::policy_fleet().await,
            "replicas" => {
                replicas::replicas(
                    args.replica_requests,
                    args.replica_store,
                    args.replica_logs.as_deref(),
                    &binary,
                )
                .await
            }
            "traffic" => traffic::traffic().await,
            _ => scenarios::force_deployment().await,
        };
        match result {
            Ok(found) => {
                // As each scenario ends, so a later failure loses nothing.
                for f in &found {
                    eprintln!("{name}: {}: {} {}", f.name, f.value, f.unit);
                }
                figures.extend(found);
            }
            Err(e) => {
                eprintln!("{name}: {e}");
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    print_table(&figures);
    let json = serde_json::json!({
        "machine": machine(),
        "scale": harness::SCALE,
        "seconds": started.elapsed().as_secs_f64(),
        "figures": figures,
        "failures": failures,
    });
    let text = serde_json::to_string_pretty(&json).map_err(|e| BenchError(e.to_string()))?;
    println!("{text}");
    if let Some(path) = &args.json {
        std::fs::write(path, &text)
            .map_err(|e| BenchError(format!("cannot write {}: {e}", path.display())))?;
    }
    if !failures.is_empty() {
        return Err(BenchError(failures.join("; ")));
    }
    Ok(())
}

fn print_table(figures: &[Figure]) {
    println!("| scenario | figure | value | target | met |");
    println!("| --- | --- | ---: | --- | --- |");
    for f in figures {
        let value = if f.value.fract() == 0.0 && f.value.abs() < 1e12 {
            format!("{} {}", f.value, f.unit)
        } else {
            format!("{:.3} {}", f.value, f.unit)
        };
        println!(
            "| {} | {} | {} | {} | {} |",
            f.scenario,
            f.name,
            value.trim(),
            f.target.as_deref().unwrap_or(""),
            match f.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            }
        );
    }
    println!();
}

/// The machine the figures come from.
fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    serde_json::json!({"cpu": cpu, "cores": cores})
}
