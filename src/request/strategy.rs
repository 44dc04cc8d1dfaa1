//! The shape of a recycle (`spec.strategy`): batches of `batchSize` with
//! `wait` after each (the default), a canary watched for a bake before
//! the rest, linear steps a fixed time apart, or every planned task at
//! once — CodeDeploy's `ECSCanary10Percent5Minutes`,
//! `ECSLinear10PercentEvery1Minutes` and `ECSAllAtOnce`, for a recycle.
//! What it is, how it is read, and the pure arithmetic of its batches.
//!
//! Sizes are counts of the planned tasks (fixed when the plan is made), so
//! a restart computes the same batch from the same record: percentages are
//! rounded up, at least one task, at most what is planned.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::duration;
use crate::validate::{Problem, Reader, describe};

/// How many of the planned tasks: a count, or a percentage of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Amount {
    Tasks(u32),
    Percent(u32),
}

impl Amount {
    /// Of `planned` tasks: rounded up, at least one, at most all.
    pub(crate) fn of(self, planned: usize) -> usize {
        let n = match self {
            Self::Tasks(n) => n as usize,
            Self::Percent(p) => (planned * p as usize).div_ceil(100),
        };
        n.clamp(1, planned.max(1))
    }

    fn to_value(self) -> Value {
        match self {
            Self::Tasks(n) => json!(n),
            Self::Percent(p) => json!(format!("{p}%")),
        }
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tasks(1) => f.write_str("1 task"),
            Self::Tasks(n) => write!(f, "{n} tasks"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// The shape of a recycle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// `batchSize` tasks at a time, `wait` after each.
    #[default]
    Batches,
    /// `first` tasks, their replacements watched for `bake` (gate alarms
    /// read at every look, afterBatch hooks asked at its end), then the
    /// rest in batches of `batchSize` with `wait` after each.
    Canary { first: Amount, bake: Duration },
    /// `step` tasks at a time, each step starting `every` after the last
    /// one started (or once it serves, if that takes longer), watched
    /// meanwhile as a bake is.
    Linear { step: Amount, every: Duration },
    /// Every planned task in one batch.
    AllAtOnce,
}

/// What follows a batch once its replacements serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pause {
    /// `wait`, unwatched; the afterBatch hooks are asked before it.
    Wait(Duration),
    /// A bake of this long from when the batch serves: the gate alarms are
    /// read at every look (one that fires holds or ends the run, per its
    /// `onAlarm`) and the afterBatch hooks are asked at its end.
    Bake(Duration),
    /// Until this long after the batch was stopped, watched as a bake.
    Every(Duration),
}

impl Pause {
    /// Whether the gate alarms are watched and the hooks asked at its end.
    pub(crate) fn watched(self) -> bool {
        !matches!(self, Self::Wait(_))
    }
}

impl Strategy {
    pub(crate) fn is_batches(&self) -> bool {
        *self == Self::Batches
    }

    /// The size of batch `number` (1 for the first) of `planned` tasks.
    pub(crate) fn batch(self, number: u32, planned: usize, batch_size: u32) -> usize {
        match self {
            Self::Batches => (batch_size as usize).clamp(1, planned.max(1)),
            Self::Canary { first, .. } if number <= 1 => first.of(planned),
            Self::Canary { .. } => (batch_size as usize).clamp(1, planned.max(1)),
            Self::Linear { step, .. } => step.of(planned),
            Self::AllAtOnce => planned.max(1),
        }
    }

    /// The largest batch of `planned` tasks: what the surge is sized for.
    pub(crate) fn largest(self, planned: usize, batch_size: u32) -> usize {
        let first = self.batch(1, planned, batch_size);
        let rest = self.batch(2, planned, batch_size);
        first.max(if planned > first { rest } else { 0 })
    }

    /// The sizes of every batch of `planned` tasks, none already gone.
    pub(crate) fn sizes(self, planned: usize, batch_size: u32) -> Vec<usize> {
        let mut sizes = Vec::new();
        let mut left = planned;
        while left > 0 {
            let n = self
                .batch(sizes.len() as u32 + 1, planned, batch_size)
                .min(left);
            sizes.push(n);
            left -= n;
        }
        sizes
    }

    /// What follows batch `number` once it serves.
    pub(crate) fn pause(self, number: u32, wait: Duration) -> Pause {
        match self {
            Self::Canary { bake, .. } if number <= 1 => Pause::Bake(bake),
            Self::Linear { every, .. } => Pause::Every(every),
            _ => Pause::Wait(wait),
        }
    }

    /// "canary 1/1", "step 4 of 10", "batch 2 of 5", "all at once":
    /// where a run is, for messages, notifications and `describe`.
    pub(crate) fn where_in(self, number: u32, planned: usize, batch_size: u32) -> String {
        let total = self.sizes(planned, batch_size).len().max(1);
        match self {
            Self::Canary { .. } if number <= 1 => "canary 1/1".into(),
            Self::Canary { .. } => format!("batch {} of {}", number - 1, total - 1),
            Self::Linear { .. } => format!("step {number} of {total}"),
            Self::AllAtOnce => "all at once".into(),
            Self::Batches => format!("batch {number} of {total}"),
        }
    }

    /// The strategy in words: "canary 10% baked 5m, then batches of 2".
    pub(crate) fn describe(self, batch_size: u32, wait: Duration) -> String {
        let wait = duration::format(wait);
        match self {
            Self::Batches => format!("batches of {batch_size}, {wait} after each"),
            Self::Canary { first, bake } => format!(
                "canary of {first} baked {}, then batches of {batch_size} with {wait} after each",
                duration::format(bake)
            ),
            Self::Linear { step, every } => {
                format!("linear: {step} every {}", duration::format(every))
            }
            Self::AllAtOnce => format!("all at once, {wait} after"),
        }
    }

