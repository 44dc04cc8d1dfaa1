//! What a request does beyond its batches, drawn from the seed and written
//! into its spec as a client writes it: what it does with tasks protected
//! from scale-in (`protectedTasks`, `protectionWait`).

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
