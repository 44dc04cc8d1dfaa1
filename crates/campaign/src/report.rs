//! What a campaign prints: for every violation, the seed, the schedule of
//! faults (times into the run, as drawn and as done) and the one command
//! that runs it again; and at the end a table — schedules run, faults
//! injected by kind, violations by invariant, time per schedule — closing
//! with the line `N schedules, M violations`.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::checks::Invariant;
use crate::nemesis::FaultKind;
use crate::run::Outcome;
use crate::watch::{Act, Entry};

/// The command that runs one seed again.
pub fn replay_command(seed: u64) -> String {
    format!("cargo run --release -p ecs-recycler-campaign -- --seed {seed}")
}

/// One schedule's findings, in full: empty when there are none.
pub fn findings(o: &Outcome) -> String {
    let mut text = String::new();
    let seed = o.schedule.seed;
    if let Some(why) = &o.harness {
        let _ = writeln!(text, "seed {seed}: the run could not be made: {why}");
    }
    if o.violations.is_empty() && o.harness.is_none() {
        return text;
    }
    for v in &o.violations {
        let _ = writeln!(
            text,
            "VIOLATION seed {seed} [{}]: {}",
            v.invariant.name(),
            v.detail
        );
    }
    let _ = writeln!(text, "schedule (seconds into the run):");
    for line in o.schedule.describe() {
        let _ = writeln!(text, "  {line}");
    }
    let _ = writeln!(text, "as done (simulator's clock):");
    text.push_str(&journal(&o.journal));
    if let Some(dir) = &o.kept {
        let _ = writeln!(text, "logs, store and timeline kept in {}", dir.display());
    }
    let _ = writeln!(text, "replay: {}", replay_command(seed));
    text
}

/// The acts of a run as they were done, a line each.
pub fn journal(entries: &[Entry]) -> String {
    let mut text = String::new();
    for e in entries {
        let what = match &e.what {
            Act::FaultBegan(w) => format!("began: {w}"),
            Act::FaultHealed(w) => format!("healed: {w}"),
            Act::Resumed(id) => format!("SIGCONT {id}"),
            Act::Created(name) => format!("created {name}"),
            Act::Verb(verb, worked) => format!("{verb}{}", if *worked { "" } else { " (failed)" }),
        };
        let _ = writeln!(text, "  t={:>8.3}  {what}", e.t);
    }
    text
}

/// The closing table over every schedule run.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut text = String::new();
    let mut faults: BTreeMap<FaultKind, usize> = BTreeMap::new();
    let mut by_invariant: BTreeMap<Invariant, usize> = BTreeMap::new();
    for o in outcomes {
        for (k, n) in &o.injected {
            *faults.entry(*k).or_default() += n;
        }
        for v in &o.violations {
            *by_invariant.entry(v.invariant).or_default() += 1;
        }
    }
    let _ = writeln!(text, "faults injected, by kind:");
    for kind in FaultKind::ALL {
        let n = faults.get(&kind).copied().unwrap_or(0);
        let _ = writeln!(text, "  {:<24} {n:>6}", kind.name());
    }
    let _ = writeln!(text, "violations, by invariant:");
    for inv in Invariant::ALL {
        let n = by_invariant.get(&inv).copied().unwrap_or(0);
        let _ = writeln!(text, "  {:<52} {n:>6}", inv.name());
    }
    let mut seconds: Vec<f64> = outcomes.iter().map(|o| o.seconds).collect();
    seconds.sort_by(f64::total_cmp);
    let mean = seconds.iter().sum::<f64>() / seconds.len().max(1) as f64;
    let _ = writeln!(
        text,
        "time per schedule: mean {mean:.1}s, median {:.1}s, max {:.1}s",
        seconds.get(seconds.len() / 2).copied().unwrap_or(0.0),
        seconds.last().copied().unwrap_or(0.0)
    );
    let judged: usize = outcomes.iter().map(|o| o.judged).sum();
    let unjudged: usize = outcomes.iter().map(|o| o.unjudged).sum();
    let harness = outcomes.iter().filter(|o| o.harness.is_some()).count();
    let _ = writeln!(
        text,
        "fence: {judged} mutating calls judged, {unjudged} not (the store changed around them)"
    );
    let raced: usize = outcomes.iter().map(|o| o.raced).sum();
    let _ = writeln!(
        text,
        "protection: {raced} stops raced a protection set after the stopping replica's read (StopTask does not look at it)"
    );
    let _ = writeln!(text, "runs the harness could not make: {harness}");
    let seeds: Vec<u64> = outcomes
        .iter()
        .filter(|o| !o.violations.is_empty())
        .map(|o| o.schedule.seed)
        .collect();
    if !seeds.is_empty() {
        let _ = writeln!(text, "seeds with violations: {seeds:?}");
    }
    let violations: usize = by_invariant.values().sum();
    let _ = writeln!(
        text,
        "{} schedules, {violations} violations",
        outcomes.len()
    );
    text
}
