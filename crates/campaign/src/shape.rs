//! What a request does beyond its batches, drawn from the seed and written
//! into its spec as a client writes it: what it does with tasks protected
//! from scale-in (`protectedTasks`, `protectionWait`) and its strategy
//! (a canary, linear steps, all at once) — and the largest batch a spec
//! makes, which the capacity check's floor follows.

use serde_json::{Value, json};

use crate::plan::between;

/// ECS's own fixed durations (task protection's minutes, Fargate Spot's
/// two minutes' warning) run this many times faster in the simulator: a
/// minute of protection lasts a second.
pub const ECS_TIME_SCALE: f64 = 60.0;

/// What the request does with a task protected from scale-in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Protection {
    /// Nothing written: `wait`, with the default `protectionWait` (30m).
    Default,
    /// `protectedTasks: wait` with `protectionWait` of this many seconds.
    Wait { seconds: f64 },
    /// `protectedTasks: skip`.
    Skip,
}

impl Protection {
    pub fn draw(rng: &mut fastrand::Rng) -> Self {
        match rng.u32(..10) {
            0..3 => Self::Default,
            3..7 => Self::Wait {
                seconds: between(rng, 1.0, 5.0),
            },
            _ => Self::Skip,
        }
    }

    pub fn write(self, spec: &mut Value) {
        match self {
            Self::Default => {}
            Self::Wait { seconds } => {
                spec["protectedTasks"] = json!("wait");
                spec["protectionWait"] = json!(format!("{}ms", (seconds * 1000.0).round()));
            }
            Self::Skip => spec["protectedTasks"] = json!("skip"),
        }
    }

    pub fn describe(self) -> String {
        match self {
            Self::Default => String::new(),
            Self::Wait { seconds } => format!(", protected: wait {seconds:.3}s"),
            Self::Skip => ", protected: skip".into(),
        }
    }
}

/// How many of the planned tasks a strategy takes at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Amount {
    Tasks(u32),
    Percent(u32),
}

impl Amount {
    fn draw(rng: &mut fastrand::Rng) -> Self {
        if rng.bool() {
            Self::Tasks(rng.u32(1..=2))
        } else {
            Self::Percent([25, 34, 50][rng.usize(..3)])
        }
    }

    /// As the spec reads it: a count, or "N%".
    fn parse(v: &Value) -> Option<Self> {
        match v {
            Value::Number(n) => n.as_u64().map(|n| Self::Tasks(n as u32)),
            Value::String(s) => s.strip_suffix('%')?.parse().ok().map(Self::Percent),
            _ => None,
        }
    }

    fn to_value(self) -> Value {
        match self {
            Self::Tasks(n) => json!(n),
            Self::Percent(p) => json!(format!("{p}%")),
        }
    }

    /// Of `planned` tasks, as the operator counts it: rounded up, at least
    /// one, at most all.
    pub fn of(self, planned: usize) -> usize {
        let n = match self {
            Self::Tasks(n) => n as usize,
            Self::Percent(p) => (planned * p as usize).div_ceil(100),
        };
        n.clamp(1, planned.max(1))
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tasks(n) => write!(f, "{n} task(s)"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// The request's strategy (`spec.strategy`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// Nothing written: batches of `batchSize`, `wait` after each.
    Batches,
    /// A canary of `first`, baked `bake_ms`, then batches.
    Canary { first: Amount, bake_ms: u64 },
    /// Steps of `step`, each `every_ms` after the last began.
    Linear { step: Amount, every_ms: u64 },
    /// Every planned task in one batch.
    AllAtOnce,
}

impl Shape {
    pub fn draw(rng: &mut fastrand::Rng) -> Self {
        match rng.u32(..20) {
            0..10 => Self::Batches,
            10..14 => Self::Canary {
                first: Amount::draw(rng),
                bake_ms: rng.u64(300..=1500),
            },
            14..18 => Self::Linear {
                step: Amount::draw(rng),
                every_ms: rng.u64(300..=1000),
            },
            _ => Self::AllAtOnce,
        }
    }

    /// Writes it into `spec`; `batchSize` and `wait` come out where the
    /// strategy sizes or paces every batch itself (the spec refuses both).
    pub fn write(self, spec: &mut Value) {
        let object = spec.as_object_mut().expect("a spec is an object");
        match self {
            Self::Batches => {}
            Self::Canary { first, bake_ms } => {
                object.insert(
                    "strategy".into(),
                    json!({"canary": {"first": first.to_value(), "bake": format!("{bake_ms}ms")}}),
                );
            }
            Self::Linear { step, every_ms } => {
                object.remove("batchSize");
                object.remove("wait");
                object.insert(
                    "strategy".into(),
                    json!({"linear": {"step": step.to_value(), "every": format!("{every_ms}ms")}}),
                );
            }
            Self::AllAtOnce => {
                object.remove("batchSize");
                object.insert("strategy".into(), json!("allAtOnce"));
            }
        }
    }

    /// Whether the spec keeps `batchSize` beside it.
    pub fn has_batches(self) -> bool {
        matches!(self, Self::Batches | Self::Canary { .. })
    }

    pub fn describe(self) -> String {
        match self {
            Self::Batches => String::new(),
            Self::Canary { first, bake_ms } => {
                format!(", canary of {first} baked {bake_ms}ms")
            }
            Self::Linear { step, every_ms } => format!(", linear {step} every {every_ms}ms"),
            Self::AllAtOnce => ", all at once".into(),
        }
    }
}

/// The largest batch the request's spec makes of `planned` tasks: what the
/// surge adds, and what may be down at once without it.
pub fn largest_batch(spec: &Value, planned: usize) -> usize {
    let batch_size = spec["batchSize"].as_u64().unwrap_or(1) as usize;
    let strategy = &spec["strategy"];
    let largest = if strategy == "allAtOnce" {
        planned
    } else if let Some(first) = Amount::parse(&strategy["canary"]["first"]) {
        first.of(planned).max(batch_size)
    } else if let Some(step) = Amount::parse(&strategy["linear"]["step"]) {
        step.of(planned)
    } else {
        batch_size
    };
    largest.clamp(1, planned.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_batch_follows_the_strategy_as_the_operator_sizes_it() {
        let spec = |v: Value| {
            let mut s = json!({"batchSize": 2});
            s.as_object_mut()
                .unwrap()
                .extend(v.as_object().unwrap().clone());
            s
        };
        assert_eq!(largest_batch(&spec(json!({})), 5), 2);
        assert_eq!(largest_batch(&json!({}), 5), 1);
        assert_eq!(largest_batch(&json!({"strategy": "allAtOnce"}), 5), 5);
        let canary = spec(json!({"strategy": {"canary": {"first": "50%", "bake": "1s"}}}));
        assert_eq!(largest_batch(&canary, 5), 3);
        let canary = spec(json!({"strategy": {"canary": {"first": 1, "bake": "1s"}}}));
        assert_eq!(largest_batch(&canary, 5), 2);
        let linear = json!({"strategy": {"linear": {"step": "34%", "every": "1s"}}});
        assert_eq!(largest_batch(&linear, 4), 2);
        assert_eq!(largest_batch(&json!({"batchSize": 4}), 3), 3);
    }
}
