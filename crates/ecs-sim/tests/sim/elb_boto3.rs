//! The simulator's Elastic Load Balancing checked by boto3 (from the pinned
//! moto[server] environment): its Query protocol parsed, its errors
//! recognised, and boto3's own `target_in_service` and
//! `target_deregistered` waiters satisfied.

use serde_json::json;
use test_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_elb_waiters_and_errors_succeed_against_the_simulator() {
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let sim = start_sim().await;
    sim.configure(json!({"targetTimeScale": 20.0})).unwrap();
    super::boto3::run_boto3_script(&python, "boto3_elb.py", sim.url()).await;
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
