//! The `ecs-recycler` command line: one binary, one subcommand per job.
//! Errors reach the user here, as a sentence, through `anyhow`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

#[cfg(feature = "simulator")]
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand};
use ecs_recycler::ApiShare;
use ecs_recycler::cli::records::{self, ApplyArgs, DeleteArgs, Flag, GetArgs, NamedArgs};
use ecs_recycler::cli::{AwsArgs, CliError, EXIT_CODES_HELP, Look, StoreArgs, exit};
use ecs_recycler::duration;
use ecs_recycler::operator::{EventsConfig, Operator, OperatorConfig, healthcheck};
#[cfg(feature = "simulator")]
use ecs_recycler::sandbox::{self, SandboxOptions};
use ecs_recycler::store::Store;
use ecs_recycler::store::dynamo::DynamoStore;
use ecs_recycler::store::embedded::EmbeddedStore;
use ecs_recycler::{NotifyArgs, NotifyConfig};
#[cfg(feature = "simulator")]
use ecs_sim::{RealisticThrottle, SimOptions, Simulator, Timings};

#[derive(Parser)]
#[command(
    name = "ecs-recycler",
    version,
    about = "Recycle the tasks of Amazon ECS services safely, a few at a time, resuming after any crash.",
    long_about = LONG_ABOUT,
    after_help = EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What the tool does, before the line that says where to start.
macro_rules! about {
    () => {
        "Recycle (restart) the tasks of Amazon ECS services safely: a few at a time, waiting for \
health and stability between replacements, keeping spare capacity, cooperating with Application \
Auto Scaling, and resuming exactly where it stopped after any crash.\n\n"
    };
}

#[cfg(feature = "simulator")]
const LONG_ABOUT: &str = concat!(
    about!(),
    "New here? `ecs-recycler sandbox` shows a recycle end to end in under a minute, with no AWS account.\n\
Then: write a RecycleRequest (see manifests/), `apply -f` it, and `get -w` to follow it."
);
/// A build without the simulator (the operator's image) has no sandbox to send newcomers to.
#[cfg(not(feature = "simulator"))]
const LONG_ABOUT: &str = concat!(
    about!(),
    "Write a RecycleRequest (see manifests/), `apply -f` it, and `get -w` to follow it."
);

#[derive(Subcommand)]
enum Command {
    /// Watch a demo service recycled end to end: simulator, store and operator in one process.
    #[cfg(feature = "simulator")]
    Sandbox(SandboxArgs),
    /// Create or update records from manifests (YAML or JSON), like kubectl apply.
    Apply(ApplyArgs),
    /// List requests or schedules, or show one; -w follows them as they change.
    Get(GetArgs),
    /// Show one record in full: spec, plan, status and its events, oldest first.
    Describe(NamedArgs),
    /// Hold a request between steps (a schedule: create no new requests).
    Pause(NamedArgs),
    /// Let a paused request or schedule go on.
    Resume(NamedArgs),
    /// End a request: capacity is restored and it ends Cancelled.
    Cancel(NamedArgs),
    /// Delete a record (a request in the middle of its run only with --force).
    Delete(DeleteArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Create the DynamoDB table, its active index and TTL (for development; use infra/ in production).
    Init(InitArgs),
    /// Serve read-only pages of the requests, schedules and policies, each run drawn, until Ctrl-C.
    Dashboard(DashboardArgs),
    /// Run the operator: reconcile RecycleRequest records and make the requests of RecycleSchedules, until SIGTERM.
    Operator(Box<OperatorArgs>),
    /// Run the ECS and Application Auto Scaling simulator (for tests, demos and the AWS CLI).
    #[cfg(feature = "simulator")]
    Sim(SimArgs),
    /// Exit 0 when the operator's health endpoint answers 2xx, 1 otherwise (for container health checks).
    Healthcheck(HealthcheckArgs),
}

#[derive(Args)]
struct HealthcheckArgs {
    /// The endpoint to ask.
    #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
    url: String,
}

#[cfg(feature = "simulator")]
#[derive(Args)]
struct SandboxArgs {
    /// Tasks of the demo service.
    #[arg(long, default_value_t = 5)]
    tasks: u32,
    /// Tasks stopped at once.
    #[arg(long, default_value_t = 1)]
    batch_size: u32,
    /// Pause after each batch.
    #[arg(long, default_value = "2s", value_parser = duration::parse)]
    wait: Duration,
    /// Keep the store in this file afterwards (to try get and describe on it).
    #[arg(long, value_name = "PATH")]
    store: Option<PathBuf>,
}

#[derive(Args)]
struct DashboardArgs {
    /// Where to serve the pages; loopback by default (they show names, messages and plans,
    /// and anyone who can reach them can read them). Port 0 picks a free port.
    #[arg(
        long,
        default_value = "127.0.0.1:8090",
        env = "ECS_RECYCLER_DASHBOARD_LISTEN"
    )]
    listen: SocketAddr,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
