//! `describe`: one record's page — a request's plan and progress, a
//! schedule's next run, a policy's services and the requests it made.

use std::io::Write;

use chrono::Utc;

use super::{NamedArgs, kind_and_name, read};
use crate::cli::{CliError, policies, present};
use crate::store::{Kind, Store};

pub async fn describe<S: Store>(
    store: &S,
    args: &NamedArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let (kind, name) = kind_and_name(&args.words)?;
    let record = read(store, kind, Some(&name)).await?.remove(0);
    let text = match kind {
        Kind::RecycleRequest => present::describe_request(&record, Utc::now()),
        Kind::RecycleSchedule => present::describe_schedule(&record, Utc::now()),
        Kind::RecyclePolicy => {
            let requests = policies::requests_of(store, &record).await;
            policies::describe(&record, &requests, Utc::now())
        }
    };
    let _ = write!(out, "{text}");
    Ok(())
}
