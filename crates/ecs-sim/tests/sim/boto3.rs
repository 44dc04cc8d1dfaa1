//! The simulator checked by a real client nobody here wrote: boto3 (from the
//! pinned moto[server] environment) runs its own `services_stable` and
//! `tasks_stopped` waiters against it.

use std::path::Path;

use test_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_waiters_succeed_against_the_simulator() {
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let sim = start_sim_with(Timings {
        task_start: 1.0,
        task_healthy: 0.5,
        task_stop: 0.5,
        scheduler: 0.1,
        jitter: 0.2,
    })
    .await;
    run_boto3_script(&python, "boto3_waiters.py", sim.url()).await;
}

/// Runs `tests/py/{script}` against the simulator at `url`; it must exit 0
/// and say "waiters and errors ok".
pub(crate) async fn run_boto3_script(python: &Path, script: &str, url: &str) {
    let out = tokio::process::Command::new(python)
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/py")
                .join(script),
        )
        .arg(url)
        .output()
        .await
        .expect("run python");
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("waiters and errors ok"));
}
