//! What the next decision needs to see of the service, by phase: the shell
//! asks for no more than this, so a batch in flight costs fewer calls.

use crate::request::status::{Phase, RecycleStatus};

/// Whether the decision reads the tasks: in every phase but Restoring,
/// which only puts the desired count and the scaling settings back.
pub(crate) fn needs_tasks(status: &RecycleStatus) -> bool {
    status.phase != Phase::Restoring
}

/// Whether the decision may read the scalable target: in every phase but
/// Recycling, so the batches go without the call — except once every
/// planned task is stopped, when this look may end the run and restore.
pub(crate) fn needs_scaling(status: &RecycleStatus) -> bool {
    let last_batch = status.plan.as_ref().is_some_and(|p| {
        p.tasks
            .iter()
            .all(|t| status.stopped.contains(t) || status.skipped.contains(t))
    });
    status.phase != Phase::Recycling || last_batch
}