struct CompletionsArgs {
    shell: clap_complete::Shell,
}

#[derive(Args)]
struct InitArgs {
    /// The table to create; an existing one is left as it is.
    #[arg(long, value_name = "NAME", env = "ECS_RECYCLER_TABLE")]
    table: String,
    #[command(flatten)]
    aws: AwsArgs,
}

#[derive(Args)]
struct OperatorArgs {
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

#[cfg(feature = "simulator")]
#[derive(Args)]
struct SimArgs {
    /// Address to listen on; port 0 picks a free port. The URL is printed as the first line.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Region named in the ARNs the simulator makes.
    #[arg(long, default_value = "us-east-1", env = "AWS_REGION")]
    region: String,
    /// Default time from PROVISIONING to RUNNING (e.g. 30s, 250ms).
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
    task_start: Duration,
    /// Default time from RUNNING to HEALTHY, for tasks with a container health check.
    #[arg(long, default_value = "3s", value_parser = duration::parse)]
    task_healthy: Duration,
    /// Default time from a stop request to STOPPED.
    #[arg(long, default_value = "2s", value_parser = duration::parse)]
    task_stop: Duration,
    /// How often the service scheduler looks at each service.
    #[arg(long, default_value = "1s", value_parser = duration::parse)]
    scheduler_interval: Duration,
    /// Each task's start and healthy times vary by up to this fraction (0 to 0.9).
    #[arg(long, default_value_t = 0.2)]
    jitter: f64,
    /// Seed for every random choice, so runs can be repeated.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Throttle as ECS does: its published buckets, one per category, account (access key) and
    /// Region.
    #[arg(long)]
    realistic_throttling: bool,
    /// With --realistic-throttling, the buckets refill this many times faster (for task timings
    /// scaled down as much).
    #[arg(long, default_value_t = 1.0, requires = "realistic_throttling")]
    throttle_time_scale: f64,
}

/// Logs as text on a terminal, as JSON lines otherwise (for CloudWatch and
/// the like). Only the operator logs to stdout: the simulator's stdout
/// carries its URL, and the verbs' stdout carries their answer.
fn init_logging(to_stderr: bool, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match (
        to_stderr,
        std::io::stderr().is_terminal(),
        std::io::stdout().is_terminal(),
    ) {
        (true, true, _) => builder.with_writer(std::io::stderr).init(),
        (true, false, _) => builder.with_writer(std::io::stderr).json().init(),
        (false, _, true) => builder.init(),
        (false, _, false) => builder.json().init(),
    }
}

fn main() -> ExitCode {
    ecs_recycler::operator::bound_allocator_arenas();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(main_async()),
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn main_async() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and version are answers; any other parse error is invalid input.
            return if e.use_stderr() {
                ExitCode::from(exit::INVALID)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // Only the long-running commands take over SIGTERM and SIGINT (to
    // finish a step and release leases); a verb keeps the default, so
    // `timeout` or Ctrl-C stops it at once.
    let long_running = match cli.command {
        Command::Operator(_) | Command::Dashboard(_) => true,
        #[cfg(feature = "simulator")]
        Command::Sim(_) => true,
        _ => false,
    };
    let shutdown = if long_running {
        match Shutdown::listen() {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::from(exit::UNREACHABLE);
            }
        }
    } else {
        None
    };
    match &cli.command {
        Command::Operator(_) => init_logging(false, "info"),
        #[cfg(feature = "simulator")]
        Command::Sim(_) => init_logging(true, "info"),
        // A verb's stdout is its answer (the sandbox's, its story of the run):
        // logs go to stderr, warnings only, the in-process operator's too.
        _ => init_logging(true, "warn"),
    }
    match run(cli.command, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(
                e.downcast_ref::<CliError>()
                    .map_or(exit::INVALID, CliError::exit_code),
            )
        }
    }
}

