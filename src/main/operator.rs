//! The `operator` verb: its flags, and the operator started with them on
//! the store they name until SIGTERM, its metrics written as asked.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ecs_recycler::cli::StoreArgs;
use ecs_recycler::operator::{EventsConfig, Operator, OperatorConfig};
use ecs_recycler::store::Store;
use ecs_recycler::store::dynamo::DynamoStore;
use ecs_recycler::store::embedded::EmbeddedStore;
use ecs_recycler::{ApiShare, NotifyArgs, NotifyConfig, duration};

use super::Shutdown;

#[derive(Args)]
pub(crate) struct OperatorArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Records reconciled at once.
    #[arg(long, default_value_t = 16, env = "ECS_RECYCLER_CONCURRENCY")]
    concurrency: usize,
    /// How often to look for work and at services in transition.
    #[arg(long, default_value = "2s", value_parser = duration::parse, env = "ECS_RECYCLER_POLL_INTERVAL")]
    poll_interval: Duration,
    /// How soon a paused or queued request is looked at again (a change to it wakes it at once).
    #[arg(long, default_value = "30s", value_parser = duration::parse, env = "ECS_RECYCLER_IDLE_POLL_INTERVAL")]
    idle_poll_interval: Duration,
    /// How often each RecyclePolicy looks at its fleet (applying or editing a policy looks at once).
    #[arg(long, default_value = "5m", value_parser = duration::parse, env = "ECS_RECYCLER_POLICY_INTERVAL")]
    policy_interval: Duration,
    /// The fraction of each of AWS's throttling buckets (per category, account and Region) the
    /// operator may spend, all replicas together; the rest is left to the account's other callers.
    #[arg(long, default_value_t = 0.5, env = "ECS_RECYCLER_API_SHARE")]
    api_share: f64,
    /// A category's own share instead of --api-share, as CATEGORY=SHARE (service-modify=0.2);
    /// repeatable, or comma-separated.
    #[arg(long, value_name = "CATEGORY=SHARE", value_delimiter = ',', value_parser = ecs_recycler::parse_category_share, env = "ECS_RECYCLER_API_CATEGORY_SHARE")]
    api_category_share: Vec<(String, f64)>,
    /// The account's own bucket for a category where AWS raised it, as CATEGORY=BURST/REFILL
    /// (service-modify=100/10 for 100 at once and 10 a second); repeatable, or comma-separated.
    #[arg(long, value_name = "CATEGORY=BURST/REFILL", value_delimiter = ',', value_parser = ecs_recycler::parse_quota, env = "ECS_RECYCLER_API_QUOTA")]
    api_quota: Vec<(String, ecs_recycler::Quota)>,
    /// Where /healthz, /readyz and /metrics are served; port 0 picks a free port (logged).
    #[arg(long, default_value = "0.0.0.0:8080", env = "ECS_RECYCLER_HTTP_LISTEN")]
    http_listen: SocketAddr,
    /// How long a replica's claim on a record lasts without renewal; another replica takes over after it.
    /// The replica acts only in the first nine tenths of it, counted from when it asked for it;
    /// it must be at least --aws-attempt-timeout plus that tenth.
    #[arg(long, default_value = "15s", value_parser = duration::parse, env = "ECS_RECYCLER_LEASE_DURATION")]
    lease_duration: Duration,
    /// How long finished records are kept.
    #[arg(long, default_value = "7d", value_parser = duration::parse, env = "ECS_RECYCLER_RETENTION")]
    retention: Duration,
    /// This replica's name in leases (default: the ECS task id, else host name and process id).
    #[arg(long, env = "ECS_RECYCLER_REPLICA_ID")]
    replica_id: Option<String>,
    /// The URL of the SQS queue an EventBridge rule sends ECS's events to (infra/operator.yaml
    /// makes one): a step is looked at when they show it done, polling stays the safety net.
    #[arg(long, value_name = "URL", env = "ECS_RECYCLER_EVENTS_QUEUE")]
    events_queue: Option<String>,
    /// With --events-queue, the longest a step waiting on ECS goes without a look while events
    /// flow (a lost event is looked for sooner, when the step should have been done).
    #[arg(long, default_value = "2m", value_parser = duration::parse, env = "ECS_RECYCLER_SAFETY_POLL_INTERVAL")]
    safety_poll_interval: Duration,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    notify: NotifyArgs,
}

/// Where the operator's metrics go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum MetricsFormat {
    /// Served at /metrics for a scraper.
    Prometheus,
    /// Written to stdout in CloudWatch's Embedded Metric Format (CloudWatch Logs makes them
    /// metrics: no collector needed); /metrics is not served.
    Emf,
    /// Both.
    Both,
}

