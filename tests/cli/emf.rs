//! `operator --metrics-format emf` as CloudWatch Logs would read it: its
//! stdout carries whole EMF lines at the interval, between the operator's
//! own log lines and never inside one, a last flush on SIGTERM, and no
//! /metrics. (The documents themselves are checked against the
//! specification in `src/emf/tests.rs`.)

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[test]
fn the_operator_writes_its_metrics_to_its_log_in_emf() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let store = dir.join(format!("emf-{}.json", std::process::id()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecs-recycler"))
        .args([
            "operator",
            "--metrics-format",
            "emf",
            "--metrics-interval",
            "300ms",
        ])
        .args([
            "--metrics-namespace",
            "Recycler/Test",
            "--replica-id",
            "emf-test",
        ])
        .args(["--http-listen", &format!("127.0.0.1:{port}"), "--store"])
        .arg(&store)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the operator");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let until = Instant::now() + Duration::from_secs(20);
    while lines
        .iter()
        .filter(|l: &&String| l.contains("\"_aws\""))
        .count()
        < 30
    {
        assert!(
            Instant::now() < until,
            "no EMF lines within 20s: {lines:#?}"
        );
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(line);
        }
    }
    let status = |path: &str| {
        let response = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            use std::io::{Read, Write};
            write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        });
        response
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(status("/metrics"), "404", "emf alone: no /metrics");
    assert_eq!(status("/healthz"), "200");
    crate::support::terminate(&child);
    assert!(child.wait().unwrap().success());
    lines.extend(rx.try_iter());

    let mut stamps = std::collections::BTreeSet::new();
    for line in &lines {
        // Every line is one JSON document: a log line or an EMF document.
        let doc: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let Some(aws) = doc.get("_aws") else {
            assert!(doc.get("level").is_some(), "a log line: {line}");
            continue;
        };
        let directive = &aws["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Recycler/Test");
        assert_eq!(doc["replica"], "emf-test");
        for m in directive["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            assert!(name.starts_with("ecs_recycler_"), "{name}");
            assert!(doc[name].is_number() || doc[name].is_array(), "{line}");
        }
        stamps.insert(aws["Timestamp"].as_i64().unwrap());
    }
    assert!(
        stamps.len() >= 3,
        "flushes at the interval and at the end: {stamps:?}"
    );
    let listings: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("\"ecs_recycler_store_listings_total\""))
        .collect();
    assert!(!listings.is_empty(), "the store's listings are counted");
    let shutdown = lines
        .iter()
        .position(|l| l.contains("shutting down"))
        .expect("the operator says it shuts down");
    assert!(
        lines[shutdown..].iter().any(|l| l.contains("\"_aws\"")),
        "a last flush after the shutdown began"
    );
    let _ = std::fs::remove_file(&store);
    let _ = std::fs::remove_file(store.with_extension("json.lock"));
}
