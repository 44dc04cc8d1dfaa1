//! `ecs-recycler bench`: the operator measured against the simulator.

#[derive(clap::Args, Debug)]
pub struct BenchArgs {}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Failed(String),
}

pub async fn run(_args: BenchArgs) -> Result<(), BenchError> {
    Ok(())
}
