//! One run of the scenario: the requests put in a fresh store, `replicas`
//! operator processes started on it, their progress read from their own
//! gauges until none is left, then what they measured collected — their
//! metrics and logs, the CPU of each process, the calls each made to the
//! store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use serde_json::Value;
use test_support::moto::Moto;

use super::scrape::Scrape;
use crate::BenchError;
use crate::harness::*;
use crate::product::{AnyStore, DynamoStore, EmbeddedStore, Kind, Store, http_get};
use crate::store_calls::{Calls, CountingProxy};

const KIND: Kind = Kind::RecycleRequest;

/// What every run shares: the operator binary, the simulator (its URL and
/// process, whose CPU time is read), moto when the records are in
/// DynamoDB, and the services.
pub(super) struct Bed<'a> {
    pub(super) binary: &'a Path,
    pub(super) url: &'a str,
    pub(super) sim_pid: u32,
    pub(super) moto: Option<&'a Moto>,
    pub(super) names: &'a [(String, String)],
    /// Where to keep the operators' logs (`--replica-logs`), if anywhere.
    pub(super) keep_logs: Option<&'a Path>,
}

/// What one run measured.
pub(super) struct Run {
    /// Seconds from the replicas' start until every request had finished
    /// (as the replicas' listings show it: up to a tick late).
    pub(super) elapsed: f64,
    /// Listings of the store the benchmark made itself, to confirm the end.
    pub(super) own_listings: usize,
    /// Seconds until half, and nine tenths, of the requests had finished.
    pub(super) half: f64,
    pub(super) nine_tenths: f64,
    scrapes: Vec<Scrape>,
    /// Each replica's JSON log.
    logs: Vec<String>,
    pub(super) timeline: Value,
    /// When the run started, on the simulator's clock.
    pub(super) t0: f64,
    /// CPU seconds of the operators (all their lives), of moto and of the
    /// simulator (during the run).
    pub(super) cpu_operators: f64,
    pub(super) cpu_moto: Option<f64>,
    pub(super) cpu_sim: f64,
    /// Each replica's DynamoDB calls by operation, and the bytes moto
    /// answered them all (none on the file store).
    pub(super) store_calls: Vec<BTreeMap<String, Calls>>,
    pub(super) store_answered: u64,
}

impl Run {
    /// The steps each replica made: its reconciles, whatever their outcome.
    pub(super) fn steps(&self) -> Vec<f64> {
        self.scrapes
            .iter()
            .map(|s| {
                s.by("ecs_recycler_reconciles_total", "outcome")
                    .values()
                    .sum()
            })
            .collect()
    }

    /// `series` by label `key`, summed over the replicas.
    pub(super) fn total_by(&self, series: &str, key: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in &self.scrapes {
            for (k, v) in s.by(series, key) {
                *out.entry(k).or_default() += v;
            }
        }
        out
    }

    pub(super) fn total(&self, series: &str) -> f64 {
        self.scrapes.iter().map(|s| s.one(series)).sum()
    }

    /// Log lines, over every replica, whose message is `message`.
    pub(super) fn logged(&self, message: &str) -> usize {
        self.logs
            .iter()
            .flat_map(|log| log.lines())
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| {
                l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m == message)
            })
            .count()
    }
}

/// The operator's flags: its real defaults for time (as the failover
/// scenario: three processes on one store file, or on one moto, get their
/// leases answered in tenths of a second to seconds, too slowly for a lease
/// scaled down to 750 ms), and the simulator's buckets (every refill
/// `SCALE` times faster).
fn flags() -> Vec<String> {
    let quotas: Vec<String> = scaled_quotas()
        .into_iter()
        .map(|(name, q)| format!("{name}={}/{}", q.burst, q.refill_per_second))
        .collect();
    vec!["--api-quota".into(), quotas.join(",")]
}

