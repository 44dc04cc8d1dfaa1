//! The world one schedule runs in, made from its plan: the simulator with
//! the schedule's services, the store (an embedded store file, or a fresh
//! table on the campaign's moto), the gate alarm (on moto's CloudWatch), the
//! hook receiver, and the replicas — and the acts the campaign performs on
//! it: records created, verbs run, faults begun and healed ([`inject`]).

pub mod inject;
pub mod replicas;
pub mod sim;
mod world;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::Context;
use aws_sdk_cloudwatch::types::StateValue;
use ecs_recycler::store::any::AnyStore;
use ecs_recycler::store::dynamo::DynamoStore;
use ecs_recycler::store::embedded::EmbeddedStore;
use ecs_recycler::store::{Kind, Store};
use serde_json::json;
use test_support::lifecycle::{HookReceiver, Reply};

use crate::nemesis::HookMode;
use crate::plan::{HOOK_SECRET_ENV, Schedule, StoreKind};
use crate::watch::{Act, Watch};
use replicas::Replicas;
use sim::SimProcess;

const HOOK_SECRET: &str = "campaign-hook-secret";

/// What every schedule of one campaign shares.
#[derive(Clone)]
pub struct Shared {
    /// The product's binary (`ecs-recycler`).
    pub binary: PathBuf,
    /// moto's server: DynamoDB on odd seeds, CloudWatch always.
    pub moto_url: String,
    /// Where each schedule gets a directory of its own.
    pub root: PathBuf,
    /// Keep every run's directory, not only those with findings.
    pub keep: bool,
}

