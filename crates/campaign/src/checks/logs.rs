//! No error storm: a fault is logged, not shouted. In each replica
//! incarnation's log (JSON lines), no one WARN or ERROR message more than
//! [`STORM`] times in one second, and no panic.

use std::collections::HashMap;

use serde_json::Value;

use super::{Evidence, Invariant, Violation, violation};

/// The most lines of one WARN or ERROR message in one second.
pub(super) const STORM: usize = 30;

pub(super) fn check(e: &Evidence) -> Vec<Violation> {
    let mut out = Vec::new();
    for (replica, text) in e.logs {
        let mut per_second: HashMap<(String, String), usize> = HashMap::new();
        for line in text.lines() {
            let Ok(json) = serde_json::from_str::<Value>(line) else {
                if line.contains("panicked at") {
                    out.push(violation(
                        Invariant::ErrorStorm,
                        format!("{replica} panicked: {line}"),
                    ));
                }
                continue;
            };
            let level = json["level"].as_str().unwrap_or_default();
            if level != "WARN" && level != "ERROR" {
                continue;
            }
            let Some(second) = json["timestamp"].as_str().and_then(|t| t.get(..19)) else {
                continue;
            };
            let message = json["fields"]["message"].as_str().unwrap_or_default();
            *per_second
                .entry((second.to_string(), message.to_string()))
                .or_default() += 1;
        }
        let mut storms: Vec<_> = per_second.into_iter().filter(|(_, n)| *n > STORM).collect();
        storms.sort();
        if let Some(((second, message), n)) = storms.first() {
            out.push(violation(
                Invariant::ErrorStorm,
                format!(
                    "{replica} logged \"{message}\" {n} times in the second {second} ({} such seconds)",
                    storms.len()
                ),
            ));
        }
    }
    out
}
