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
use ecs_recycler::cli::records::{self, ApplyArgs, DeleteArgs, Flag, GetArgs, NamedArgs};
use ecs_recycler::cli::{AwsArgs, CliError, EXIT_CODES_HELP, Look, StoreArgs, exit};
#[cfg(feature = "simulator")]
use ecs_recycler::duration;
use ecs_recycler::operator::healthcheck;
#[cfg(feature = "simulator")]
use ecs_recycler::sandbox::{self, SandboxOptions};
use ecs_recycler::store::dynamo::DynamoStore;

#[path = "main/operator.rs"]
mod operator_verb;
#[cfg(feature = "simulator")]
#[path = "main/sim.rs"]
mod sim_verb;

use operator_verb::{OperatorArgs, run_operator};
#[cfg(feature = "simulator")]
use sim_verb::{SimArgs, run_sim};

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
