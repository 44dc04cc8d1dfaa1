//! `ecs-recycler dashboard` as a person sees it: the sandbox's world
//! recycles a service into a store while the dashboard serves that store,
//! and a real headless Chromium opens the pages — during the run (the page
//! reloads itself) and after it (the list and the request's chart show the
//! numbers the store holds, read from the DOM once the page's script ran).
//! The screenshots land in the test's target directory, and in docs/ when
//! ECS_RECYCLER_UPDATE_SCREENSHOTS=1.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ecs_recycler::store::embedded::EmbeddedStore;
use ecs_recycler::store::{Kind, Store};
use serde_json::Value;

use crate::support::browser::Browser;

const REQUEST: &str = "demo-recycle";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ecs-recycler"))
}

/// Where a screenshot goes: the test's own directory, and docs/ when asked.
fn save_as(name: &str) -> Vec<PathBuf> {
    let mut to = vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)];
    if std::env::var_os("ECS_RECYCLER_UPDATE_SCREENSHOTS").is_some() {
        to.push(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("docs")
                .join(name),
        );
    }
    to
}

async fn status_of(store: &EmbeddedStore) -> Option<(Value, u64)> {
    let record = store.get(Kind::RecycleRequest, REQUEST).await.ok()??;
    Some((record.status?, record.version))
}

async fn screenshot(browser: &mut Browser, name: &str) {
    for path in save_as(name) {
        browser.screenshot(&path).await;
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{}: {size} bytes", path.display());
        println!("screenshot: {}", path.display());
    }
}

