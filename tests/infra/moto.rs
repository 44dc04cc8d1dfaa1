//! infra/ on moto's CloudFormation: both stacks deploy; the table they make is
//! the one the store expects; the operator recycles a service (on the
//! simulator) through that table, woken by ECS's events through the queue
//! the stack makes; the task role allows every AWS call of the run and
//! grants exactly the calls the code makes; without events, and with an
//! existing queue, the stack makes and grants what that needs and no more;
//! and the parameters refuse bad values at deploy time, as CloudFormation
//! checks them.

use crate::support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    BillingMode, IndexStatus, KeyType, ProjectionType, TimeToLiveStatus,
};
use chrono::Utc;
use ecs_recycler::store::dynamo::DynamoStore;
use ecs_recycler::store::{Kind, Store};
use serde_json::{Value, json};
use support::iam::{self, Request};
use support::moto::Moto;
use support::operator::*;
use support::*;

const WITHIN: Duration = Duration::from_secs(90);
const REGION: &str = "us-east-1";
/// The account moto and the simulator both put in their ARNs.
const ACCOUNT: &str = "123456789012";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:recycler";
const ROLE: &str = "arn:aws:iam::210987654321:role/recycler";
const HOOK_SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:smoke-hook-AbCdEf";
/// An events queue made outside the stack (the EventsQueue parameter names it).
const THEIR_QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:their-ecs-events";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a script of tests/py with the pinned Python and reads its JSON answer.
fn python_json(script_name: &str, args: &[&str]) -> Value {
    let out = Command::new(python())
        .arg(script(script_name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{script_name} could not run: {e}"));
    assert!(
        out.status.success(),
        "{script_name} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script_name} printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stacks_deploy_on_moto_and_the_operator_recycles_a_service_through_their_table() {
    let (sim, c) = steady_service("prod", "web", 3, true).await;
    register_target(&c, Some(2), Some(6), None).await;
    let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();

    let params = json!({
        "table": {"TableName": "recycler-cfn"},
        "operator": {
            "TableName": "recycler-cfn",
            "ImageRepository": "ecs-recycler",
            "ImageTag": "0.1.0",
            "TargetClusters": "prod",
            "TargetServices": "prod/web",
            "NotificationTopicArns": TOPIC,
            "AssumableRoleArns": ROLE,
            "HookSecretArns": HOOK_SECRET,
            "EventsQueue": "create",
        },
        "variants": [{"EventsQueue": "none"}, {"EventsQueue": THEIR_QUEUE}],
    });
    let (url, infra) = (moto.url.clone(), root().join("infra"));
    let deployed = tokio::task::spawn_blocking(move || {
        python_json(
            "cfn_stacks.py",
            &[&url, infra.to_str().unwrap(), &params.to_string()],
        )
    })
    .await
    .unwrap();

    // Both stacks complete, every resource made (the secret's policy is
    // conditioned away: no secret was given), and moto skipped nothing but
    // the events queues' policy, which moto 5.2.5's CloudFormation does not
    // know (checked as declared, in the_events_reach_the_operator_alone).
    for stack in ["table", "operator"] {
        assert_eq!(deployed[stack]["status"], "CREATE_COMPLETE", "{stack}");
        let made: BTreeSet<&str> = object_keys(&deployed[stack]["resources"]);
        let mut expected: BTreeSet<&str> = object_keys(&deployed[stack]["declared"]);
        expected.remove("ReadNotificationSecretPolicy");
        expected.remove("EventsQueuePolicy");
        assert_eq!(made, expected, "{stack}: resources made");
        for (id, r) in deployed[stack]["resources"].as_object().unwrap() {
            assert_eq!(r["status"], "CREATE_COMPLETE", "{stack}.{id}");
        }
    }
    let skipped: Vec<&str> = deployed["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        skipped
            .iter()
            .all(|w| w.contains("AWS::SQS::QueuePolicy") && w.contains("not supported by moto")),
        "moto skipped nothing else: {skipped:?}"
    );

    let table = deployed["table"]["outputs"]["TableName"]
        .as_str()
        .expect("table stack outputs TableName")
        .to_string();
    assert_eq!(table, "recycler-cfn");
    assert_eq!(deployed["operator"]["outputs"]["TableName"], table.as_str());
    assert!(
        deployed["operator"]["outputs"]["ServiceArn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:ecs:us-east-1:123456789012:service/ops/"),
        "{}",
        deployed["operator"]["outputs"]
    );

    let config = sdk_config(&moto.url, true).await;
    the_table_is_the_one_the_store_expects(&config, &moto.url, &table, &deployed).await;
    the_task_definition_runs_the_operator(&deployed, &table);
    let policies = task_role_policies(&deployed);
    the_task_role_grants_exactly_what_the_code_calls(&policies);
    let (queue_url, queue_arn) = the_events_reach_the_operator_alone(&deployed);
    the_variants_make_and_grant_what_they_need(&deployed);

    // The operator, on the stack's table and the simulator.
    let store = DynamoStore::new(&config, table.clone());
    let planned = running_task_arns(&c.ecs, "prod", "web").await;
    let since = sim.now();
    store
        .create(
            Kind::RecycleRequest,
            "rotate",
            json!({"cluster": "prod", "service": "web", "wait": "100ms"}),
            Utc::now(),
        )
        .await
        .unwrap();
    // A policy over the target cluster looks at its fleet (its tasks are
    // young: it makes nothing), so its reads are checked against the role too.
    store
        .create(
            Kind::RecyclePolicy,
            "max-age",
            json!({"services": {"cluster": "prod", "names": ["web"]}, "maxTaskAge": "7d"}),
            Utc::now(),
        )
        .await
        .unwrap();
    // ECS's events go to the stack's queue, as its rule would send them
    // (the simulator sends to the queue URL's host: moto's, here).
    let queue_name = queue_url.rsplit('/').next().unwrap();
    let on_moto = format!("{}/{ACCOUNT}/{queue_name}", moto.url);
    sim.configure(json!({"events": {"sqsQueueUrl": on_moto}}))
        .unwrap();
    let mut env = aws_env(sim.url());
    env.push(("AWS_ENDPOINT_URL_DYNAMODB".into(), moto.url.clone()));
    env.push(("AWS_ENDPOINT_URL_SQS".into(), moto.url.clone()));
    env.push(("ECS_RECYCLER_EVENTS_QUEUE".into(), queue_url.clone()));
    let log = temp_dir("infra").join("operator.log");
    let mut op = spawn_operator(&["--table".into(), table.clone()], &env, "r1", &log);
    let status = wait_phase(&store, "rotate", &FINISHED, WITHIN, &log).await;
    let metrics = MetricsPage::of(&log).await;
    assert!(op.sigterm().success(), "operator exits 0 on SIGTERM");
    assert_eq!(status["phase"], "Succeeded", "{status:#}");
    every_queue_call_is_allowed(&policies, &metrics, &queue_arn);

    let timeline = sim.timeline();
    let facts = run_facts(&timeline, "prod", "web", since);
    let mut stopped = facts.stopped_by_stop_task.clone();
    stopped.sort();
    let mut expected = planned;
    expected.sort();
    assert_eq!(stopped, expected, "each original task stopped exactly once");
    assert!(facts.replacements_stopped.is_empty(), "{facts:?}");
    assert!(facts.min_running >= 3, "never below 3 running: {facts:?}");
    assert_eq!(facts.max_desired, 4, "{facts:?}");
    assert_eq!(facts.final_desired, 3, "{facts:?}");

    every_call_of_the_run_is_allowed(&policies, &timeline, since);
    nothing_beyond_the_targets_is_allowed(&policies, &table, &queue_arn);
    drop(moto);
}

fn object_keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

/// The key schema, the active index and the billing mode as made, live; TTL,
/// PITR and SSE as declared (moto 5.2.5 ignores TimeToLiveSpecification and
/// PointInTimeRecoverySpecification); and `ecs-recycler init`, whose checks
/// refuse any table the store cannot use, accepts the table.
async fn the_table_is_the_one_the_store_expects(
    config: &aws_config::SdkConfig,
    moto_url: &str,
    table: &str,
    deployed: &Value,
) {
    let ddb = aws_sdk_dynamodb::Client::new(config);
    let described = ddb.describe_table().table_name(table).send().await.unwrap();
    let t = described.table().unwrap();
    let keys = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
        schema
            .iter()
            .map(|k| (k.attribute_name().to_string(), k.key_type().clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(t.key_schema()), [("pk".to_string(), KeyType::Hash)]);
    assert_eq!(
        t.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    let index = t
        .global_secondary_indexes()
        .iter()
        .find(|i| i.index_name() == Some("active-index"))
        .expect("the active-index");
    assert_eq!(
        keys(index.key_schema()),
        [
            ("active".to_string(), KeyType::Hash),
            ("createdAt".to_string(), KeyType::Range)
        ]
    );
    assert_eq!(
        index.projection().and_then(|p| p.projection_type()),
        Some(&ProjectionType::All)
    );
    assert_eq!(index.index_status(), Some(&IndexStatus::Active));
    assert_eq!(t.global_secondary_indexes().len(), 1);

    let declared = &deployed["templates"]["table"]["Resources"]["Table"];
    assert_eq!(declared["DeletionPolicy"], "Retain");
    let props = &declared["Properties"];
    assert_eq!(
        props["TimeToLiveSpecification"],
        json!({"AttributeName": "expiresAt", "Enabled": true}),
        "TTL on the attribute the store writes"
    );
    assert_eq!(
        props["PointInTimeRecoverySpecification"],
        json!({"PointInTimeRecoveryEnabled": true})
    );
    assert_eq!(props["SSESpecification"]["SSEEnabled"], true);

    let ttl = ddb
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    match ttl.time_to_live_status() {
        Some(TimeToLiveStatus::Enabled) => {
            assert_eq!(ttl.attribute_name(), Some("expiresAt"))
        }
        // moto 5.2.5's CloudFormation drops TimeToLiveSpecification; the
        // template's declaration is checked above instead.
        status => {
            assert_eq!(status, Some(&TimeToLiveStatus::Disabled));
            eprintln!("moto left TTL {status:?}: checked as declared in infra/table.yaml");
        }
    }

    let init = Command::new(env!("CARGO_BIN_EXE_ecs-recycler"))
        .args(["init", "--table", table])
        .envs(aws_env("http://127.0.0.1:9"))
        .env("AWS_ENDPOINT_URL_DYNAMODB", moto_url)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "init refuses the stack's table: {}",
        String::from_utf8_lossy(&init.stderr)
    );
}

/// What moto's ECS kept of the task definition and service (it drops
/// networkMode, cpu, requiresCompatibilities, runtimePlatform, the roles,
/// launchType, networkConfiguration and deploymentConfiguration; cfn-lint
/// checks those against CloudFormation's schema instead).
fn the_task_definition_runs_the_operator(deployed: &Value, table: &str) {
    let containers = deployed["taskDefinition"]["containerDefinitions"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(
        c["image"],
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/ecs-recycler:0.1.0"
    );
    assert_eq!(c["command"], json!(["operator"]));
    assert_eq!(
        c["healthCheck"]["command"],
        json!(["CMD", "/usr/local/bin/ecs-recycler", "healthcheck"])
    );
    assert_eq!(c["stopTimeout"], 120);
    assert_eq!(c["readonlyRootFilesystem"], true);
    assert_eq!(c["user"], "65532:65532");
    assert_eq!(c["logConfiguration"]["logDriver"], "awslogs");
    assert_eq!(
        c["logConfiguration"]["options"]["awslogs-group"],
        "/ecs/ecs-recycler"
    );
    let env: std::collections::BTreeMap<&str, &str> = c["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap()))
        .collect();
    assert_eq!(env["ECS_RECYCLER_TABLE"], table);
    assert_eq!(env["ECS_RECYCLER_HTTP_LISTEN"], "0.0.0.0:8080");
    assert_eq!(env["ECS_RECYCLER_LEASE_DURATION"], "15s");
    // Every ECS_RECYCLER_ variable is one the README or docs/ documents, and
    // the replica id is left to the task metadata endpoint.
    let mut readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for doc in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = doc.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            readme.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    for name in env.keys().filter(|k| k.starts_with("ECS_RECYCLER_")) {
        assert!(
            readme.contains(name),
            "{name} is not in the README or docs/"
        );
    }
    assert!(!env.contains_key("ECS_RECYCLER_REPLICA_ID"));
    assert_eq!(deployed["service"]["desiredCount"], 2);
}

fn task_role_policies(deployed: &Value) -> Vec<Value> {
    let trust = &deployed["taskRole"]["AssumeRolePolicyDocument"];
    assert_eq!(
        trust["Statement"][0]["Principal"]["Service"],
        "ecs-tasks.amazonaws.com"
    );
    assert_eq!(
        trust["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"],
        ACCOUNT
    );
    let policies = deployed["taskRolePolicies"].as_object().unwrap();
    let names: BTreeSet<&str> = policies.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "assume-cross-account-roles",
            "publish-notifications",
            "read-and-write-records",
            "read-ecs-events",
            "read-hook-secrets",
            "recycle-target-services"
        ]),
        "no SMTP secret given, so no policy for one; the hook secret's and the events queue's are there"
    );
    policies.values().cloned().collect()
}

/// Each `.<client>.<operation>()` call in the operator's AWS code (actions,
/// observation, the store and the notifier), as an IAM
/// action; the STS call is made by the SDK's AssumeRoleProvider.
fn actions_in_the_code() -> BTreeSet<String> {
    let mut actions = BTreeSet::new();
    // Every source file, so that a call in a new file is found too: the
    // clients' field names say the service; the store's `client` only in
    // the store's files.
    let everywhere: &[(&str, &str)] = &[
        ("ecs", "ecs"),
        ("aas", "application-autoscaling"),
        ("cloudwatch", "cloudwatch"),
        ("elb", "elasticloadbalancing"),
        ("sns", "sns"),
        ("secrets", "secretsmanager"),
        ("sqs", "sqs"),
    ];
    let mut files = Vec::new();
    let mut dirs = vec![root().join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    for path in files {
        let in_store = path.components().any(|c| c.as_os_str() == "dynamo");
        let store: &[(&str, &str)] = if in_store {
            &[("client", "dynamodb")]
        } else {
            &[]
        };
        let text = std::fs::read_to_string(&path).unwrap();
        let flat: String = text.split_whitespace().collect();
        for (field, prefix) in everywhere.iter().chain(store) {
            let needle = format!(".{field}.");
            for (at, _) in flat.match_indices(&needle) {
                let rest = &flat[at + needle.len()..];
                let method: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !method.is_empty() && rest[method.len()..].starts_with("()") {
                    actions.insert(iam_action(&format!("{prefix}:{}", pascal(&method))));
                }
            }
        }
        if text.contains("AssumeRoleProvider") {
            actions.insert("sts:AssumeRole".into());
        }
    }
    actions
}

/// The IAM action that authorizes an API call: SQS's batched calls have
/// none of their own.
fn iam_action(call: &str) -> String {
    match call {
        "sqs:DeleteMessageBatch" => "sqs:DeleteMessage".into(),
        other => other.into(),
    }
}

fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn the_task_role_grants_exactly_what_the_code_calls(policies: &[Value]) {
    let code = actions_in_the_code();
    // The table's own management, for `ecs-recycler init`: CloudFormation
    // makes the table, so the operator is not allowed to.
    let init_only = [
        "dynamodb:CreateTable",
        "dynamodb:DescribeTable",
        "dynamodb:DescribeTimeToLive",
        "dynamodb:UpdateTimeToLive",
    ];
    for a in init_only {
        assert!(
            code.contains(a),
            "{a} is no longer called; update this list"
        );
    }
    let expected: BTreeSet<String> = code
        .iter()
        .filter(|a| !init_only.contains(&a.as_str()))
        // The stack is made without an SMTP secret (its statement is
        // conditioned away) but with a hook secret, which the hooks read.
        .cloned()
        .collect();
    assert!(
        code.contains("secretsmanager:GetSecretValue") && code.contains("sns:Publish"),
        "the notifier's calls are found: {code:?}"
    );
    let refs: Vec<&Value> = policies.iter().collect();
    let granted: BTreeSet<String> = iam::actions(&refs).into_iter().collect();
    assert_eq!(
        granted, expected,
        "the task role grants exactly the actions the code calls"
    );
    assert!(
        code.contains("ecs:StopTask")
            && code.contains("dynamodb:Query")
            && code.contains("cloudwatch:DescribeAlarms")
            && code.contains("sqs:ReceiveMessage")
            && code.contains("sqs:DeleteMessage"),
        "the scan of the code found the calls: {code:?}"
    );
}

fn cluster_arn(cluster: &str) -> String {
    if cluster.starts_with("arn:") {
        cluster.to_string()
    } else {
        format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}")
    }
}

fn service_arn(cluster: &str, service: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/{service}")
}

/// The IAM requests one simulator call makes: its action, resource and the
/// context keys IAM sees (region, cluster, Application Auto Scaling keys).
fn requests_of(op: &str, p: &Value) -> Vec<Request> {
    let s = |k: &str| p[k].as_str().unwrap_or_default().to_string();
    let on_cluster = |r: Request| {
        r.with("aws:RequestedRegion", REGION)
            .with("ecs:cluster", &cluster_arn(&s("cluster")))
    };
    match op {
        "DescribeServices" => p["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|svc| {
                on_cluster(Request::new(
                    "ecs:DescribeServices",
                    &service_arn(&s("cluster"), svc.as_str().unwrap()),
                ))
            })
            .collect(),
        "UpdateService" => vec![on_cluster(Request::new(
            "ecs:UpdateService",
            &service_arn(&s("cluster"), &s("service")),
        ))],
        "ListTasks" => vec![on_cluster(Request::new(
            "ecs:ListTasks",
            &format!(
                "arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/{}/*",
                s("cluster")
            ),
        ))],
        "ListServices" => vec![on_cluster(Request::new("ecs:ListServices", "*"))],
        "DescribeTasks" => p["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| on_cluster(Request::new("ecs:DescribeTasks", t.as_str().unwrap())))
            .collect(),
        "StopTask" => vec![on_cluster(Request::new("ecs:StopTask", &s("task")))],
        "GetTaskProtection" => p["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| on_cluster(Request::new("ecs:GetTaskProtection", t.as_str().unwrap())))
            .collect(),
        "ListContainerInstances" => vec![on_cluster(Request::new(
            "ecs:ListContainerInstances",
            &cluster_arn(&s("cluster")),
        ))],
        "DescribeContainerInstances" => p["containerInstances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                on_cluster(Request::new(
                    "ecs:DescribeContainerInstances",
                    c.as_str().unwrap(),
                ))
            })
            .collect(),
        "DescribeCapacityProviders" => vec![
            Request::new("ecs:DescribeCapacityProviders", "*").with("aws:RequestedRegion", REGION),
        ],
        "DescribeTaskDefinition" => vec![
            Request::new("ecs:DescribeTaskDefinition", &s("taskDefinition"))
                .with("aws:RequestedRegion", REGION),
        ],
        "DescribeTargetHealth" | "DescribeTargetGroupAttributes" => vec![
            Request::new(&format!("elasticloadbalancing:{op}"), "*")
                .with("aws:RequestedRegion", REGION),
        ],
        "DescribeScalableTargets" => vec![
            Request::new("application-autoscaling:DescribeScalableTargets", "*")
                .with("aws:RequestedRegion", REGION),
        ],
        "RegisterScalableTarget" => vec![
            Request::new(
                "application-autoscaling:RegisterScalableTarget",
                &format!(
                    "arn:aws:application-autoscaling:{REGION}:{ACCOUNT}:scalable-target/0123456789abcdef"
                ),
            )
            .with("aws:RequestedRegion", REGION)
            .with(
                "application-autoscaling:service-namespace",
                &s("ServiceNamespace"),
            )
            .with(
                "application-autoscaling:scalable-dimension",
                &s("ScalableDimension"),
            ),
        ],
        other => panic!("the operator called {other}, which this test does not map to IAM"),
    }
}

/// Every ECS and Application Auto Scaling call the operator made in the run
/// is allowed by the task role, and every such action the role grants was
/// needed; so are the store's calls of the run (a Query of the index, and
/// conditional UpdateItems for leases and status).
fn every_call_of_the_run_is_allowed(policies: &[Value], timeline: &Value, since: f64) {
    let refs: Vec<&Value> = policies.iter().collect();
    let mut used = BTreeSet::new();
    for call in timeline["calls"].as_array().unwrap() {
        let op = call["op"].as_str().unwrap();
        if call["t"].as_f64().unwrap() < since || op.starts_with("_sim") {
            continue;
        }
        for request in requests_of(op, &call["params"]) {
            assert!(
                iam::allows(&refs, &request),
                "the task role refuses a call the operator made: {request:?}"
            );
            used.insert(request.action);
        }
    }
    let granted: BTreeSet<String> = iam::actions(&refs)
        .into_iter()
        .filter(|a| a.starts_with("ecs:") || a.starts_with("application-autoscaling:"))
        .collect();
    // The reads of EC2 capacity are made only where a task cannot be
    // placed, never on this Fargate service's run: checked on their own.
    let on_ec2_only = [
        "ecs:ListContainerInstances",
        "ecs:DescribeContainerInstances",
        "ecs:DescribeCapacityProviders",
    ];
    for action in on_ec2_only {
        assert!(!used.contains(action), "{action} read on a Fargate run");
    }
    used.extend(on_ec2_only.map(String::from));
    assert_eq!(used, granted, "every ECS and autoscaling grant was needed");
    assert!(
        granted.contains("ecs:GetTaskProtection"),
        "the protection of each batch is read right before it is stopped"
    );
    let in_prod = |r: Request| {
        r.with("aws:RequestedRegion", REGION)
            .with("ecs:cluster", &cluster_arn("prod"))
    };
    for request in [
        in_prod(Request::new(
            "ecs:ListContainerInstances",
            &cluster_arn("prod"),
        )),
        in_prod(Request::new(
            "ecs:DescribeContainerInstances",
            &format!("arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/prod/0123456789abcdef"),
        )),
        Request::new("ecs:DescribeCapacityProviders", "*").with("aws:RequestedRegion", REGION),
    ] {
        assert!(iam::allows(&refs, &request), "{request:?}");
    }

    let table = format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/recycler-cfn");
    for request in [
        Request::new("dynamodb:Query", &format!("{table}/index/active-index")),
        Request::new("dynamodb:UpdateItem", &table),
    ] {
        assert!(iam::allows(&refs, &request), "{request:?}");
    }
}

/// The same calls on anything not given as a target are refused.
fn nothing_beyond_the_targets_is_allowed(policies: &[Value], table: &str, queue: &str) {
    let refs: Vec<&Value> = policies.iter().collect();
    let in_region = |r: Request, cluster: &str| {
        r.with("aws:RequestedRegion", REGION)
            .with("ecs:cluster", &cluster_arn(cluster))
    };
    let other_table = format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/other");
    let this_table = format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}");
    let refused = [
        in_region(
            Request::new("ecs:UpdateService", &service_arn("prod", "api")),
            "prod",
        ),
        in_region(
            Request::new("ecs:DescribeServices", &service_arn("staging", "web")),
            "staging",
        ),
        in_region(
            Request::new(
                "ecs:StopTask",
                &format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task/staging/abc"),
            ),
            "staging",
        ),
        in_region(Request::new("ecs:ListTasks", "*"), "staging"),
        in_region(
            Request::new(
                "ecs:GetTaskProtection",
                &format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task/staging/abc"),
            ),
            "staging",
        ),
        in_region(
            Request::new("ecs:ListContainerInstances", &cluster_arn("staging")),
            "staging",
        ),
        in_region(
            Request::new(
                "ecs:DescribeContainerInstances",
                &format!("arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/staging/abc"),
            ),
            "staging",
        ),
        Request::new("ecs:DescribeCapacityProviders", "*").with("aws:RequestedRegion", "eu-west-1"),
        in_region(Request::new("ecs:UpdateTaskProtection", "*"), "prod"),
        in_region(Request::new("ecs:ListServices", "*"), "staging"),
        // The right service, another region.
        Request::new("ecs:UpdateService", &service_arn("prod", "web"))
            .with("aws:RequestedRegion", "eu-west-1")
            .with("ecs:cluster", &cluster_arn("prod")),
        in_region(
            Request::new("ecs:DeleteService", &service_arn("prod", "web")),
            "prod",
        ),
        in_region(Request::new("ecs:RunTask", "*"), "prod"),
        Request::new("application-autoscaling:RegisterScalableTarget", "*")
            .with("aws:RequestedRegion", REGION)
            .with("application-autoscaling:service-namespace", "dynamodb")
            .with(
                "application-autoscaling:scalable-dimension",
                "dynamodb:table:ReadCapacityUnits",
            ),
        Request::new("application-autoscaling:PutScalingPolicy", "*")
            .with("aws:RequestedRegion", REGION),
        Request::new("dynamodb:Query", &this_table),
        Request::new("dynamodb:GetItem", &other_table),
        Request::new("dynamodb:DeleteTable", &this_table),
        Request::new("dynamodb:UpdateTimeToLive", &this_table),
        Request::new(
            "sns:Publish",
            "arn:aws:sns:us-east-1:123456789012:someone-else",
        ),
        Request::new("sts:AssumeRole", "arn:aws:iam::210987654321:role/admin"),
        Request::new(
            "cloudwatch:DescribeAlarms",
            "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:web-5xx",
        ),
        Request::new("elasticloadbalancing:DescribeTargetHealth", "*")
            .with("aws:RequestedRegion", "eu-west-1"),
        Request::new("elasticloadbalancing:DeregisterTargets", "*")
            .with("aws:RequestedRegion", REGION),
        Request::new(
            "cloudwatch:PutMetricAlarm",
            &format!("arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:web-5xx"),
        ),
        Request::new(
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf",
        ),
        Request::new("sqs:ReceiveMessage", THEIR_QUEUE),
        Request::new("sqs:DeleteMessage", "*"),
        Request::new("sqs:SendMessage", queue),
        Request::new("sqs:PurgeQueue", queue),
        Request::new("sqs:ChangeMessageVisibility", queue),
        Request::new("sqs:DeleteQueue", queue),
    ];
    for request in refused {
        assert!(
            !iam::allows(&refs, &request),
            "the task role allows more than it should: {request:?}"
        );
    }
    for request in [
        Request::new("secretsmanager:GetSecretValue", HOOK_SECRET),
        Request::new("sns:Publish", TOPIC),
        Request::new("sts:AssumeRole", ROLE),
        Request::new(
            "cloudwatch:DescribeAlarms",
            &format!("arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:web-5xx"),
        ),
        Request::new("sqs:ReceiveMessage", queue),
        Request::new("sqs:DeleteMessage", queue),
    ] {
        assert!(iam::allows(&refs, &request), "{request:?}");
    }
}

