//! The helper CLI as a person uses it, with the operator running: apply
//! (dry run, create, unchanged, a refused change), get, describe, pause,
//! resume, cancel and delete — once on the embedded store and once on
//! DynamoDB (moto's server) — checked against the simulator's timeline.
//! Also the exit codes, and `sandbox` end to end.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::moto::Moto;
use support::operator::*;
use support::*;

const WITHIN: Duration = Duration::from_secs(60);

struct Cli {
    store_args: Vec<String>,
    env: Vec<(String, String)>,
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Ran {
        let out = Command::new(env!("CARGO_BIN_EXE_ecs-recycler"))
            .args(args)
            .args(&self.store_args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("ECS_RECYCLER_TABLE")
            .output()
            .expect("run ecs-recycler");
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs and expects exit 0; answers stdout.
    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(
            r.code, 0,
            "{args:?}\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
        r.stdout
    }

    fn record(&self, name: &str) -> Value {
        serde_json::from_str(&self.ok(&["get", name, "-o", "json"])).expect("get -o json")
    }

    fn record_of(&self, kind: &str, name: &str) -> Value {
        serde_json::from_str(&self.ok(&["get", kind, name, "-o", "json"])).expect("get -o json")
    }

    /// Polls `get -o json` until `test` holds of the status.
    async fn until(&self, name: &str, what: &str, test: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let record = self.record(name);
            if test(&record["status"]) {
                return record;
            }
            assert!(start.elapsed() < WITHIN, "{name}: never {what}: {record:#}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn stopped(status: &Value) -> usize {
    status["stopped"].as_array().map_or(0, Vec::len)
}

fn manifest(dir: &Path, file: &str, batch: u32) -> String {
    let path = dir.join(file);
    std::fs::write(
        &path,
        format!(
            "apiVersion: ecs-recycler/v1
kind: RecycleRequest
metadata:
  name: web-rotate
spec:
  cluster: prod
  service: web
  batchSize: {batch}
  wait: 1500ms
  stabilityTimeout: 1m
"
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// The whole day-to-day flow against whichever store `cli` names.
async fn day_to_day(cli: &Cli, sim: &ecs_sim::Simulator, dir: &Path) {
    let file = manifest(dir, "request.yaml", 1);

    // A dry run plans against the live service and writes nothing.
    let plan = cli.ok(&["apply", "-f", &file, "--dry-run"]);
    assert!(
        plan.contains("recyclerequest/web-rotate created (dry run)"),
        "{plan}"
    );
    assert!(
        plan.contains("recycle 3 of 3 running task(s) in batches of 1"),
        "{plan}"
    );
    assert!(
        plan.contains("ecs:UpdateService desiredCount 3 → 4"),
        "{plan}"
    );
    assert_eq!(plan.matches("ecs:StopTask").count(), 3, "{plan}");
    assert!(
        plan.contains("ecs:UpdateService desiredCount 4 → 3"),
        "{plan}"
    );
    assert!(
        plan.contains("Lowest running: 3 (original desired 3"),
        "{plan}"
    );
    assert!(plan.contains("Estimated duration:"), "{plan}");
    assert_eq!(cli.ok(&["get"]), "No requests found.\n");

    let since = sim.now();
    let mut operator = spawn_operator(&cli.store_args, &cli.env, "r1", &dir.join("operator.log"));
    assert_eq!(
        cli.ok(&["apply", "-f", &file]),
        "recyclerequest/web-rotate created\n"
    );
    assert_eq!(
        cli.ok(&["apply", "-f", &file]),
        "recyclerequest/web-rotate unchanged\n"
    );

    // Paused as soon as the first task is stopped: no second stop while paused.
    cli.until("web-rotate", "recycling", |s| stopped(s) >= 1)
        .await;
    assert_eq!(
        cli.ok(&["pause", "web-rotate"]),
        "recyclerequest/web-rotate paused\n"
    );
    let held = cli
        .until("web-rotate", "holding", |s| {
            s["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("paused after")
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        stopped(&cli.record("web-rotate")["status"]),
        stopped(&held["status"])
    );
    assert!(
        cli.ok(&["pause", "web-rotate"])
            .contains("unchanged (already paused)")
    );

    // What a running request cannot take is refused with the field and why; nothing changes.
    let bigger = manifest(dir, "bigger.yaml", 2);
    let refused = cli.run(&["apply", "-f", &bigger]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("spec.batchSize cannot change once the request has started"),
        "{}",
        refused.stderr
    );
    assert_eq!(cli.record("web-rotate")["spec"]["batchSize"], 1);
    let delete = cli.run(&["delete", "web-rotate"]);
    assert_eq!(delete.code, 1);
    assert!(
        delete.stderr.contains("Cancel it first"),
        "{}",
        delete.stderr
    );

    let table = cli.ok(&["get", "requests"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("PROGRESS"),
        "{table}"
    );
    assert!(
        lines[1].contains("web-rotate") && lines[1].contains("prod/web"),
        "{table}"
    );
    assert!(
        lines[1].contains("Recycling") && lines[1].contains("/3 ["),
        "{table}"
    );
    assert!(lines[1].contains("paused after"), "{table}");
    let wide = cli.ok(&["get", "-o", "wide"]);
    assert!(wide.contains("REPLICA") && wide.contains("r1"), "{wide}");

    let described = cli.ok(&["describe", "request", "web-rotate"]);
    for part in ["Spec:", "Plan:", "Events:", "Flags:", "paused", "recycled"] {
        assert!(described.contains(part), "{part}: {described}");
    }
    let first = described
        .find("Starting task recycle")
        .expect("start event");
    let stop = described.find("Recycling task 1/3").expect("stop event");
    assert!(first < stop, "events oldest first: {described}");

    // Resume goes on; cancel ends it, restoring capacity.
    assert_eq!(
        cli.ok(&["resume", "web-rotate"]),
        "recyclerequest/web-rotate resumed\n"
    );
    cli.until("web-rotate", "going on", |s| stopped(s) >= 2)
        .await;
    assert_eq!(
        cli.ok(&["cancel", "web-rotate"]),
        "recyclerequest/web-rotate cancelled\n"
    );
    let done = cli
        .until("web-rotate", "finished", |s| s["phase"] == "Cancelled")
        .await;
    assert!(
        done["status"]["message"]
            .as_str()
            .unwrap()
            .contains("cancelled after 2/3"),
        "{done:#}"
    );
    // `get -w` of a finished request prints it and returns.
    assert!(cli.ok(&["get", "web-rotate", "-w"]).contains("Cancelled"));
    assert!(
        cli.ok(&["cancel", "web-rotate"])
            .contains("unchanged (already Cancelled)")
    );

    // What `get -o yaml` prints, `apply` takes back unchanged.
    let yaml = dir.join("saved.yaml");
    std::fs::write(&yaml, cli.ok(&["get", "web-rotate", "-o", "yaml"])).unwrap();
    assert_eq!(
        cli.ok(&["apply", "-f", &yaml.display().to_string()]),
        "recyclerequest/web-rotate unchanged\n"
    );
    operator.sigterm();

    let facts = run_facts(&sim.timeline(), "prod", "web", since);
    assert_eq!(facts.stopped_by_stop_task.len(), 2, "{facts:?}");
    assert!(facts.replacements_stopped.is_empty(), "{facts:?}");
    assert!(facts.min_running >= 3, "{facts:?}");
    assert_eq!(facts.final_desired, 3, "{facts:?}");

    assert_eq!(
        cli.ok(&["delete", "web-rotate"]),
        "recyclerequest/web-rotate deleted\n"
    );
    let gone = cli.run(&["get", "web-rotate"]);
    assert_eq!(gone.code, 3, "{}", gone.stderr);
    assert!(gone.stderr.contains("recyclerequest/web-rotate not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn day_to_day_on_the_embedded_store() {
    let (sim, _c) = steady_service("prod", "web", 3, true).await;
    let dir = temp_dir("cli-embedded");
    let cli = Cli {
        store_args: vec![
            "--store".into(),
            dir.join("store.json").display().to_string(),
        ],
        env: aws_env(sim.url()),
    };
    day_to_day(&cli, &sim, &dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn day_to_day_on_dynamodb() {
    let (sim, _c) = steady_service("prod", "web", 3, true).await;
    let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    let mut env = aws_env(sim.url());
    env.push(("AWS_ENDPOINT_URL_DYNAMODB".into(), moto.url.clone()));
    let cli = Cli {
        store_args: vec!["--table".into(), "recycler".into()],
        env,
    };
    assert!(cli.ok(&["init"]).contains("table recycler is ready"));
    day_to_day(&cli, &sim, &temp_dir("cli-dynamo")).await;
}

#[test]
fn exit_codes_say_what_kind_of_failure_it_was() {
    let dir = temp_dir("cli-exit");
    let embedded = Cli {
        store_args: vec!["--store".into(), dir.join("s.json").display().to_string()],
        env: vec![],
    };
    assert_eq!(embedded.run(&["describe", "nothing"]).code, 3);
    assert_eq!(embedded.run(&["get", "--bogus-flag"]).code, 1);
    assert_eq!(embedded.run(&["apply", "-f", "/no/such/file.yaml"]).code, 1);
    let help = embedded.run(&["--help"]);
    assert_eq!(help.code, 0);
    assert!(
        help.stdout.contains("Exit codes: 0 done; 1 invalid input"),
        "{}",
        help.stdout
    );

    // A table nobody answers for: unreachable, exit 2, with the reason.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let unreachable = Cli {
        store_args: vec!["--table".into(), "recycler".into()],
        env: vec![
            (
                "AWS_ENDPOINT_URL_DYNAMODB".into(),
                format!("http://127.0.0.1:{port}"),
            ),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("AWS_MAX_ATTEMPTS".into(), "1".into()),
        ],
    };
    let r = unreachable.run(&["get"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("could not be reached"), "{}", r.stderr);
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_ecs-recycler"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("apply") && text.contains("sandbox"),
            "{shell}"
        );
    }
}

/// The README's first command, end to end: a summary with every invariant held.
#[test]
fn the_sandbox_recycles_a_demo_service_and_sums_it_up() {
    let out = Command::new(env!("CARGO_BIN_EXE_ecs-recycler"))
        .arg("sandbox")
        .output()
        .expect("run sandbox");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "Service demo/web: 5 tasks running and healthy",
        "recyclerequest/demo-recycle created",
        "Recycling task 5/5",
        "Outcome:          Succeeded",
        "Tasks recycled:   5 of 5 planned, in batches of 1; each stopped once, no replacement stopped [ok]",
        "Lowest running:   5 against desired 5 [ok]",
        "Desired count:    5 → 6 during the run → 5 after [ok]",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    assert_eq!(stdout.matches("+ replacement").count(), 5, "{stdout}");
    assert_eq!(stdout.matches("+ spare task").count(), 1, "{stdout}");
    assert!(!stdout.contains("VIOLATED"), "{stdout}");
}

/// A schedule through the same verbs: applied (with its next run), listed
/// once an operator has looked at it, paused (suspended) and described.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_applied_listed_paused_and_described() {
    let sim = start_sim().await;
    let dir = temp_dir("cli-schedules");
    let cli = Cli {
        store_args: vec![
            "--store".into(),
            dir.join("store.json").display().to_string(),
        ],
        env: aws_env(sim.url()),
    };
    let example = format!(
        "{}/manifests/schedule-window.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    for change in ["created", "unchanged"] {
        let line = cli.ok(&["apply", "-f", &example]);
        let prefix = format!("recycleschedule/web-sunday-night {change}; next run: ");
        assert!(line.starts_with(&prefix), "{line}");
        // 02:00 on a Sunday in New York (03:00 on the spring-forward night).
        assert!(
            line.contains(" 02:00 E") || line.contains(" 03:00 EDT"),
            "{line}"
        );
        assert!(line.ends_with(")\n") && line.contains(" (in "), "{line}");
    }
    let _operator = spawn_operator(&cli.store_args, &cli.env, "r1", &dir.join("operator.log"));
    let start = Instant::now();
    loop {
        let doc: Value =
            serde_json::from_str(&cli.ok(&["get", "schedules", "web-sunday-night", "-o", "json"]))
                .unwrap();
        if doc["status"]["nextScheduleTime"].is_string() {
            break;
        }
        assert!(start.elapsed() < WITHIN, "no next run: {doc:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let table = cli.ok(&["get", "schedules"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("web-sunday-night") && table.contains("0 2 * * SUN"),
        "{table}"
    );
    assert!(
        table.contains("America/New_York") && table.contains("in "),
        "{table}"
    );
    assert_eq!(
        cli.ok(&["pause", "schedule", "web-sunday-night"]),
        "recycleschedule/web-sunday-night suspended\n"
    );
    let described = cli.ok(&["describe", "schedule", "web-sunday-night"]);
    assert!(described.contains("suspend: true"), "{described}");
    assert!(
        described.contains("Next run:           none while suspended\n"),
        "{described}"
    );
    let refused = cli.run(&["cancel", "schedule", "web-sunday-night"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("a schedule is not cancelled"),
        "{}",
        refused.stderr
    );
}

/// The first slot after `t` of "30 * * * *" in Asia/Kolkata (UTC+05:30, no
/// daylight saving): the next whole hour in UTC, on Kolkata's clock.
fn next_half_past_in_kolkata(t: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{DurationRound, TimeDelta};
    let next = t.duration_trunc(TimeDelta::hours(1)).unwrap() + TimeDelta::hours(1);
    next.with_timezone(&chrono_tz::Asia::Kolkata)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

/// No operator at all: `apply`, `get schedules` and `describe` show when a
/// schedule runs next from its cron expression and time zone alone.
#[test]
fn a_schedule_shows_its_next_run_before_any_operator_has_seen_it() {
    let dir = temp_dir("cli-next-run");
    let cli = Cli {
        store_args: vec![
            "--store".into(),
            dir.join("store.json").display().to_string(),
        ],
        env: vec![],
    };
    let file = dir.join("hourly.yaml");
    std::fs::write(
        &file,
        "apiVersion: ecs-recycler/v1
kind: RecycleSchedule
metadata:
  name: hourly
spec:
  schedule: \"30 * * * *\"
  timeZone: Asia/Kolkata
  template:
    cluster: prod
    service: web
",
    )
    .unwrap();
    let file = file.display().to_string();
    // The hour may turn while a command runs: either side of it will do.
    let expect = |run: &dyn Fn() -> String| {
        let before = next_half_past_in_kolkata(chrono::Utc::now());
        let out = run();
        let after = next_half_past_in_kolkata(chrono::Utc::now());
        (out, [before, after])
    };
    let (dry, next) = expect(&|| cli.ok(&["apply", "-f", &file, "--dry-run"]));
    assert!(
        next.iter().any(|n| dry.starts_with(&format!(
            "recycleschedule/hourly created (dry run); next run: {n} (in "
        ))),
        "{dry} (expected {next:?})"
    );
    assert!(next[0].ends_with(":30 IST"), "{next:?}");
    let (applied, next) = expect(&|| cli.ok(&["apply", "-f", &file]));
    assert!(
        next.iter().any(|n| applied.starts_with(&format!(
            "recycleschedule/hourly created; next run: {n} (in "
        ))),
        "{applied} (expected {next:?})"
    );
    assert!(cli.record_of("schedule", "hourly")["status"].is_null());

    let table = cli.ok(&["get", "schedules"]);
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap()
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        row[..5],
        ["hourly", "30 * * * *", "Asia/Kolkata", "false", "-"],
        "{table}"
    );
    assert!(row[5].starts_with("in "), "NEXT RUN: {table}");

    let (described, next) = expect(&|| cli.ok(&["describe", "schedule", "hourly"]));
    assert!(
        next.iter()
            .any(|n| described.contains(&format!("Next run:           {n} (in "))),
        "{described} (expected {next:?})"
    );
    assert!(
        described.contains("not yet seen by an operator"),
        "{described}"
    );
}

/// `get -w` follows until told to stop: SIGTERM (as `timeout` sends) ends it at once, exit 0.
#[test]
fn get_watch_stops_on_sigterm() {
    let dir = temp_dir("cli-watch");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecs-recycler"))
        .args(["get", "-w", "--store"])
        .arg(dir.join("s.json"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        child.try_wait().unwrap().is_none(),
        "get -w keeps following"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "get -w ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(child.wait().unwrap().success());
}
