//! The operator's replicas: `ecs-recycler operator` processes the campaign
//! kills (-9), pauses (SIGSTOP) and resumes (SIGCONT). Each start is a new
//! incarnation with an id of its own (`r<replica>-<incarnation>`), which is
//! also the access key it signs its AWS calls with, so the simulator's
//! timeline says which incarnation made each call. On DynamoDB each replica
//! reaches moto through a proxy of its own, which can stall its traffic.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use test_support::proxy::Proxy;

/// The operator's timing flags in every run: a lease of 2s (so a stall of
/// a few seconds loses it), and an attempt plus the lease's tenth inside it.
pub const LEASE_SECONDS: f64 = 2.0;
const FLAGS: [&str; 16] = [
    "--poll-interval",
    "100ms",
    "--idle-poll-interval",
    "500ms",
    "--lease-duration",
    "2s",
    "--aws-connect-timeout",
    "500ms",
    "--aws-attempt-timeout",
    "1s",
    "--aws-operation-timeout",
    "5s",
    "--http-listen",
    "127.0.0.1:0",
    "--concurrency",
    "8",
];

struct Replica {
    incarnation: u32,
    child: Option<Child>,
    /// DynamoDB only: this replica's way to moto.
    proxy: Option<Arc<Proxy>>,
    paused: bool,
}

pub struct Replicas {
    binary: PathBuf,
    dir: PathBuf,
    /// `--store PATH` or `--table NAME`.
    store_args: Vec<String>,
    env: Vec<(String, String)>,
    replicas: Vec<Replica>,
    /// Every incarnation's id and log.
    logs: Vec<(String, PathBuf)>,
}

impl Replicas {
    /// `count` replicas, not yet started; on DynamoDB, each behind a proxy to `moto`.
    pub async fn new(
        binary: &Path,
        dir: &Path,
        store_args: Vec<String>,
        env: Vec<(String, String)>,
        count: usize,
        moto: Option<&str>,
    ) -> anyhow::Result<Self> {
        let mut replicas = Vec::new();
        for _ in 0..count {
            let proxy = match moto {
                Some(url) => {
                    let upstream = url.trim_start_matches("http://").parse()?;
                    Some(Arc::new(Proxy::start(upstream).await))
                }
                None => None,
            };
            replicas.push(Replica {
                incarnation: 0,
                child: None,
                proxy,
                paused: false,
            });
        }
        Ok(Self {
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            store_args,
            env,
            replicas,
            logs: Vec::new(),
        })
    }

    pub fn id(&self, i: usize) -> String {
        format!("r{i}-{}", self.replicas[i].incarnation)
    }

    /// Starts replica `i` again as a new incarnation, unless it runs.
    pub fn start(&mut self, i: usize) -> anyhow::Result<()> {
        if self.replicas[i].child.is_some() {
            return Ok(());
        }
        self.replicas[i].incarnation += 1;
        let id = self.id(i);
        let log_path = self.dir.join(format!("{id}.log"));
        let log = std::fs::File::create(&log_path).context("a replica's log")?;
        let mut command = Command::new(&self.binary);
        command
            .arg("operator")
            .args(&self.store_args)
            .args(FLAGS)
            .args(["--replica-id", &id])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_ACCESS_KEY_ID", &id);
        if let Some(proxy) = &self.replicas[i].proxy {
            command.env("AWS_ENDPOINT_URL_DYNAMODB", proxy.url());
        }
        die_with_parent(&mut command);
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("start ecs-recycler operator")?;
        self.replicas[i].child = Some(child);
        self.replicas[i].paused = false;
        self.logs.push((id, log_path));
        Ok(())
    }

    fn signal(&self, i: usize, signal: libc::c_int) {
        if let Some(child) = &self.replicas[i].child {
            // SAFETY: kill(2) on a child this process started and has not reaped.
            unsafe {
                libc::kill(child.id() as libc::pid_t, signal);
            }
        }
    }

    /// SIGKILL; true when it was running.
    pub fn kill(&mut self, i: usize) -> bool {
        let Some(mut child) = self.replicas[i].child.take() else {
            return false;
        };
        let _ = child.kill();
        let _ = child.wait();
        self.replicas[i].paused = false;
        true
    }