/// ECS's events reach the operator, and nobody else writes to its queue:
/// the rule takes ECS's task state changes and service actions of this
/// account to the stack's queue, with a dead-letter queue and a bounded
/// retry; the queues' policy (as declared: moto's CloudFormation does not
/// make one) lets that rule alone send; the container is given the queue;
/// the role may read and delete there. Answers the queue's URL and ARN.
fn the_events_reach_the_operator_alone(deployed: &Value) -> (String, String) {
    let outputs = &deployed["operator"]["outputs"];
    let url = outputs["EventsQueueUrl"]
        .as_str()
        .expect("the stack outputs EventsQueueUrl")
        .to_string();
    let queues = &deployed["eventsQueues"];
    let arn = queues["EcsEventsQueue"]["QueueArn"]
        .as_str()
        .unwrap()
        .to_string();
    let dead = queues["EventsDeadLetterQueue"]["QueueArn"]
        .as_str()
        .unwrap();
    let redrive: Value =
        serde_json::from_str(queues["EcsEventsQueue"]["RedrivePolicy"].as_str().unwrap()).unwrap();
    assert_eq!(redrive["deadLetterTargetArn"], dead, "{redrive}");

    let rule = &deployed["eventsRule"];
    assert_eq!(rule["State"], "ENABLED");
    let pattern: Value = serde_json::from_str(rule["EventPattern"].as_str().unwrap()).unwrap();
    assert_eq!(
        pattern,
        json!({"source": ["aws.ecs"], "account": [ACCOUNT],
               "detail-type": ["ECS Task State Change", "ECS Service Action"]})
    );
    let targets = rule["Targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{targets:?}");
    assert_eq!(targets[0]["Arn"], arn.as_str());
    assert_eq!(targets[0]["DeadLetterConfig"]["Arn"], dead);
    assert!(
        targets[0].get("RoleArn").is_none(),
        "SQS takes a queue policy, not a role"
    );

    let declared = &deployed["templates"]["operator"]["Resources"];
    let policy = &declared["EventsQueuePolicy"]["Properties"];
    let statements = policy["PolicyDocument"]["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{policy}");
    let only = &statements[0];
    assert_eq!(
        (&only["Effect"], &only["Principal"], &only["Action"]),
        (
            &json!("Allow"),
            &json!({"Service": "events.amazonaws.com"}),
            &json!("sqs:SendMessage")
        )
    );
    let source = only["Condition"]["ArnEquals"]["aws:SourceArn"].to_string();
    assert!(
        source.contains("EcsEventsRule"),
        "only the stack's rule: {source}"
    );
    let queues_of_policy = policy["Queues"].to_string();
    assert!(
        queues_of_policy.contains("EcsEventsQueue")
            && queues_of_policy.contains("EventsDeadLetterQueue"),
        "{queues_of_policy}"
    );
    for queue in ["EcsEventsQueue", "EventsDeadLetterQueue"] {
        assert_eq!(
            declared[queue]["Properties"]["SqsManagedSseEnabled"], true,
            "{queue} encrypted at rest"
        );
    }

    let env = container_env(&deployed["taskDefinition"]);
    assert_eq!(env.get("ECS_RECYCLER_EVENTS_QUEUE"), Some(&url));
    assert_eq!(
        env.get("ECS_RECYCLER_SAFETY_POLL_INTERVAL")
            .map(String::as_str),
        Some("2m")
    );
    let grant = &deployed["taskRolePolicies"]["read-ecs-events"]["Statement"][0];
    assert_eq!(grant["Resource"], arn.as_str(), "{grant}");
    (url, arn)
}

