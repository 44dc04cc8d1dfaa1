//! The `ecs-recycler` command line: one binary, one subcommand per job.
//! Errors reach the user here, as a sentence, through `anyhow`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ecs_recycler::duration;
use ecs_recycler::sim::{SimOptions, Simulator, Timings};

#[derive(Parser)]
#[command(
    name = "ecs-recycler",
    version,
    about = "Recycle the tasks of Amazon ECS services safely, a few at a time, resuming after any crash."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the ECS and Application Auto Scaling simulator (for tests, demos and the AWS CLI).
    Sim(SimArgs),
}

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
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Sim(args) => run_sim(args).await,
    }
}

async fn run_sim(args: SimArgs) -> anyhow::Result<()> {
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
        ..SimOptions::default()
    };
    let sim = Simulator::start(options)
        .await
        .context("the simulator could not start")?;
    println!("{}", sim.url());
    tracing::info!(url = sim.url(), "simulator listening");
    shutdown_signal().await;
    tracing::info!("simulator stopping");
    sim.shutdown().await;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
