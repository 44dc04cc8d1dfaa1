//! The seeded fault campaign: random schedules of the faults the operator
//! promises to survive, over the real binaries (`ecs-recycler sim`, one to
//! three `ecs-recycler operator` replicas, the verbs), with the records in
//! moto's DynamoDB or the embedded store by turns; every invariant checked
//! after each schedule from the simulator's timeline, the store and the
//! logs; any failure replayed from its seed.
//!
//! - [`plan`]: a schedule from a seed — services, requests, faults;
//!   [`shape`]: what a request does beyond its batches.
//! - [`nemesis`]: the catalogue of faults.
//! - [`bed`]: the world a schedule runs in, and how each fault is done to it.
//! - [`watch`]: what the campaign sees from outside while it runs.
//! - [`timeline`]: the simulator's audit timeline, typed.
//! - [`checks`]: the invariants, pure functions of what was seen.
//! - [`run`]: one schedule end to end; [`report`]: what is printed.
//!
//! The one thing to know before touching it: the world's timing is real
//! (processes, sockets, a loaded machine), so a seed repeats its schedule
//! and workload exactly, not every interleaving; a check must never guess
//! (the fence check counts what it cannot judge instead).

pub mod bed;
pub mod binary;
pub mod checks;
pub mod nemesis;
pub mod plan;
pub mod report;
pub mod run;
pub mod shape;
pub mod timeline;
pub mod watch;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bed::Shared;
use run::Outcome;
use test_support::moto::Moto;

/// Which seeds to run.
#[derive(Clone, Debug)]
pub struct Seeds {
    pub first: u64,
    /// At most this many (None: until `duration` has passed).
    pub count: Option<u64>,
    /// Start no schedule after this long.
    pub duration: Option<Duration>,
    /// Schedules run at once.
    pub jobs: usize,
    /// These seeds instead, in this order (the short set).
    pub list: Option<Vec<u64>>,
}

impl Seeds {
    /// The `n`th seed to run, if it is to run (`elapsed` since the start).
    fn nth(&self, n: u64, elapsed: Duration) -> Option<u64> {
        if let Some(list) = &self.list {
            return list.get(n as usize).copied();
        }
        let more = self.count.is_none_or(|c| n < c) && self.duration.is_none_or(|d| elapsed < d);
        more.then_some(self.first + n)
    }
}

/// Runs the seeds against `binary`, printing each schedule's findings as
/// they come (and, with `verbose`, a line per schedule); answers every outcome.
pub async fn campaign(
    binary: PathBuf,
    seeds: Seeds,
    verbose: bool,
    keep: bool,
) -> anyhow::Result<Vec<Outcome>> {
    let moto = tokio::task::spawn_blocking(Moto::start).await?;
    let root = std::env::temp_dir().join(format!("ecs-recycler-campaign-{}", std::process::id()));
    std::fs::create_dir_all(&root)?;
    let shared = Shared {
        binary,
        moto_url: moto.url.clone(),
        root: root.clone(),
        keep,
    };
    let started = Instant::now();
    let mut outcomes = Vec::new();
    let mut next = 0;
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < seeds.jobs.max(1)
            && let Some(seed) = seeds.nth(next, started.elapsed())
        {
            let shared = shared.clone();
            running.spawn(async move { run::run(seed, &shared).await });
            next += 1;
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let outcome = done?;
        let findings = report::findings(&outcome);
        if !findings.is_empty() {
            println!("{findings}");
        }
        if verbose {
            if let Some(dir) = &outcome.kept
                && outcome.violations.is_empty()
            {
                println!("seed {}: kept in {}", outcome.schedule.seed, dir.display());
                print!("{}", report::journal(&outcome.journal));
            }
            let ends: Vec<String> = outcome
                .ends
                .iter()
                .map(|(name, phase)| format!("{name} {phase}"))
                .collect();
            println!(
                "seed {:>6}: {:>5.1}s, {} violation(s), {} fault(s); {}",
                outcome.schedule.seed,
                outcome.seconds,
                outcome.violations.len(),
                outcome.injected.values().sum::<usize>(),
                ends.join(", ")
            );
        }
        outcomes.push(outcome);
    }
    // Empty unless a run's directory was kept.
    let _ = std::fs::remove_dir(&root);
    Ok(outcomes)
}
