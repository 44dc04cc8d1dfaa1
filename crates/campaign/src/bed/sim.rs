//! `ecs-recycler sim` as a child process, seeded with the schedule's seed:
//! its URL, its control API, its timeline, and its clock laid on the wall
//! clock (every process of a run is on this machine, so one clock).

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::timeline::Timeline;
use crate::watch::Clock;

/// The task timings of every run: fast, realistic in shape (as the tests').
const TIMINGS: [&str; 10] = [
    "--task-start",
    "300ms",
    "--task-healthy",
    "200ms",
    "--task-stop",
    "200ms",
    "--scheduler-interval",
    "50ms",
    "--jitter",
    "0.2",
];

pub struct SimProcess {
    child: Child,
    pub url: String,
    pub clock: Clock,
}

impl SimProcess {
    pub async fn start(binary: &Path, seed: u64, log: &Path) -> anyhow::Result<Self> {
        let log = std::fs::File::create(log).context("the simulator's log")?;
        let mut command = Command::new(binary);
        super::replicas::die_with_parent(&mut command);
        let mut child = command
            .args([
                "sim",
                "--listen",
                "127.0.0.1:0",
                "--seed",
                &seed.to_string(),
            ])
            .args(TIMINGS)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("start {} sim", binary.display()))?;
        let stdout = child.stdout.take().context("the simulator's stdout")?;
        let mut url = String::new();
        std::io::BufReader::new(stdout).read_line(&mut url)?;
        let url = url.trim().to_string();
        if url.is_empty() {
            let _ = child.kill();
            bail!("the simulator printed no URL");
        }
        let mut sim = Self {
            child,
            url,
            clock: Clock { zero: 0.0 },
        };
        sim.clock = sim.calibrate().await?;
        Ok(sim)
    }

    /// The wall-clock instant of the simulator's `t = 0`, read while its
    /// timeline is small: of several readings, the one with the shortest
    /// round trip, to within half of it (a millisecond or so).
    async fn calibrate(&self) -> anyhow::Result<Clock> {
        let mut best: Option<(f64, f64)> = None;
        for _ in 0..7 {
            let before = Clock::epoch_now();
            let (status, body) =
                test_support::raw_request(&self.url, "GET", "/_sim/timeline", &[], b"").await;
            let after = Clock::epoch_now();
            if status != 200 {
                bail!("GET /_sim/timeline answered {status}");
            }
            let now = serde_json::from_str::<Value>(&body)?["now"]
                .as_f64()
                .context("the timeline's now")?;
            let trip = after - before;
            if best.is_none_or(|(t, _)| trip < t) {
                best = Some((trip, (before + after) / 2.0 - now));
            }
        }
        let (_, zero) = best.context("no reading of the simulator's clock")?;
        Ok(Clock { zero })
    }

    /// A control request (`POST /_sim/...`); its answer.
    pub async fn control(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let (status, text) = test_support::raw_request(
            &self.url,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
        .await;
        if status != 200 {
            bail!("POST {path} answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn timeline(&self) -> anyhow::Result<Timeline> {
        let (status, body) =
            test_support::raw_request(&self.url, "GET", "/_sim/timeline", &[], b"").await;
        if status != 200 {
            bail!("GET /_sim/timeline answered {status}");
        }
        serde_json::from_str(&body).context("the timeline's shape")
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