/// The records of one run: an embedded store file in `dir`, or a fresh
/// table in moto made as `ecs-recycler init` makes it (its name answered).
async fn open_records(
    moto: Option<&Moto>,
    dir: &Path,
    label: &str,
) -> Result<(AnyStore, Option<String>), BenchError> {
    match moto {
        None => {
            let store = EmbeddedStore::open(dir.join("store.json"))
                .map_err(|e| failed("open the store", e))?;
            Ok((AnyStore::Embedded(store), None))
        }
        Some(moto) => {
            // A table per run: the three replicas' heartbeats (they are
            // killed, so never ended) would count for a lease in the one
            // replica's run and cut its share of the API.
            let table = format!("replicas-{label}");
            let config = sdk_config(&moto.url, RetryConfig::standard()).await;
            let store = DynamoStore::new(&config, &table);
            store
                .create_table()
                .await
                .map_err(|e| failed("create the table", e))?;
            Ok((AnyStore::Dynamo(store), Some(table)))
        }
    }
}

/// The replicas, one operator process each, logging to `logs`; on moto,
/// each reaches it through a proxy of its own, which counts its calls.
async fn start_replicas(
    bed: &Bed<'_>,
    dir: &Path,
    table: Option<&str>,
    label: &str,
    logs: &[PathBuf],
) -> Result<(Vec<ChildProcess>, Vec<CountingProxy>), BenchError> {
    let flags = flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut children = Vec::new();
    let mut proxies = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        let at = match (table, bed.moto) {
            (Some(table), Some(moto)) => {
                let proxy = CountingProxy::start(&moto.url).await?;
                let at = RecordsAt::Table {
                    name: table.to_string(),
                    endpoint: proxy.url.clone(),
                };
                proxies.push(proxy);
                at
            }
            _ => RecordsAt::File(dir.join("store.json")),
        };
        children.push(spawn_operator(
            bed.binary,
            bed.url,
            &at,
            &format!("{label}-{i}"),
            &flags,
            log,
        )?);
    }
    Ok((children, proxies))
}

/// How a run went over time.
struct Progress {
    elapsed: f64,
    half: f64,
    nine_tenths: f64,
    own_listings: usize,
}

/// Waits until every request has finished, from the replicas' gauges of
/// requests with work left (as of each one's last listing), not by listing
/// the store: a listing of a thousand records costs moto about a second of
/// CPU, and a benchmark listing once a second took a large part of the
/// store's time from the replicas it measures.
async fn watch(
    store: &AnyStore,
    logs: &[PathBuf],
    requests: usize,
) -> Result<Progress, BenchError> {
    let replicas = logs.len();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(1800);
    let (mut half, mut nine_tenths) = (None, None);
    let mut addrs: Vec<Option<String>> = vec![None; replicas];
    // None until the replica has listed some: its gauge reads 0 before.
    let mut left: Vec<Option<f64>> = vec![None; replicas];
    let mut own_listings = 0;
    let elapsed = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (i, log) in logs.iter().enumerate() {
            if addrs[i].is_none() {
                addrs[i] = logged_addr(log).ok();
            }
            let Some(addr) = &addrs[i] else { continue };
            let Ok((_, body)) = http_get(&format!("http://{addr}/metrics")).await else {
                continue;
            };
            let n: f64 = Scrape::parse(&body)
                .by("ecs_recycler_active_requests", "phase")
                .values()
                .sum();
            if n > 0.0 || left[i].is_some() {
                left[i] = Some(n);
            }
        }
        let now = started.elapsed().as_secs_f64();
        // Requests only finish: the lowest count is the latest listing's.
        let fewest = left.iter().flatten().copied().reduce(f64::min);
        let done = fewest.map_or(0.0, |n| requests as f64 - n);
        if 2.0 * done >= requests as f64 {
            half.get_or_insert(now);
        }
        if 10.0 * done >= 9.0 * requests as f64 {
            nine_tenths.get_or_insert(now);
        }
        if fewest == Some(0.0) {
            // Once the gauges say none are left, one listing to be sure.
            own_listings += 1;
            let active = store
                .list_active_lean(KIND)
                .await
                .map_err(|e| failed("read the store", e))?;
            if active.is_empty() {
                break now;
            }
        }
        if Instant::now() > deadline {
            return Err(BenchError(format!(
                "{done}/{requests} requests finished with {replicas} replicas"
            )));
        }
    };
    Ok(Progress {
        elapsed,
        half: half.unwrap_or(elapsed),
        nine_tenths: nine_tenths.unwrap_or(elapsed),
        own_listings,
    })
}

