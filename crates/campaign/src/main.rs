//! `ecs-recycler-campaign`: runs seeded schedules of faults over the real
//! binaries and prints every violation with the command that replays it,
//! then a table ending `N schedules, M violations`. Exits 1 when any
//! violation was found (or a run could not be made).
//!
//! `cargo run --release -p ecs-recycler-campaign -- --seeds 1000` (or
//! `--duration 1h`; `--seed N` runs one again).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ecs_recycler_campaign::plan::Schedule;
use ecs_recycler_campaign::{Seeds, binary, campaign, report};

#[derive(Parser, Debug)]
#[command(
    name = "ecs-recycler-campaign",
    about = "Random schedules of faults over the operator, every invariant checked after each."
)]
struct Args {
    /// Schedules to run (seeds --first-seed, --first-seed + 1, ...).
    #[arg(long, default_value_t = 20)]
    seeds: u64,
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Run this one seed (again).
    #[arg(long, conflicts_with_all = ["seeds", "first_seed", "duration"])]
    seed: Option<u64>,
    /// Run seeds from --first-seed on until this much time has passed (e.g. 1h).
    #[arg(long, value_parser = humantime_duration)]
    duration: Option<Duration>,
    /// Schedules run at once (each has its own simulator and replicas).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// The product's binary [default: `ecs-recycler` beside this program, built if stale].
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
    /// A line per schedule as it ends.
    #[arg(long, short)]
    verbose: bool,
    /// Keep every run's directory (logs, store, timeline), not only those with findings.
    #[arg(long)]
    keep: bool,
    /// Print the schedules the seeds draw, and run nothing.
    #[arg(long)]
    print: bool,
}

fn humantime_duration(text: &str) -> Result<Duration, String> {
    ecs_recycler::duration::parse(text)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let seeds = match (args.seed, args.duration) {
        (Some(seed), _) => Seeds {
            first: seed,
            count: Some(1),
            duration: None,
            jobs: 1,
            list: None,
        },
        (None, Some(d)) => Seeds {
            first: args.first_seed,
            count: None,
            duration: Some(d),
            jobs: args.jobs,
            list: None,
        },
        (None, None) => Seeds {
            first: args.first_seed,
            count: Some(args.seeds),
            duration: None,
            jobs: args.jobs,
            list: None,
        },
    };
    if args.print {
        let first = args.seed.unwrap_or(args.first_seed);
        let count = if args.seed.is_some() { 1 } else { args.seeds };
        for seed in first..first + count {
            for line in Schedule::draw(seed).describe() {
                println!("{line}");
            }
        }
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let binary = binary::product_binary(args.binary)?;
        campaign(binary, seeds, args.verbose, args.keep).await
    });
    match result {
        Ok(outcomes) => {
            print!("{}", report::table(&outcomes));
            let bad = outcomes
                .iter()
                .any(|o| !o.violations.is_empty() || o.harness.is_some());
            if bad {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
