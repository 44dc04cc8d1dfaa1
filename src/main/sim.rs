//! The `sim` verb: the ECS simulator on its own, its URL the first line
//! of stdout, until SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ecs_recycler::duration;
use ecs_sim::{RealisticThrottle, SimOptions, Simulator, Timings};

use super::Shutdown;

#[derive(Args)]
pub(crate) struct SimArgs {
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

pub(crate) async fn run_sim(args: SimArgs, shutdown: Shutdown) -> anyhow::Result<()> {
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