    /// SIGSTOP; true when it was running and not paused.
    pub fn pause(&mut self, i: usize) -> bool {
        if self.replicas[i].child.is_none() || self.replicas[i].paused {
            return false;
        }
        self.signal(i, libc::SIGSTOP);
        self.replicas[i].paused = true;
        true
    }

    /// SIGCONT; the incarnation's id when it was paused.
    pub fn resume(&mut self, i: usize) -> Option<String> {
        if !self.replicas[i].paused {
            return None;
        }
        self.signal(i, libc::SIGCONT);
        self.replicas[i].paused = false;
        Some(self.id(i))
    }

    /// Holds replica `i`'s DynamoDB traffic both ways for `seconds`; false
    /// on the embedded store (no proxy).
    pub fn stall(&self, i: usize, seconds: f64) -> bool {
        let Some(proxy) = &self.replicas[i].proxy else {
            return false;
        };
        let held = Duration::from_secs_f64(seconds);
        proxy.stall(held, held);
        true
    }

    /// Holds the DynamoDB traffic of whichever replica first sends a
    /// request holding every one of `needles` (that request lands), for
    /// `seconds`, if one does within `window`; false on the embedded store.
    pub fn stall_first(&self, needles: &'static [&'static str], seconds: f64, window: f64) -> bool {
        let proxies: Vec<Arc<Proxy>> = self
            .replicas
            .iter()
            .filter_map(|r| r.proxy.clone())
            .collect();
        if proxies.is_empty() {
            return false;
        }
        let held = Duration::from_secs_f64(seconds);
        for p in &proxies {
            p.stall_after(needles, held, held);
        }
        // The first to send it is the one stalled; the others are called off.
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(window);
            while tokio::time::Instant::now() < deadline
                && !proxies.iter().any(|p| p.triggered().is_some())
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            for p in &proxies {
                p.disarm();
            }
        });
        true
    }

    /// Every replica's proxy armed to notice its first request holding all
    /// of `needles` (without stalling anything); none on the embedded store.
    pub fn arm(&self, needles: &'static [&'static str]) -> Option<Armed> {
        let mut armed = Vec::new();
        for i in 0..self.replicas.len() {
            let (Some(proxy), Some(child)) = (&self.replicas[i].proxy, &self.replicas[i].child)
            else {
                continue;
            };
            proxy.stall_after(needles, Duration::ZERO, Duration::ZERO);
            armed.push((self.id(i), child.id(), proxy.clone()));
        }
        (!armed.is_empty()).then_some(Armed(armed))
    }

    /// Whether an aimed stall began on any replica.
    pub fn stalled_any(&self) -> bool {
        self.replicas
            .iter()
            .filter_map(|r| r.proxy.as_ref())
            .any(|p| p.triggered().is_some())
    }

    /// Every incarnation's id and log.
    pub fn logs(&self) -> &[(String, PathBuf)] {
        &self.logs
    }

    pub fn count(&self) -> usize {
        self.replicas.len()
    }

    pub fn stop_all(&mut self) {
        for i in 0..self.replicas.len() {
            self.resume(i);
            self.kill(i);
        }
    }
}

/// Proxies armed by [`Replicas::arm`], with their replica's id and pid.
pub struct Armed(Vec<(String, u32, Arc<Proxy>)>);

impl Armed {
    /// The replica whose aimed request went out first, if one has.
    pub fn first_triggered(&self) -> Option<(String, u32)> {
        self.0
            .iter()
            .filter_map(|(id, pid, p)| p.triggered().map(|at| (at, id, pid)))
            .min_by_key(|(at, _, _)| *at)
            .map(|(_, id, pid)| (id.clone(), *pid))
    }

    pub fn disarm(&self) {
        for (_, _, p) in &self.0 {
            p.disarm();
        }
    }
}

/// Sends `signal` to process `pid` (a replica this campaign started).
pub fn signal_pid(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on a child of this process.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// The child is killed when the campaign dies (even by a signal that
/// skips its clean-up), so no replica outlives it.
pub fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        self.stop_all();
    }
}