/// The AWS clients the campaign itself uses (signed `local`, so the
/// timeline tells its calls from the replicas').
pub struct Clients {
    pub ecs: aws_sdk_ecs::Client,
    pub aas: aws_sdk_applicationautoscaling::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

pub struct Bed {
    pub schedule: Schedule,
    pub dir: PathBuf,
    pub sim: SimProcess,
    pub clients: Clients,
    pub store: Arc<AnyStore>,
    /// `--store PATH` or `--table NAME`, for the verbs.
    store_args: Vec<String>,
    binary: PathBuf,
    moto_url: String,
    pub replicas: Replicas,
    pub alarm: String,
    hook_mode: Arc<AtomicU8>,
    pub hooks: HookReceiver,
    pub watch: Watch,
    /// The replica each lasting fault hit, until it is healed.
    hit: std::collections::HashMap<String, usize>,
    /// The queue the simulator sends ECS's events to and the replicas read.
    pub events_queue: Option<String>,
    /// The tasks each protection fault protected, until it is cleared.
    protected: std::collections::HashMap<String, Vec<String>>,
}

impl Bed {
    pub async fn setup(schedule: Schedule, shared: &Shared) -> anyhow::Result<Self> {
        let dir = shared
            .root
            .join(format!("seed-{}-{}", schedule.seed, std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let sim = SimProcess::start(&shared.binary, schedule.seed, &dir.join("sim.log")).await?;
        sim.control(
            "/_sim/config",
            json!({"targetTimeScale": 20, "ecsTimeScale": crate::shape::ECS_TIME_SCALE}),
        )
        .await?;
        let sim_config = test_support::sdk_config(&sim.url, true).await;
        let moto_config = test_support::sdk_config(&shared.moto_url, true).await;
        let clients = Clients {
            ecs: aws_sdk_ecs::Client::new(&sim_config),
            aas: aws_sdk_applicationautoscaling::Client::new(&sim_config),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(&sim_config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&moto_config),
        };
        world::make_services(&sim, &clients, &schedule.services).await?;
        let (store, store_args) = open_store(&schedule, &dir, &moto_config).await?;
        let alarm = format!("gate-{}-{}", schedule.seed, std::process::id());
        test_support::alarm::put_gate_alarm(&clients.cloudwatch, &alarm)
            .await
            .context("put the gate alarm")?;
        let hook_mode = Arc::new(AtomicU8::new(0));
        let hooks = hook_receiver(hook_mode.clone()).await;
        let moto_for_replicas = (schedule.store == StoreKind::Dynamo).then_some(&*shared.moto_url);
        let mut env = replica_env(&sim.url, &shared.moto_url);
        let events_queue = match schedule.events {
            true => Some(events_queue(&sim, &moto_config, schedule.seed).await?),
            false => None,
        };
        if let Some(queue) = &events_queue {
            env.push(("AWS_ENDPOINT_URL_SQS".into(), shared.moto_url.clone()));
            env.push(("ECS_RECYCLER_EVENTS_QUEUE".into(), queue.clone()));
        }
        let replicas = Replicas::new(
            &shared.binary,
            &dir,
            store_args.clone(),
            env,
            schedule.replicas,
            moto_for_replicas,
        )
        .await?;
        Ok(Self {
            schedule,
            dir,
            sim,
            clients,
            store: Arc::new(store),
            store_args,
            binary: shared.binary.clone(),
            moto_url: shared.moto_url.clone(),
            replicas,
            alarm,
            hook_mode,
            hooks,
            watch: Watch::default(),
            hit: std::collections::HashMap::new(),
            protected: std::collections::HashMap::new(),
            events_queue,
        })
    }

    /// Creates request `i` of the schedule, as any client may (the store's
    /// create: a conditional PutItem on DynamoDB). The returned task owns
    /// what it needs, so the run need not wait on it: a replica stopped
    /// while it holds the embedded store's lock holds every store call.
    pub fn create_request(&self, i: usize) -> impl Future<Output = anyhow::Result<()>> + use<> {
        let r = &self.schedule.requests[i];
        let spec = self.schedule.spec(r, &self.alarm, &self.hooks.url);
        let name = r.name.clone();
        let (store, watch, clock) = (self.store.clone(), self.watch.clone(), self.sim.clock);
        async move {
            store
                .create(Kind::RecycleRequest, &name, spec, chrono::Utc::now())
                .await
                .with_context(|| format!("create request {name}"))?;
            watch.note(&clock, Act::Created(name));
            Ok(())
        }
    }

    /// Runs `ecs-recycler VERB NAME` on the store, as a person would; a
    /// record changed under it (exit 4) is tried again, twice. A task of
    /// its own, as [`Bed::create_request`].
    pub fn verb(&self, verb: &'static str, name: &str) -> impl Future<Output = ()> + use<> {
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .args([verb, name])
            .args(&self.store_args)
            .envs(store_env(&self.moto_url))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let (watch, clock, name) = (self.watch.clone(), self.sim.clock, name.to_string());
        async move {
            let mut worked = false;
            for _ in 0..3 {
                match command.status().await.map(|s| s.code()) {
                    Ok(Some(0)) => {
                        worked = true;
                        break;
                    }
                    Ok(Some(4)) => continue,
                    _ => break,
                }
            }
            watch.note(&clock, Act::Verb(format!("{verb} {name}"), worked));
        }
    }

    pub fn set_hook_mode(&self, mode: Option<HookMode>) {
        let code = match mode {
            None => 0,
            Some(HookMode::Fail) => 1,
            Some(HookMode::Hang) => 2,
            Some(HookMode::InProgress) => 3,
            Some(HookMode::Error) => 4,
        };
        self.hook_mode.store(code, Ordering::SeqCst);
    }

    pub async fn set_alarm(&self, state: StateValue) -> anyhow::Result<()> {
        self.clients
            .cloudwatch
            .set_alarm_state()
            .alarm_name(&self.alarm)
            .state_value(state)
            .state_reason("set by the fault campaign")
            .send()
            .await?;
        Ok(())
    }

    /// Where the embedded store's file is, if the run is on it.
    pub fn store_file(&self) -> Option<&Path> {
        match self.store_args.as_slice() {
            [flag, path] if flag == "--store" => Some(Path::new(path)),
            _ => None,
        }
    }
}

/// The environment of a process that reads the records (the verbs).
fn store_env(moto: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL_DYNAMODB", moto),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "campaign"),
        ("AWS_SECRET_ACCESS_KEY", "campaign"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The replicas' environment: the simulator for ECS, Application Auto
/// Scaling and ELB, moto for CloudWatch, the hook's secret. Each replica
/// adds its own key and, on DynamoDB, its proxy.
fn replica_env(sim: &str, moto: &str) -> Vec<(String, String)> {
    let mut env = store_env(moto);
    env.retain(|(k, _)| k != "AWS_ACCESS_KEY_ID" && k != "AWS_ENDPOINT_URL_DYNAMODB");
    for key in [
        "AWS_ENDPOINT_URL_ECS",
        "AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING",
        "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2",
    ] {
        env.push((key.into(), sim.into()));
    }
    env.push(("AWS_ENDPOINT_URL_CLOUDWATCH".into(), moto.into()));
    env.push((HOOK_SECRET_ENV.into(), HOOK_SECRET.into()));
    env.push(("RUST_LOG".into(), "info".into()));
    env
}

async fn open_store(
    schedule: &Schedule,
    dir: &Path,
    moto: &aws_config::SdkConfig,
) -> anyhow::Result<(AnyStore, Vec<String>)> {
    match schedule.store {
        StoreKind::Embedded => {
            let path = dir.join("store.json");
            let store = EmbeddedStore::open(&path)?;
            Ok((
                AnyStore::Embedded(store),
                vec!["--store".into(), path.display().to_string()],
            ))
        }
        StoreKind::Dynamo => {
            let table = format!("campaign-{}-{}", schedule.seed, std::process::id());
            let store = DynamoStore::new(moto, &table);
            store.create_table().await.context("create the table")?;
            Ok((AnyStore::Dynamo(store), vec!["--table".into(), table]))
        }
    }
}

/// A queue of this schedule's own on moto, and the simulator sending ECS's
/// events to it as an EventBridge rule would; answers its URL.
async fn events_queue(
    sim: &SimProcess,
    moto: &aws_config::SdkConfig,
    seed: u64,
) -> anyhow::Result<String> {
    let sqs = aws_sdk_sqs::Client::new(moto);
    let name = format!("events-{seed}-{}", std::process::id());
    let created = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .with_context(|| format!("create the queue {name} on moto"))?;
    let url = created.queue_url().context("the queue's URL")?.to_string();
    sim.control("/_sim/config", json!({"events": {"sqsQueueUrl": url}}))
        .await?;
    Ok(url)
}

/// The hook receiver: `succeeded` unless a fault sets another mode.
async fn hook_receiver(mode: Arc<AtomicU8>) -> HookReceiver {
    HookReceiver::start(HOOK_SECRET, move |_, _| match mode.load(Ordering::SeqCst) {
        1 => Reply::Verdict(json!({"status": "failed", "message": "campaign: hook fault"})),
        2 => Reply::Never,
        3 => Reply::Verdict(
            json!({"status": "inProgress", "retryAfter": "1s", "message": "campaign"}),
        ),
        4 => Reply::Status(500),
        _ => Reply::Verdict(json!({"status": "succeeded", "message": "campaign"})),
    })
    .await
}
