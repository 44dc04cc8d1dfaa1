//! `delete`: removes a record, refusing a request in the middle of its run
//! unless forced.

use std::io::Write;

use clap::Args;

use super::{NamedArgs, kind_and_name, read};
use crate::cli::apply::resource;
use crate::cli::{CliError, say};
use crate::request::status::Phase;
use crate::store::{Kind, Store, StoreError};

#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub named: NamedArgs,
    /// Delete a request even in the middle of its run, leaving the service
    /// as it is at that moment (its surge, the autoscaler suspended).
    #[arg(long)]
    pub force: bool,
}

/// Deletes a record. A request in the middle of its run is refused without
/// `--force`: deleting it would leave its surge and the autoscaler's
/// suspension behind, which no exit path of a run may do.
pub async fn delete<S: Store>(
    store: &S,
    args: &DeleteArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let (kind, name) = kind_and_name(&args.named.words)?;
    let who = resource(kind, &name);
    let record = read(store, kind, Some(&name)).await?.remove(0);
    if kind == Kind::RecycleRequest
        && !args.force
        && let Ok(status) = crate::request::status::request_status(record.status.as_ref())
        && matches!(
            status.phase,
            Phase::Surging | Phase::Recycling | Phase::Restoring
        )
    {
        let surge = status
            .surge
            .map(|s| format!(" (desired count raised {} → {})", s.from, s.to))
            .unwrap_or_default();
        return Err(CliError::Invalid(format!(
            "{who} is {:?}: deleting it now would leave the service as it is{surge}. Cancel it first (ecs-recycler cancel {name}), wait for Cancelled, then delete it — or pass --force",
            status.phase
        )));
    }
    match store.delete(kind, &name).await {
        Ok(()) => {
            say(out, format!("{who} deleted"));
            Ok(())
        }
        Err(StoreError::NotFound { .. }) => Err(CliError::NotFound(format!("{who} not found"))),
        Err(e) => Err(e.into()),
    }
}
