//! A service the operator cannot see whole: a read of the look (ECS,
//! Elastic Load Balancing, Application Auto Scaling, CloudWatch for gates,
//! a task's protection) got no answer or was denied. Nothing is decided
//! and nothing changed then; the request's own status says so — once the
//! trouble has lasted a few looks (at once for a denied read, which does
//! not fix itself), and written again only when another call is the
//! trouble, so a silent endpoint costs a write or two, not one a look. The
//! next look that sees the service whole clears it and the run goes on by
//! itself.

use chrono::{DateTime, Utc};

use super::{Context, Decision};
use crate::duration;
use crate::request::status::{Phase, Reason, RecycleStatus, Unseen};

/// Failed looks in a row before a status says so (a blip is not news).
const LOOKS_BEFORE_SAYING: u32 = 2;

/// One look that could not see the service whole.
pub(crate) struct Trouble {
    /// The IAM action of the read that failed.
    pub call: String,
    /// What could not be seen, why, and what to check (from the adapter).
    pub sentence: String,
    /// Refused as not allowed: it will not fix itself.
    pub denied: bool,
    /// Failed looks in a row, this one included.
    pub looks: u32,
}

/// The status that says the service cannot be seen whole, when it should
/// be written now: `None` while the trouble is too young to tell, or
/// already said for the same call.
pub(crate) fn unseen(
    status: &RecycleStatus,
    trouble: &Trouble,
    now: DateTime<Utc>,
) -> Option<RecycleStatus> {
    let due = if trouble.denied {
        1
    } else {
        LOOKS_BEFORE_SAYING
    };
    if status.phase.is_terminal()
        || trouble.looks < due
        || status
            .unseen
            .as_ref()
            .is_some_and(|u| u.call == trouble.call)
    {
        return None;
    }
    let then = match status.phase {
        Phase::Pending => "nothing was touched; the run starts by itself once it can see",
        _ => "nothing more is changed until it can see; the run goes on by itself once it can",
    };
    let message = crate::message::bounded(format!("{}; {then}", trouble.sentence));
    let mut s = status.clone();
    let since = s.unseen.as_ref().map_or(now, |u| u.since);
    s.unseen = Some(Unseen {
        since,
        call: trouble.call.clone(),
        message: message.clone(),
    });
    s.event(now, Reason::Unseen, message.clone());
    s.message = message;
    Some(s)
}

/// A whole look after the service could not be seen: said once, and the
/// decision goes on as usual.
pub(super) fn seen_again(ctx: &Context, d: &mut Decision) {
    let Some(was) = d.status.unseen.take() else {
        return;
    };
    let after = (ctx.now - was.since).to_std().unwrap_or_default();
    d.status.event(
        ctx.now,
        Reason::Seen,
        format!(
            "sees {}/{} whole again after {} ({} answered); going on",
            ctx.spec.cluster,
            ctx.spec.service,
            duration::format(std::time::Duration::from_secs(after.as_secs())),
            was.call
        ),
    );
}