#[derive(Args)]
struct MetricsArgs {
    /// Where the operator's metrics go: prometheus (/metrics), emf (CloudWatch, through the log)
    /// or both.
    #[arg(
        long,
        value_enum,
        default_value = "prometheus",
        env = "ECS_RECYCLER_METRICS_FORMAT"
    )]
    metrics_format: MetricsFormat,
    /// The CloudWatch namespace of the EMF metrics.
    #[arg(long, default_value = ecs_recycler::emf::DEFAULT_NAMESPACE, env = "ECS_RECYCLER_METRICS_NAMESPACE")]
    metrics_namespace: String,
    /// How often the EMF metrics are written (CloudWatch keeps them at one-minute resolution).
    #[arg(long, default_value = "60s", value_parser = duration::parse, env = "ECS_RECYCLER_METRICS_INTERVAL")]
    metrics_interval: Duration,
}

pub(crate) async fn run_operator(args: OperatorArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    let config = OperatorConfig {
        replica_id: match args.replica_id {
            Some(id) => id,
            None => ecs_recycler::operator::default_id().await,
        },
        concurrency: args.concurrency,
        poll_interval: args.poll_interval,
        idle_poll_interval: args.idle_poll_interval,
        policy_interval: args.policy_interval,
        lease_duration: args.lease_duration,
        retention: args.retention,
        api_share: ApiShare {
            share: args.api_share,
            per_category: args.api_category_share.into_iter().collect(),
            quotas: args.api_quota.into_iter().collect(),
        },
        aws_timeouts: args.store.aws.timeouts(),
    };
    let http = args.http_listen;
    let metrics = args.metrics;
    let mut problems = config.problems();
    if metrics.metrics_interval.is_zero() {
        problems.push("--metrics-interval must be longer than 0s".into());
    }
    if metrics.metrics_namespace.trim().is_empty() || metrics.metrics_namespace.len() > 255 {
        problems.push("--metrics-namespace must be 1 to 255 characters".into());
    }
    let events = args.events_queue.map(|queue_url| EventsConfig {
        queue_url,
        safety_poll: args.safety_poll_interval,
    });
    if let Some(events) = &events {
        problems.extend(events.problems(config.poll_interval));
    }
    let notify = args.notify.config().unwrap_or_else(|p| {
        problems.extend(p);
        NotifyConfig::default()
    });
    if !problems.is_empty() {
        anyhow::bail!("the operator cannot start: {}", problems.join("; "));
    }
    let sdk = ecs_recycler::sdk::load(config.aws_timeouts).await;
    let run = Running {
        config,
        notify,
        http,
        metrics,
        events,
        shutdown,
    };
    match (args.store.table, args.store.store) {
        (_, Some(path)) => {
            let store = EmbeddedStore::open(&path)
                .with_context(|| format!("cannot open the store at {}", path.display()))?;
            operate(Arc::new(store), sdk, run).await
        }
        (Some(table), None) => operate(Arc::new(DynamoStore::new(&sdk, table)), sdk, run).await,
        (None, None) => anyhow::bail!(
            "say where records live: --table NAME (or ECS_RECYCLER_TABLE) or --store PATH"
        ),
    }
}

/// What the operator runs with, whatever its store.
struct Running {
    config: OperatorConfig,
    notify: NotifyConfig,
    http: SocketAddr,
    metrics: MetricsArgs,
    events: Option<EventsConfig>,
    shutdown: Shutdown,
}

async fn operate<S: Store>(
    store: Arc<S>,
    sdk: aws_config::SdkConfig,
    run: Running,
) -> anyhow::Result<()> {
    let Running {
        config,
        notify,
        http,
        metrics,
        events,
        shutdown,
    } = run;
    let replica = config.replica_id.clone();
    let mut builder = Operator::builder(store, sdk, config)
        .notify(notify)
        .serve(http)
        .prometheus(metrics.metrics_format != MetricsFormat::Emf);
    if let Some(events) = events {
        builder = builder.events(events);
    }
    let operator = builder.start().await?;
    // EMF lines until the operator has stopped, then a last flush.
    let (stopped, emf_stop) = tokio::sync::oneshot::channel::<()>();
    let emf = (metrics.metrics_format != MetricsFormat::Prometheus).then(|| {
        let mut properties = serde_json::Map::new();
        properties.insert("replica".into(), serde_json::Value::String(replica));
        tokio::spawn(ecs_recycler::emf::write_every(
            operator.metrics().clone(),
            ecs_recycler::emf::Writer::new(&metrics.metrics_namespace, properties),
            metrics.metrics_interval,
            async move {
                let _ = emf_stop.await;
            },
        ))
    });
    shutdown.wait().await;
    tracing::info!("shutting down: finishing the step in flight, then releasing leases");
    operator.stop().await;
    let _ = stopped.send(());
    if let Some(emf) = emf {
        let _ = emf.await;
    }
    Ok(())
}
