//! `describe`: one record's page — a request's plan, progress, events and
//! the chart of its run, a schedule's next run, a policy's services and
//! the requests it made.

use std::io::Write;

use chrono::Utc;

use super::{NamedArgs, kind_and_name, read};
use crate::cli::chart::{self, Look};
use crate::cli::{CliError, policies, present};
use crate::store::{Kind, Store};

pub async fn describe<S: Store>(
    store: &S,
    args: &NamedArgs,
    look: Look,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let (kind, name) = kind_and_name(&args.words)?;
    let record = read(store, kind, Some(&name)).await?.remove(0);
    let text = match kind {
        Kind::RecycleRequest => {
            let now = Utc::now();
            let mut page = present::describe_request(&record, now);
            page.push_str(&timeline_section(&record, now, look));
            page
        }
        Kind::RecycleSchedule => present::describe_schedule(&record, Utc::now()),
        Kind::RecyclePolicy => {
            let requests = policies::requests_of(store, &record).await;
            policies::describe(&record, &requests, Utc::now())
        }
    };
    let _ = write!(out, "{text}");
    Ok(())
}

/// A request's run as a chart, under its events.
pub(super) fn timeline_section(
    record: &crate::store::StoredRecord,
    now: chrono::DateTime<Utc>,
    look: Look,
) -> String {
    let Ok(status) = crate::request::status::request_status(record.status.as_ref()) else {
        return String::new();
    };
    match chart::draw(&status, now, look) {
        Some(drawn) => format!("Timeline:\n{drawn}"),
        None if status.started_at.is_some() => {
            "Timeline:             not kept (written by an earlier release)\n".into()
        }
        None => String::new(),
    }
}
