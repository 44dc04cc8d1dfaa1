//! Scenario: replicas that share the work and the API share. Three
//! operator processes on one DynamoDB table behind moto (the issue's
//! setting; `--replica-store file` puts them on one embedded store file
//! instead) against one simulator with ECS's realistic buckets, then one
//! replica on the same work, on a table of its own, for the time. Besides
//! the figures (each replica's share of the steps, the account's
//! calls a second per category against the share, three's time against
//! one's) it reports, for both runs, what explains the times: the steps by
//! outcome, token waits per category, leases given back and taken over,
//! ECS calls per request, each replica's DynamoDB calls by operation and
//! moto's time to answer them (through a counting proxy per replica,
//! [`crate::store_calls`]), and the CPU the operators, moto and the
//! simulator used. Progress is read from the replicas' own gauges, so the
//! benchmark does not load the store it measures.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use serde_json::{Value, json};
use test_support::moto::Moto;

use crate::harness::*;
use crate::product::{AnyStore, DynamoStore, EmbeddedStore, Kind, Store};
use crate::store_calls::{Calls, CountingProxy};
use crate::{BenchError, Figure};

const KIND: Kind = Kind::RecycleRequest;
const JITTER: f64 = 0.2;

/// Where the replicas keep their records (`--replica-store`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplicaStore {
    /// One embedded store file, locked by every write of every replica.
    File,
    /// One DynamoDB table behind moto's server, started for the scenario.
    Dynamodb,
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

/// What every run shares: the operator binary, the simulator (its URL and
/// process, whose CPU time is read), moto when the records are in
/// DynamoDB, and the services.
struct Bed<'a> {
    binary: &'a Path,
    url: &'a str,
    sim_pid: u32,
    moto: Option<&'a Moto>,
    names: &'a [(String, String)],
    /// Where to keep the operators' logs (`--replica-logs`), if anywhere.
    keep_logs: Option<&'a Path>,
}

/// One replica's `/metrics`, line by line: (series with its labels, value).
struct Scrape(Vec<(String, f64)>);

impl Scrape {
    fn parse(body: &str) -> Self {
        Self(
            body.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let (series, value) = l.rsplit_once(' ')?;
                    Some((series.to_string(), value.parse().ok()?))
                })
                .collect(),
        )
    }

    /// The values of the series named `name`, by the value of their label `key`.
    fn by(&self, name: &str, key: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        let needle = format!("{key}=\"");
        for (series, value) in &self.0 {
            let Some(labels) = series
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('{'))
            else {
                continue;
            };
            let Some(at) = labels.find(&needle) else {
                continue;
            };
            let rest = &labels[at + needle.len()..];
            let label = rest.split('"').next().unwrap_or("").to_string();
            *out.entry(label).or_default() += value;
        }
        out
    }

    /// The value of the series exactly `series` (no labels), or 0.
    fn one(&self, series: &str) -> f64 {
        self.0
            .iter()
            .filter(|(s, _)| s == series)
            .map(|(_, v)| v)
            .sum()
    }
}

/// What one run measured.
struct Run {
    /// Seconds from the replicas' start until every request had finished
    /// (as the replicas' listings show it: up to a tick late).
    elapsed: f64,
    /// Listings of the store the benchmark made itself, to confirm the end.
    own_listings: usize,
    /// Seconds until half, and nine tenths, of the requests had finished.
    half: f64,
    nine_tenths: f64,
    scrapes: Vec<Scrape>,
    /// Each replica's JSON log.
    logs: Vec<String>,
    timeline: Value,
    /// When the run started, on the simulator's clock.
    t0: f64,
    /// CPU seconds of the operators (all their lives), of moto and of the
    /// simulator (during the run).
    cpu_operators: f64,
    cpu_moto: Option<f64>,
    cpu_sim: f64,
    /// Each replica's DynamoDB calls by operation, and the bytes moto
    /// answered them all (none on the file store).
    store_calls: Vec<BTreeMap<String, Calls>>,
    store_answered: u64,
}