fn wait_a_little() -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_millis(200))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_sandbox_run_in_a_real_browser() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("dashboard-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let store = EmbeddedStore::open(&path).unwrap();
    let mut browser = Browser::start(1280, 900).await;

    let sandbox = Killed(
        binary()
            .args(["sandbox", "--tasks", "4", "--wait", "1s", "--store"])
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the sandbox"),
    );
    let mut dashboard = Killed(
        binary()
            .args(["dashboard", "--listen", "127.0.0.1:0", "--store"])
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the dashboard"),
    );
    let mut first = String::new();
    BufReader::new(dashboard.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("the dashboard says where it listens: {first:?}"))
        .trim_end_matches('/')
        .to_string();

    // During the run: the request's page is under way and reloads itself.
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let under_way = status_of(&store).await.is_some_and(|(s, _)| {
            s["phase"] == "Recycling" && s["timeline"]["samples"].as_array().is_some()
        });
        if under_way {
            break;
        }
        assert!(
            Instant::now() < until,
            "the sandbox's request never got going"
        );
        wait_a_little().await;
    }
    browser.open(&format!("{url}/requests/{REQUEST}")).await;
    let during = browser
        .eval(
            r#"({refresh: document.body.dataset.refresh,
                 meta: !!document.querySelector('meta[http-equiv="refresh"]'),
                 rendered: document.body.dataset.rendered,
                 phase: document.querySelector('#status').dataset.phase})"#,
        )
        .await;
    assert_eq!(during["refresh"], "on", "{during}");
    assert_eq!(during["meta"], true, "{during}");
    assert_eq!(during["rendered"], "yes", "the page's script ran: {during}");
    assert!(
        ["Recycling", "Restoring"].contains(&during["phase"].as_str().unwrap()),
        "{during}"
    );

    // After it: the sandbox ends with every invariant held.
    let out = sandbox_output(sandbox);
    assert!(out.contains("The run, from its status"), "{out}");
    let (status, _) = status_of(&store).await.expect("the request is kept");
    assert_eq!(status["phase"], "Succeeded", "{status}");

    browser.open(&format!("{url}/")).await;
    let rows = browser
        .eval(
            r#"[...document.querySelectorAll('table[data-kind="RecycleRequest"] tbody tr')]
                 .map(tr => [...tr.cells].map(td => td.textContent.trim()))"#,
        )
        .await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row: Vec<&str> = rows[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(&row[..3], [REQUEST, "demo/web", "Succeeded"], "{row:?}");
    assert!(row[3].starts_with("4/4 "), "{row:?}");
    assert_eq!(
        browser
            .eval("document.querySelector('meta[http-equiv=\"refresh\"]') === null")
            .await,
        true,
        "nothing under way: no reload"
    );
    screenshot(&mut browser, "dashboard-overview.png").await;

    browser.open(&format!("{url}/requests/{REQUEST}")).await;
    let page = browser
        .eval(
            r#"(() => {
                const svg = document.querySelector('svg#timeline');
                const marks = kind => svg.querySelectorAll(`.mark[data-kind="${kind}"]`).length;
                const line = name => svg.querySelector(`path[data-series="${name}"]`);
                return {
                    rendered: document.body.dataset.rendered,
                    samples: +svg.dataset.samples,
                    lowestRunning: +svg.dataset.lowestRunning,
                    highestDesired: +svg.dataset.highestDesired,
                    lastDesired: +svg.dataset.lastDesired,
                    stopped: marks('stopped'),
                    serving: marks('serving'),
                    surge: marks('surge'),
                    runningDrawn: line('running').getTotalLength(),
                    chartWidth: svg.getBoundingClientRect().width,
                    events: document.querySelectorAll('#events tbody tr').length,
                    plan: [...document.querySelectorAll('#plan tbody tr td:last-child')].map(td => td.textContent),
                    progress: document.querySelector('#status').dataset.done + '/' + document.querySelector('#status').dataset.total,
                };
            })()"#,
        )
        .await;
    let timeline = &status["timeline"];
    let samples = timeline["samples"].as_array().unwrap();
    let counts = |i: usize| samples.iter().map(move |s| s[i].as_u64().unwrap());
    let marks_of = |kind: &str| {
        timeline["marks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["kind"] == kind)
            .count()
    };
    assert_eq!(page["rendered"], "yes", "{page}");
    assert_eq!(page["samples"], samples.len(), "{page}");
    assert_eq!(page["lowestRunning"], counts(2).min().unwrap(), "{page}");
    assert_eq!(page["highestDesired"], counts(1).max().unwrap(), "{page}");
    assert_eq!(page["highestDesired"], 5, "the surge of one: {page}");
    assert_eq!(page["lastDesired"], 4, "restored: {page}");
    assert_eq!(page["stopped"], 4, "a mark per batch: {page}");
    assert_eq!(page["stopped"], marks_of("stopped"), "{page}");
    assert_eq!(page["serving"], marks_of("serving"), "{page}");
    assert_eq!(page["surge"], 1, "{page}");
    assert!(page["runningDrawn"].as_f64().unwrap() > 100.0, "{page}");
    assert!(page["chartWidth"].as_f64().unwrap() > 800.0, "{page}");
    assert_eq!(
        page["events"],
        status["events"].as_array().unwrap().len(),
        "{page}"
    );
    assert_eq!(
        page["plan"],
        serde_json::json!(vec!["recycled"; 4]),
        "{page}"
    );
    assert_eq!(page["progress"], "4/4", "{page}");
    screenshot(&mut browser, "dashboard-request.png").await;

    let bytes = |v: &Value| serde_json::to_string(v).unwrap().len();
    println!(
        "the sandbox's run (4 tasks): timeline {} bytes ({} samples, {} marks) of a {}-byte status",
        bytes(timeline),
        samples.len(),
        timeline["marks"].as_array().unwrap().len(),
        bytes(&status)
    );

    // SIGTERM ends it cleanly.
    crate::support::terminate(&dashboard.0);
    let exit = dashboard.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(path.with_extension("json.lock"));
}

/// Waits for the sandbox to end, and says what it printed.
fn sandbox_output(mut sandbox: Killed) -> String {
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(sandbox.0.stdout.as_mut().unwrap(), &mut out);
    let exit = sandbox.0.wait().unwrap();
    assert!(exit.success(), "the sandbox failed ({exit:?}):\n{out}");
    out
}
