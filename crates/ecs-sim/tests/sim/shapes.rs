//! The answers of the operations added for production's ECS checked
//! against botocore's ECS service model (in the pinned moto environment):
//! every member named by the model with the model's type and enum values,
//! every required one there, and errors the model lists for the operation.
//! boto3 sends each call, so requests are checked against the model too.

use std::path::Path;

use serde_json::{Value, json};
use test_support::*;

use super::capacity::{cluster_on_group, register_instance};

/// Runs `tests/py/botocore_shapes.py` over `calls`; it must exit 0.
pub(crate) async fn check_shapes(python: &Path, url: &str, calls: &Value) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/botocore_shapes.py"))
        .arg(url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(calls.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.expect("python ran");
    assert!(
        out.status.success(),
        "botocore shapes:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ecs(operation: &str, params: Value) -> Value {
    json!({"service": "ecs", "operation": operation, "params": params})
}

fn ecs_error(operation: &str, params: Value, code: &str) -> Value {
    json!({"service": "ecs", "operation": operation, "params": params, "expectError": code})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_operations_answer_in_botocores_shapes() {
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let sim = start_sim().await;
    let c = clients(&sim).await;
    cluster_on_group(&sim, &c, 1, 2, "90s").await;
    let by_hand = register_instance(&c.ecs, "prod", 2048, 4096).await;
    super::capacity::create_web(&c, 2).await;
    wait_steady(&c.ecs, "prod", "web", std::time::Duration::from_secs(20)).await;
    let tasks = running_task_arns(&c.ecs, "prod", "web").await;
    let group = sim.auto_scaling_group("asg-web");
    let calls = json!([
        ecs(
            "RegisterContainerInstance",
            json!({"cluster": "prod", "totalResources": [
            {"name": "CPU", "type": "INTEGER", "integerValue": 1024},
            {"name": "MEMORY", "type": "INTEGER", "integerValue": 1024}]})
        ),
        ecs("ListContainerInstances", json!({"cluster": "prod"})),
        ecs(
            "ListContainerInstances",
            json!({"cluster": "prod", "status": "ACTIVE", "maxResults": 1})
        ),
        ecs(
            "DescribeContainerInstances",
            json!({"cluster": "prod", "containerInstances": [by_hand, "nope"]})
        ),
        ecs(
            "DeregisterContainerInstance",
            json!({"cluster": "prod", "containerInstance": by_hand})
        ),
        ecs_error(
            "DescribeContainerInstances",
            json!({"cluster": "ghost", "containerInstances": ["x"]}),
            "ClusterNotFoundException"
        ),
        ecs(
            "CreateCapacityProvider",
            json!({"name": "cp-spare", "autoScalingGroupProvider": {
            "autoScalingGroupArn": sim.set_auto_scaling_group(json!({"name": "asg-spare", "min": 0, "max": 1,
                "desired": 0, "cpu": 1024, "memory": 1024})).unwrap()["autoScalingGroupArn"],
            "managedScaling": {"status": "ENABLED", "targetCapacity": 90, "minimumScalingStepSize": 1,
                "maximumScalingStepSize": 2, "instanceWarmupPeriod": 60},
            "managedTerminationProtection": "ENABLED"}})
        ),
        ecs_error(
            "CreateCapacityProvider",
            json!({"name": "cp-again", "autoScalingGroupProvider": {
            "autoScalingGroupArn": group["autoScalingGroupArn"]}}),
            "ClientException"
        ),
        ecs("DescribeCapacityProviders", json!({})),
        ecs(
            "DescribeCapacityProviders",
            json!({"capacityProviders": ["cp-web", "missing"]})
        ),
        ecs(
            "PutClusterCapacityProviders",
            json!({"cluster": "prod", "capacityProviders": ["cp-web", "FARGATE"],
            "defaultCapacityProviderStrategy": [{"capacityProvider": "cp-web", "weight": 1, "base": 1}]})
        ),
        ecs_error(
            "PutClusterCapacityProviders",
            json!({"cluster": "prod", "capacityProviders": ["FARGATE"],
            "defaultCapacityProviderStrategy": []}),
            "ResourceInUseException"
        ),
        ecs(
            "UpdateTaskProtection",
            json!({"cluster": "prod", "tasks": [tasks[0], "nope"],
            "protectionEnabled": true, "expiresInMinutes": 30})
        ),
        ecs(
            "UpdateTaskProtection",
            json!({"cluster": "prod", "tasks": [tasks[1]], "protectionEnabled": false})
        ),
        ecs_error(
            "UpdateTaskProtection",
            json!({"cluster": "prod", "tasks": vec![tasks[0].clone(); 11],
            "protectionEnabled": true}),
            "InvalidParameterException"
        ),
        ecs(
            "GetTaskProtection",
            json!({"cluster": "prod", "tasks": [tasks[0], tasks[1]]})
        ),
        ecs(
            "DescribeServices",
            json!({"cluster": "prod", "services": ["web"]})
        ),
        ecs("DescribeTasks", json!({"cluster": "prod", "tasks": tasks})),
        ecs("DescribeClusters", json!({"clusters": ["prod"]})),
    ]);
    check_shapes(&python, sim.url(), &calls).await;
}