async fn run(command: Command, shutdown: Option<Shutdown>) -> anyhow::Result<()> {
    // Not locked for the whole run: the operator logs to stdout from other threads.
    let mut out = std::io::stdout();
    match command {
        #[cfg(feature = "simulator")]
        Command::Sandbox(args) => {
            let options = SandboxOptions {
                tasks: args.tasks,
                batch_size: args.batch_size,
                wait: args.wait,
                store: args.store,
                ..SandboxOptions::default()
            };
            let tty = std::io::stdout().is_terminal();
            let summary = sandbox::run(options, tty, &mut out).await?;
            if !summary.holds() {
                return Err(CliError::Unsuccessful(format!(
                    "the recycle did not succeed with every invariant held ({:?})",
                    summary.phase
                ))
                .into());
            }
            Ok(())
        }
        Command::Apply(args) => {
            let store = args.store.open().await?;
            let mut stdin = std::io::stdin().lock();
            let mut err = std::io::stderr().lock();
            records::apply(&store, &args, &mut stdin, &mut out, &mut err).await?;
            Ok(())
        }
        Command::Get(args) => {
            let store = args.store.open().await?;
            let redraw = args.watch && std::io::stdout().is_terminal();
            records::get(&store, &args, redraw, Look::stdout(), &mut out).await?;
            Ok(())
        }
        Command::Describe(args) => {
            let store = args.store.open().await?;
            Ok(records::describe(&store, &args, Look::stdout(), &mut out).await?)
        }
        Command::Pause(args) => Ok(flag(&args, Flag::Pause, &mut out).await?),
        Command::Resume(args) => Ok(flag(&args, Flag::Resume, &mut out).await?),
        Command::Cancel(args) => Ok(flag(&args, Flag::Cancel, &mut out).await?),
        Command::Delete(args) => {
            let store = args.named.store.open().await?;
            Ok(records::delete(&store, &args, &mut out).await?)
        }
        Command::Completions(args) => {
            clap_complete::generate(args.shell, &mut Cli::command(), "ecs-recycler", &mut out);
            Ok(())
        }
        Command::Init(args) => {
            let sdk = args.aws.load().await?;
            DynamoStore::new(&sdk, &args.table)
                .create_table()
                .await
                .map_err(|e| {
                    CliError::Unreachable(format!("cannot create the table {}: {e}", args.table))
                })?;
            println!("table {} is ready", args.table);
            Ok(())
        }
        Command::Operator(args) => {
            run_operator(*args, shutdown.context("signals are not listened for")?).await
        }
        #[cfg(feature = "simulator")]
        Command::Sim(args) => {
            run_sim(args, shutdown.context("signals are not listened for")?).await
        }
        Command::Dashboard(args) => {
            let shutdown = shutdown.context("signals are not listened for")?;
            let store = Arc::new(args.store.open().await?);
            if !args.listen.ip().is_loopback() {
                eprintln!(
                    "warning: serving on {}: anyone who can reach it can read every record's names, messages and plans",
                    args.listen
                );
            }
            ecs_recycler::dashboard::serve(
                store,
                args.listen,
                |addr| println!("Dashboard at http://{addr}/ (read-only; Ctrl-C stops)"),
                shutdown.wait(),
            )
            .await?;
            Ok(())
        }
        Command::Healthcheck(args) => {
            healthcheck(&args.url, Duration::from_secs(3))
                .await
                .map_err(|why| CliError::Invalid(format!("unhealthy: {why}")))?;
            Ok(())
        }
    }
}

async fn flag(args: &NamedArgs, flag: Flag, out: &mut dyn std::io::Write) -> Result<(), CliError> {
    records::set_flag(&args.store.open().await?, args, flag, out).await
}

async fn run_operator(args: OperatorArgs, shutdown: Shutdown) -> anyhow::Result<()> {
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

#[cfg(feature = "simulator")]
async fn run_sim(args: SimArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    if !(0.0..=0.9).contains(&args.jitter) {
        anyhow::bail!("--jitter {} is outside 0.0..=0.9", args.jitter);
    }
    if args.scheduler_interval.is_zero() {
        anyhow::bail!("--scheduler-interval must be greater than zero");
    }
    let options = SimOptions {
        listen: args.listen,
        region: args.region,
        timings: Timings {
            task_start: args.task_start.as_secs_f64(),
            task_healthy: args.task_healthy.as_secs_f64(),
            task_stop: args.task_stop.as_secs_f64(),
            scheduler: args.scheduler_interval.as_secs_f64(),
            jitter: args.jitter,
        },
        seed: args.seed,
        realistic_throttling: args.realistic_throttling.then_some(RealisticThrottle {
            time_scale: args.throttle_time_scale,
        }),
        ..SimOptions::default()
    };
    if let Some(r) = &options.realistic_throttling
        && let Some(p) = r.problems().first()
    {
        anyhow::bail!("--throttle-time-scale: {p}");
    }
    let sim = Simulator::start(options)
        .await
        .context("the simulator could not start")?;
    println!("{}", sim.url());
    tracing::info!(url = sim.url(), "simulator listening");
    shutdown.wait().await;
    tracing::info!("simulator stopping");
    sim.shutdown().await;
    Ok(())
}

/// SIGTERM and Ctrl-C, listened for from the moment it is made: a signal
/// that arrives before anyone waits is not lost, nor does it kill the process.
struct Shutdown {
    term: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Shutdown {
    fn listen() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}