/// Each replica's `/metrics`, at the end.
async fn scrape_all(logs: &[PathBuf]) -> Result<Vec<Scrape>, BenchError> {
    let mut scrapes = Vec::new();
    for log in logs {
        let addr = logged_addr(log)?;
        let (_, body) = http_get(&format!("http://{addr}/metrics"))
            .await
            .map_err(BenchError)?;
        scrapes.push(Scrape::parse(&body));
    }
    Ok(scrapes)
}

/// The replicas' logs, read; kept under `keep` too when it is given.
fn read_logs(
    logs: &[PathBuf],
    keep: Option<&Path>,
    label: &str,
) -> Result<Vec<String>, BenchError> {
    let logs: Vec<String> = logs
        .iter()
        .map(|l| std::fs::read_to_string(l).unwrap_or_default())
        .collect();
    if let Some(keep) = keep {
        let keep = keep.join(label);
        std::fs::create_dir_all(&keep).map_err(|e| failed("make the log directory", e))?;
        for (i, text) in logs.iter().enumerate() {
            std::fs::write(keep.join(format!("{label}-{i}.log")), text)
                .map_err(|e| failed("keep an operator log", e))?;
        }
    }
    Ok(logs)
}

/// One run of `replicas` operators over one request on each service.
pub(super) async fn run(bed: &Bed<'_>, replicas: usize, label: &str) -> Result<Run, BenchError> {
    let dir =
        std::env::temp_dir().join(format!("ecs-recycler-bench-{label}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| failed("make a temp dir", e))?;
    let (store, table) = open_records(bed.moto, &dir, label).await?;
    create_requests(&store, bed.names, |i| format!("r{i:04}")).await?;
    let t0 = get_json(&format!("{}/_sim/timeline", bed.url)).await?["now"]
        .as_f64()
        .unwrap_or(0.0);
    let sim_cpu = || cpu_seconds_of(&bed.sim_pid.to_string()).unwrap_or(0.0);
    let moto_cpu = || bed.moto.and_then(|m| cpu_seconds_of(&m.pid().to_string()));
    let (sim_before, moto_before) = (sim_cpu(), moto_cpu());
    let logs: Vec<_> = (0..replicas)
        .map(|i| dir.join(format!("{label}-{i}.log")))
        .collect();
    let (children, proxies) = start_replicas(bed, &dir, table.as_deref(), label, &logs).await?;
    let progress = watch(&store, &logs, bed.names.len()).await?;
    let cpu_sim = sim_cpu() - sim_before;
    let cpu_moto = moto_cpu().zip(moto_before).map(|(a, b)| a - b);
    let scrapes = scrape_all(&logs).await?;
    let cpu_operators = children
        .iter()
        .filter_map(|c| cpu_seconds_of(&c.0.id().to_string()))
        .sum();
    drop(children);
    let store_calls = proxies.iter().map(CountingProxy::calls).collect();
    let store_answered = proxies.iter().map(CountingProxy::answered).sum();
    drop(proxies);
    let logs = read_logs(&logs, bed.keep_logs, label)?;
    let timeline = get_json(&format!("{}/_sim/timeline", bed.url)).await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Run {
        elapsed: progress.elapsed,
        own_listings: progress.own_listings,
        half: progress.half,
        nine_tenths: progress.nine_tenths,
        scrapes,
        logs,
        timeline,
        t0,
        cpu_operators,
        cpu_moto,
        cpu_sim,
        store_calls,
        store_answered,
    })
}

/// The address of an operator's endpoints, from its JSON log.
fn logged_addr(log: &Path) -> Result<String, BenchError> {
    let text = std::fs::read_to_string(log).map_err(|e| failed("read an operator log", e))?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("serving /healthz"))
        })
        .and_then(|l| l["fields"]["addr"].as_str().map(str::to_string))
        .ok_or_else(|| BenchError(format!("{} names no endpoint", log.display())))
}
