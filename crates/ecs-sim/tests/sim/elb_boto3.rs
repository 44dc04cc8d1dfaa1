//! The simulator's Elastic Load Balancing checked by boto3 (from the pinned
//! moto[server] environment): its Query protocol parsed, its errors
//! recognised, and boto3's own `target_in_service` and
//! `target_deregistered` waiters satisfied.

use std::path::Path;

use serde_json::json;
use test_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_elb_waiters_and_errors_succeed_against_the_simulator() {
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let sim = start_sim().await;
    sim.configure(json!({"targetTimeScale": 20.0})).unwrap();
    let out = tokio::process::Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/boto3_elb.py"))
        .arg(sim.url())
        .output()
        .await
        .expect("run python");
    assert!(
        out.status.success(),
        "boto3 script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("waiters and errors ok"));
    // The calls are in the timeline under their own names.
    let timeline = sim.timeline();
    let ops: Vec<&str> = timeline["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["op"].as_str().unwrap())
        .collect();
    assert!(
        ops.contains(&"DescribeTargetHealth") && ops.contains(&"CreateListener"),
        "{ops:?}"
    );
}