impl Run {
    /// The steps each replica made: its reconciles, whatever their outcome.
    fn steps(&self) -> Vec<f64> {
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
    fn total_by(&self, series: &str, key: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in &self.scrapes {
            for (k, v) in s.by(series, key) {
                *out.entry(k).or_default() += v;
            }
        }
        out
    }

    fn total(&self, series: &str) -> f64 {
        self.scrapes.iter().map(|s| s.one(series)).sum()
    }

    /// Log lines, over every replica, whose message is `message`.
    fn logged(&self, message: &str) -> usize {
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

/// One run of `replicas` operators over one request on each service.
async fn run(bed: &Bed<'_>, replicas: usize, label: &str) -> Result<Run, BenchError> {
    let names = bed.names;
    let dir =
        std::env::temp_dir().join(format!("ecs-recycler-bench-{label}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| failed("make a temp dir", e))?;
    let (store, table) = open_records(bed.moto, &dir, label).await?;
    for (i, (cluster, service)) in names.iter().enumerate() {
        store
            .create(
                KIND,
                &format!("r{i:04}"),
                json!({"cluster": cluster, "service": service, "wait": wait_spec()}),
                chrono::Utc::now(),
            )
            .await
            .map_err(|e| failed("create a request", e))?;
    }
    let t0 = get_json(&format!("{}/_sim/timeline", bed.url)).await?["now"]
        .as_f64()
        .unwrap_or(0.0);
    let sim_cpu = || cpu_seconds_of(&bed.sim_pid.to_string()).unwrap_or(0.0);
    let moto_cpu = || bed.moto.and_then(|m| cpu_seconds_of(&m.pid().to_string()));
    let (sim_before, moto_before) = (sim_cpu(), moto_cpu());
    let flags = flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let logs: Vec<_> = (0..replicas)
        .map(|i| dir.join(format!("{label}-{i}.log")))
        .collect();
    let mut children = Vec::new();
    let mut proxies = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        // Each replica reaches moto through a proxy of its own, which
        // counts its calls.
        let at = match (&table, bed.moto) {
            (Some(table), Some(moto)) => {
                let proxy = CountingProxy::start(&moto.url).await?;
                let at = RecordsAt::Table {
                    name: table.clone(),
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
    let started = Instant::now();
    let deadline = started + Duration::from_secs(1800);
    let (mut half, mut nine_tenths) = (None, None);
    // Progress is read from the replicas' gauges of requests with work left
    // (as of each one's last listing), not by listing the store: a listing
    // of a thousand records costs moto about a second of CPU, and a
    // benchmark listing once a second took a large part of the store's
    // time from the replicas it measures.
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
            let Ok((_, body)) = crate::product::http_get(&format!("http://{addr}/metrics")).await
            else {
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
        let done = fewest.map_or(0.0, |n| names.len() as f64 - n);
        if 2.0 * done >= names.len() as f64 {
            half.get_or_insert(now);
        }
        if 10.0 * done >= 9.0 * names.len() as f64 {
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
                "{done}/{} requests finished with {replicas} replicas",
                names.len()
            )));
        }
    };
    let cpu_sim = sim_cpu() - sim_before;
    let cpu_moto = moto_cpu().zip(moto_before).map(|(a, b)| a - b);
    let mut scrapes = Vec::new();
    for log in &logs {
        let addr = logged_addr(log)?;
        let (_, body) = crate::product::http_get(&format!("http://{addr}/metrics"))
            .await
            .map_err(BenchError)?;
        scrapes.push(Scrape::parse(&body));
    }
    let cpu_operators = children
        .iter()
        .filter_map(|c| cpu_seconds_of(&c.0.id().to_string()))
        .sum();
    drop(children);
    let store_calls = proxies.iter().map(CountingProxy::calls).collect();
    let store_answered = proxies.iter().map(CountingProxy::answered).sum();
    drop(proxies);
    let logs: Vec<String> = logs
        .iter()
        .map(|l| std::fs::read_to_string(l).unwrap_or_default())
        .collect();
    let timeline = get_json(&format!("{}/_sim/timeline", bed.url)).await?;
    if let Some(keep) = bed.keep_logs {
        let keep = keep.join(label);
        std::fs::create_dir_all(&keep).map_err(|e| failed("make the log directory", e))?;
        for (i, text) in logs.iter().enumerate() {
            std::fs::write(keep.join(format!("{label}-{i}.log")), text)
                .map_err(|e| failed("keep an operator log", e))?;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Run {
        elapsed,
        own_listings,
        half: half.unwrap_or(elapsed),
        nine_tenths: nine_tenths.unwrap_or(elapsed),
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

/// Each category's calls since `since`, by the simulator's clock, sorted.
fn calls_by_category(timeline: &Value, since: f64) -> BTreeMap<&'static str, Vec<f64>> {
    let mut out: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for c in timeline["calls"].as_array().into_iter().flatten() {
        let t = c["t"].as_f64().unwrap_or(0.0);
        let op = c["op"].as_str().unwrap_or("");
        if t < since || op.starts_with("_sim") {
            continue;
        }
        let service = if is_ecs_call(op) {
            api_limits::Service::Ecs
        } else {
            api_limits::Service::ApplicationAutoScaling
        };
        if let Some(category) = api_limits::category_of(service, op) {
            out.entry(category.name).or_default().push(t);
        }
    }
    out
}

/// The most calls in any window of one second.
fn busiest_second(times: &[f64]) -> usize {
    let mut most = 0;
    let mut first = 0;
    for (i, t) in times.iter().enumerate() {
        while times[first] < t - 1.0 {
            first += 1;
        }
        most = most.max(i + 1 - first);
    }
    most
}

/// The account's calls per category against the share: the busiest second
/// and the mean rate over the run. `prefix` names the run ("" for the
/// three replicas', as the figures).
fn category_figures(s: &'static str, prefix: &str, run: &Run) -> Vec<Figure> {
    let mut figures = Vec::new();
    let t0 = run.t0;
    for (category, times) in calls_by_category(&run.timeline, t0) {
        let (burst, rate) = share_of(category);
        let span = times.last().unwrap_or(&t0) - times.first().unwrap_or(&t0);
        figures.push(
            Figure::new(
                s,
                format!(
                    "{prefix}{category}: most calls in one second (share: burst + a second's refill)"
                ),
                busiest_second(&times) as f64,
                "",
            )
            .at_most(burst + rate),
        );
        figures.push(
            Figure::new(
                s,
                format!("{prefix}{category}: calls a second over the run (share's refill {rate})"),
                times.len() as f64 / span.max(1.0),
                "",
            )
            .at_most(rate),
        );
    }
    figures
}

/// What explains a run's time, no target: when half and nine tenths were
/// done, the steps by outcome, the calls, the waits, the leases, the CPU.
fn explaining_figures(s: &'static str, label: &str, run: &Run, requests: usize) -> Vec<Figure> {
    let per_request = |n: f64| n / requests.max(1) as f64;
    let mut figures = vec![
        Figure::new(
            s,
            format!("{label}: half the requests finished"),
            run.half,
            "s",
        ),
        Figure::new(
            s,
            format!("{label}: nine tenths of the requests finished"),
            run.nine_tenths,
            "s",
        ),
    ];
    let steps: f64 = run.steps().iter().sum();
    figures.push(Figure::new(
        s,
        format!("{label}: steps per request"),
        per_request(steps),
        "",
    ));
    for (outcome, n) in run.total_by("ecs_recycler_reconciles_total", "outcome") {
        figures.push(Figure::new(
            s,
            format!("{label}: steps ended {outcome}"),
            n,
            "",
        ));
    }
    let step_sum = run.total("ecs_recycler_step_duration_seconds_sum");
    let step_count = run.total("ecs_recycler_step_duration_seconds_count");
    figures.push(Figure::new(
        s,
        format!("{label}: mean step time"),
        step_sum / step_count.max(1.0),
        "s",
    ));
    let (ecs, aas) = calls_since(&run.timeline, run.t0);
    figures.push(Figure::new(
        s,
        format!("{label}: ECS calls per request"),
        per_request(ecs as f64),
        "",
    ));
    figures.push(Figure::new(
        s,
        format!("{label}: Application Auto Scaling calls per request"),
        per_request(aas as f64),
        "",
    ));
    for (op, n) in ecs_calls_by_operation(&run.timeline, run.t0) {
        figures.push(Figure::new(
            s,
            format!("{label}: {op} calls per request"),
            per_request(n as f64),
            "",
        ));
    }
    let outcomes = run.total_by("ecs_recycler_aws_calls_total", "outcome");
    for outcome in ["deferred", "not_sent", "throttled"] {
        figures.push(Figure::new(
            s,
            format!("{label}: AWS calls answered {outcome} (client side)"),
            outcomes.get(outcome).copied().unwrap_or(0.0),
            "",
        ));
    }
    for (category, secs) in run.total_by("ecs_recycler_api_token_wait_seconds_total", "category") {
        figures.push(Figure::new(
            s,
            format!("{label}: seconds waited for tokens: {category}"),
            secs,
            "s",
        ));
    }
    figures.push(Figure::new(
        s,
        format!("{label}: leases taken (free records claimed)"),
        run.logged("lease taken") as f64,
        "",
    ));
    figures.push(Figure::new(
        s,
        format!("{label}: leases given back (another replica's part)"),
        run.logged("lease given back: another replica's part") as f64,
        "",
    ));
    figures.push(Figure::new(
        s,
        format!("{label}: leases taken over (expired)"),
        run.total("ecs_recycler_lease_takeovers_total"),
        "",
    ));
    // The other side of a takeover: a holder that found its lease gone,
    // not having renewed it in time.
    figures.push(Figure::new(
        s,
        format!("{label}: leases found taken over by another replica"),
        run.logged("lease taken over by another replica") as f64,
        "",
    ));
    figures.push(Figure::new(
        s,
        format!("{label}: CPU time, the operators"),
        run.cpu_operators,
        "s",
    ));
    if let Some(cpu) = run.cpu_moto {
        figures.push(Figure::new(
            s,
            format!("{label}: CPU time, the store (moto)"),
            cpu,
            "s",
        ));
    }
    figures.push(Figure::new(
        s,
        format!("{label}: CPU time, the simulator"),
        run.cpu_sim,
        "s",
    ));
    let mut store_calls: BTreeMap<&str, Calls> = BTreeMap::new();
    for (op, c) in run.store_calls.iter().flatten() {
        let all = store_calls.entry(op.as_str()).or_default();
        all.sent += c.sent;
        all.answered += c.answered;
        all.seconds += c.seconds;
    }
    for (op, c) in &store_calls {
        figures.push(Figure::new(
            s,
            format!("{label}: DynamoDB {op} calls per request"),
            per_request(c.sent as f64),
            "",
        ));
        figures.push(Figure::new(
            s,
            format!("{label}: DynamoDB {op}: mean time to moto's answer"),
            c.seconds / c.answered.max(1) as f64,
            "s",
        ));
    }
    // The listing (a Query of the active index) is the call whose cost
    // grows with the active records.
    for (i, calls) in run.store_calls.iter().enumerate() {
        figures.push(Figure::new(
            s,
            format!("{label}: replica {i}: DynamoDB queries (listings) a second"),
            calls.get("query").map_or(0, |c| c.sent) as f64 / run.elapsed.max(1.0),
            "",
        ));
    }
    figures.push(Figure::new(
        s,
        format!("{label}: listings of the store by the benchmark itself"),
        run.own_listings as f64,
        "",
    ));
    if !run.store_calls.is_empty() {
        figures.push(Figure::new(
            s,
            format!("{label}: MiB the store answered"),
            run.store_answered as f64 / (1024.0 * 1024.0),
            "MiB",
        ));
    }
    figures
}

pub async fn replicas(
    services: usize,
    store: ReplicaStore,
    keep_logs: Option<&Path>,
    binary: &Path,
) -> Result<Vec<Figure>, BenchError> {
    const S: &str = "replicas";
    let moto = match store {
        ReplicaStore::File => None,
        // It waits for moto's first answer, blocking: off the async threads.
        ReplicaStore::Dynamodb => Some(
            tokio::task::spawn_blocking(Moto::start)
                .await
                .map_err(|e| failed("start moto", e))?,
        ),
    };
    let (sim, url) = spawn_sim(binary, timings(JITTER))?;
    let ecs = ecs_client(&url).await;
    let names = make_services(&ecs, services).await?;
    throttle_realistically(&url).await?;
    let bed = Bed {
        binary,
        url: &url,
        sim_pid: sim.0.id(),
        moto: moto.as_ref(),
        names: &names,
        keep_logs,
    };
    let three = run(&bed, 3, "three").await?;
    let store_name = match store {
        ReplicaStore::File => "one embedded store file",
        ReplicaStore::Dynamodb => "one DynamoDB table (moto)",
    };
    let mut figures = vec![
        Figure::new(S, format!("requests, on {store_name}"), services as f64, ""),
        Figure::new(S, "time for all to finish, 3 replicas", three.elapsed, "s"),
    ];
    let steps = three.steps();
    let total: f64 = steps.iter().sum();
    for (i, n) in steps.iter().enumerate() {
        figures.push(
            Figure::new(
                S,
                format!("replica {i}: share of the steps"),
                n / total.max(1.0),
                "",
            )
            .between(1.0 / 3.0 * 0.8, 1.0 / 3.0 * 1.2),
        );
    }
    let throttled = three.timeline["calls"].as_array().map_or(0, |c| {
        c.iter()
            .filter(|c| c["t"].as_f64().unwrap_or(0.0) >= three.t0)
            .filter(|c| c["error"] == "ThrottlingException")
            .count()
    });
    figures.push(Figure::new(S, "ThrottlingException answers", throttled as f64, "").at_most(0.0));
    figures.extend(category_figures(S, "", &three));
    let mut explaining = explaining_figures(S, "3 replicas", &three, services);
    drop(three);
    // The same work for one replica, on services now steady again.
    make_services_steady(&ecs, &names).await?;
    let one = run(&bed, 1, "one").await?;
    let three_time = figures[1].value;
    figures.push(Figure::new(
        S,
        "time for all to finish, 1 replica",
        one.elapsed,
        "s",
    ));
    figures.push(Figure::new(
        S,
        "3 replicas' time ÷ 1 replica's",
        three_time / one.elapsed,
        "",
    ));
    figures.extend(category_figures(S, "1 replica, ", &one));
    explaining.extend(explaining_figures(S, "1 replica", &one, services));
    figures.extend(explaining);
    Ok(figures)
}