/// The container's environment, by name.
fn container_env(task_definition: &Value) -> std::collections::BTreeMap<String, String> {
    task_definition["containerDefinitions"][0]["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// EventsQueue none: no rule, queue or grant, and no queue for the
/// operator. An existing queue's ARN: no rule or queue made, that queue
/// granted alone and given to the operator by its URL.
fn the_variants_make_and_grant_what_they_need(deployed: &Value) {
    let variants = deployed["variants"].as_array().unwrap();
    let events_resources = [
        "EcsEventsQueue",
        "EcsEventsRule",
        "EventsDeadLetterQueue",
        "EventsQueuePolicy",
    ];
    for (variant, reads) in variants.iter().zip([false, true]) {
        assert_eq!(variant["status"], "CREATE_COMPLETE", "{variant}");
        let made: Vec<&str> = variant["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        for r in events_resources {
            assert!(!made.contains(&r), "{r} made: {made:?}");
        }
        assert_eq!(made.contains(&"ReadEventsPolicy"), reads, "{made:?}");
        let grants = &variant["taskRolePolicies"];
        let env = &variant["environment"];
        if reads {
            let grant = &grants["read-ecs-events"]["Statement"][0];
            assert_eq!(grant["Resource"], THEIR_QUEUE, "{grant}");
            assert_eq!(
                grant["Action"],
                json!(["sqs:ReceiveMessage", "sqs:DeleteMessage"])
            );
            assert_eq!(
                env["ECS_RECYCLER_EVENTS_QUEUE"],
                "https://sqs.us-east-1.amazonaws.com/123456789012/their-ecs-events"
            );
        } else {
            assert!(grants.get("read-ecs-events").is_none(), "{grants}");
            assert!(env.get("ECS_RECYCLER_EVENTS_QUEUE").is_none(), "{env}");
            assert!(
                env.get("ECS_RECYCLER_SAFETY_POLL_INTERVAL").is_none(),
                "{env}"
            );
        }
    }
}

/// Every SQS call the operator made in the run (from its metrics: moto
/// keeps no timeline) is allowed by the task role on the events queue.
fn every_queue_call_is_allowed(policies: &[Value], metrics: &MetricsPage, queue: &str) {
    let refs: Vec<&Value> = policies.iter().collect();
    for action in ["sqs:ReceiveMessage", "sqs:DeleteMessage"] {
        let ok = metrics.sum(&format!(
            "ecs_recycler_aws_calls_total{{operation=\"{action}\",outcome=\"ok\"}}"
        ));
        assert!(ok > 0.0, "{action} was called: {}", metrics.body);
        assert!(iam::allows(&refs, &Request::new(action, queue)), "{action}");
    }
    let called: BTreeSet<&str> = metrics
        .body
        .lines()
        .filter(|l| l.starts_with("ecs_recycler_aws_calls_total{operation=\"sqs:"))
        .filter_map(|l| l.split('"').nth(1))
        .collect();
    assert_eq!(
        called,
        BTreeSet::from(["sqs:DeleteMessage", "sqs:ReceiveMessage"]),
        "no other SQS call"
    );
    assert!(
        metrics.sum("ecs_recycler_event_wakes_total") > 0.0,
        "events woke the run through the stack's queue: {}",
        metrics.body
    );
}

#[test]
fn parameters_refuse_bad_values_at_deploy_time_with_a_clear_message() {
    let good = json!({
        "ImageRepository": "ecs-recycler", "ImageTag": "0.1.0", "OperatorCluster": "ops",
        "Subnets": "subnet-0a1b2c3d", "SecurityGroups": "sg-0a1b2c3d",
        "TargetClusters": "prod,staging", "TargetServices": "prod/web,staging/*",
    });
    // (parameter, value, accepted)
    let cases: &[(&str, &str, bool)] = &[
        ("ImageTag", "", false),
        ("ImageTag", "0.1.0", true),
        ("ImageTag", "-rc1", false),
        ("ImageRepository", "", false),
        ("ImageRepository", "team/ecs-recycler", true),
        (
            "ImageRepository",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/ecs-recycler:0.1.0",
            false,
        ),
        ("OperatorCluster", "my ops", false),
        ("TargetClusters", "prod", true),
        ("TargetClusters", "prod cluster", false),
        ("TargetClusters", "prod,", false),
        ("TargetClusters", "", false),
        (
            "TargetClusters",
            "arn:aws:ecs:us-east-1:123456789012:cluster/prod",
            false,
        ),
        ("TargetServices", "prod/*", true),
        ("TargetServices", "web", false),
        ("TargetServices", "prod/web/x", false),
        ("DesiredCount", "2", true),
        ("DesiredCount", "11", false),
        ("DesiredCount", "two", false),
        ("TableName", "ab", false),
        ("AssignPublicIp", "yes", false),
        ("LogRetentionDays", "31", false),
        ("PollInterval", "2", false),
        ("PollInterval", "500ms", true),
        ("Retention", "7 days", false),
        ("NotificationTopicArns", TOPIC, true),
        ("NotificationTopicArns", "recycler", false),
        ("NotificationSecretArn", "my-secret", false),
        (
            "NotificationSecretArn",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:hook-AbCdEf",
            true,
        ),
        (
            "HookSecretArns",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:smoke-AbCdEf",
            true,
        ),
        ("HookSecretArns", "smoke", false),
        ("AssumableRoleArns", ROLE, true),
        ("AssumableRoleArns", "recycler", false),
        ("EventsQueue", "create", true),
        ("EventsQueue", "none", true),
        ("EventsQueue", THEIR_QUEUE, true),
        ("EventsQueue", "their-ecs-events", false),
        (
            "EventsQueue",
            "https://sqs.us-east-1.amazonaws.com/123456789012/their-ecs-events",
            false,
        ),
        ("SafetyPollInterval", "90s", true),
        ("SafetyPollInterval", "2", false),
    ];
    let mut docs = vec![json!({"template": "operator.yaml", "values": good})];
    for (name, value, _) in cases {
        let mut values = good.clone();
        values[*name] = json!(value);
        docs.push(json!({"template": "operator.yaml", "values": values}));
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("TargetClusters");
    docs.push(json!({"template": "operator.yaml", "values": missing}));
    docs.push(json!({"template": "table.yaml", "values": {}}));
    docs.push(json!({"template": "table.yaml", "values": {"TableName": "bad name!"}}));

    let infra = root().join("infra");
    let answer = python_json(
        "cfn_params.py",
        &[infra.to_str().unwrap(), &Value::Array(docs).to_string()],
    );
    let results = answer["results"].as_array().unwrap();
    assert_eq!(
        results[0]["accepted"], true,
        "the good values: {}",
        results[0]
    );
    for ((name, value, accepted), result) in cases.iter().zip(&results[1..]) {
        assert_eq!(result["accepted"], *accepted, "{name}={value:?}: {result}");
        if !accepted {
            let errors = result["errors"].as_array().unwrap();
            assert_eq!(errors.len(), 1, "{name}={value:?}: {result}");
            let message = errors[0].as_str().unwrap();
            assert!(message.contains(&format!("'{name}'")), "{message}");
            // A sentence saying what is allowed, not a bare regex.
            assert!(!message.contains("^"), "{message}");
        }
    }
    let n = cases.len() + 1;
    assert_eq!(
        results[n]["errors"],
        json!(["Parameters: [TargetClusters] must have values"])
    );
    assert_eq!(results[n + 1]["accepted"], true, "the table's defaults");
    assert_eq!(results[n + 2]["accepted"], false);
    assert_eq!(
        answer["undescribed"],
        json!([]),
        "every parameter has a Description, every constrained one a ConstraintDescription"
    );
}

#[test]
fn the_policy_evaluator_reads_policies_as_iam_does() {
    let policy = json!({"Statement": [
        {"Effect": "Allow", "Action": "ecs:StopTask", "Resource": "arn:*:ecs:*:*:task/prod/*",
         "Condition": {"ArnLike": {"ecs:cluster": "arn:*:ecs:*:*:cluster/prod"},
                       "StringEquals": {"aws:RequestedRegion": "us-east-1"}}},
        {"Effect": "Deny", "Action": "ecs:*", "Resource": "*",
         "Condition": {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}}
    ]});
    let stop = |task: &str, cluster: &str, region: &str| {
        Request::new("ecs:StopTask", task)
            .with("aws:RequestedRegion", region)
            .with("ecs:cluster", &cluster_arn(cluster))
    };
    let task = "arn:aws:ecs:us-east-1:123456789012:task/prod/abc";
    assert!(iam::allows(&[&policy], &stop(task, "prod", "us-east-1")));
    assert!(!iam::allows(&[&policy], &stop(task, "prod", "eu-west-1")));
    assert!(!iam::allows(
        &[&policy],
        &stop(task, "production", "us-east-1")
    ));
    assert!(!iam::allows(
        &[&policy],
        &stop(
            "arn:aws:ecs:us-east-1:123456789012:task/production/abc",
            "prod",
            "us-east-1"
        )
    ));
    // A condition key the request lacks fails the condition.
    assert!(!iam::allows(
        &[&policy],
        &Request::new("ecs:StopTask", task)
    ));
    assert!(!iam::allows(
        &[&policy],
        &Request::new("ecs:UpdateService", task).with("aws:RequestedRegion", "us-east-1")
    ));
}