    /// How the run goes, after "would recycle 7 task(s) of c1/web": "in
    /// batches of 2", "as a canary of 1 task baked 5m, then batches of 2".
    pub(crate) fn as_phrase(self, batch_size: u32) -> String {
        match self {
            Self::Batches => format!("in batches of {batch_size}"),
            Self::Canary { first, bake } => format!(
                "as a canary of {first} baked {}, then batches of {batch_size}",
                duration::format(bake)
            ),
            Self::Linear { step, every } => {
                format!(
                    "in linear steps of {step} every {}",
                    duration::format(every)
                )
            }
            Self::AllAtOnce => "all at once".into(),
        }
    }

    /// One word for a table's column.
    pub(crate) fn short(self) -> &'static str {
        match self {
            Self::Batches => "batches",
            Self::Canary { .. } => "canary",
            Self::Linear { .. } => "linear",
            Self::AllAtOnce => "all",
        }
    }

    /// The longest watched pause: what a window must leave room for.
    pub(crate) fn longest_pause(self) -> Duration {
        match self {
            Self::Canary { bake, .. } => bake,
            Self::Linear { every, .. } => every,
            _ => Duration::ZERO,
        }
    }

    /// The spec's `strategy` field as written.
    pub(crate) fn to_value(self) -> Option<Value> {
        match self {
            Self::Batches => None,
            Self::Canary { first, bake } => Some(json!({"canary": {
                "first": first.to_value(),
                "bake": duration::format(bake),
            }})),
            Self::Linear { step, every } => Some(json!({"linear": {
                "step": step.to_value(),
                "every": duration::format(every),
            }})),
            Self::AllAtOnce => Some(json!("allAtOnce")),
        }
    }
}

impl Serialize for Strategy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Strategy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Option::<Value>::deserialize(d)?;
        match value {
            None => Ok(Self::Batches),
            Some(v) => {
                let mut problems = Vec::new();
                parse_strategy(&v, "strategy", &mut problems)
                    .ok_or_else(|| serde::de::Error::custom(joined(&problems)))
            }
        }
    }
}

fn joined(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.path, p.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

const SHAPES: &str =
    "write one of: allAtOnce; {canary: {first: 1, bake: 5m}}; {linear: {step: 10%, every: 1m}}";

/// Reads `spec.strategy`, each problem with its field path.
pub(crate) fn parse_strategy(
    value: &Value,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<Strategy> {
    let problem = |problems: &mut Vec<Problem>, at: String, reason: String| {
        problems.push(Problem { path: at, reason });
    };
    match value {
        Value::String(s) if s == "allAtOnce" => return Some(Strategy::AllAtOnce),
        Value::String(s) => {
            problem(
                problems,
                path.into(),
                format!("{s:?} is not a strategy; {SHAPES}"),
            );
            return None;
        }
        Value::Object(o) if o.len() == 1 => {}
        other => {
            problem(
                problems,
                path.into(),
                format!("{} is not a strategy; {SHAPES}", describe(other)),
            );
            return None;
        }
    }
    let mut r = Reader::new(value, path);
    let canary = r.object("canary").map(|v| {
        let mut c = Reader::new(v, &r.at("canary"));
        let first = amount(&mut c, "first");
        let bake = c.duration("bake");
        if c.object.is_some_and(|o| !o.contains_key("bake")) {
            c.problem(
                "bake",
                "is required: how long the canary is watched, like 5m".into(),
            );
        }
        c.finish();
        r.problems.append(&mut c.problems);
        Some(Strategy::Canary {
            first: first?,
            bake: bake?,
        })
    });
    let linear = r.object("linear").map(|v| {
        let mut l = Reader::new(v, &r.at("linear"));
        let step = amount(&mut l, "step");
        let every = l.duration("every");
        if l.object.is_some_and(|o| !o.contains_key("every")) {
            l.problem(
                "every",
                "is required: the time between steps, like 1m".into(),
            );
        }
        if every.is_some_and(|e| e.is_zero()) {
            l.problem(
                "every",
                "must be longer than 0s; for no pause use allAtOnce or batchSize".into(),
            );
        }
        l.finish();
        r.problems.append(&mut l.problems);
        Some(Strategy::Linear {
            step: step?,
            every: every?,
        })
    });
    r.finish();
    let found = canary.or(linear).flatten();
    problems.append(&mut r.problems);
    found
}

/// A count of tasks (1–1000) or a percentage (`10%`, 1–100), required.
fn amount(r: &mut Reader<'_>, key: &'static str) -> Option<Amount> {
    if r.object.is_some_and(|o| !o.contains_key(key)) {
        r.seen.push(key);
        r.problem(
            key,
            "is required: a number of tasks like 1, or a percentage like 10%".into(),
        );
        return None;
    }
    let value = r.get(key)?;
    let read = match value {
        Value::Number(n) => match n.as_u64() {
            Some(n @ 1..=1000) => Ok(Amount::Tasks(n as u32)),
            _ => Err(format!("{n} is not a number of tasks from 1 to 1000")),
        },
        Value::String(s) => match s.trim().strip_suffix('%').map(|p| p.trim().parse::<u32>()) {
            Some(Ok(p @ 1..=100)) => Ok(Amount::Percent(p)),
            Some(Ok(p)) => Err(format!("{p}% is not a percentage from 1% to 100%")),
            _ => Err(format!(
                "{s:?} is not a number of tasks or a percentage; write 1 or 10%"
            )),
        },
        other => Err(format!(
            "{} is not a number of tasks or a percentage; write 1 or 10%",
            describe(other)
        )),
    };
    read.map_err(|reason| r.problem(key, reason)).ok()
}

#[cfg(test)]
mod tests;
