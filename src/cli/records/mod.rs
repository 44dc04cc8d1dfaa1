//! The verbs over records, one file each: `apply`, `get`, `describe`,
//! `pause`/`resume`/`cancel` and `delete`. Each reads and writes the store
//! through the `Store` trait (so DynamoDB and the embedded file behave
//! alike) and writes what it did to `out`, one line per record in kubectl's
//! manner. What they share is here: how a record is named on the command
//! line, how it is read, and how often a write is tried again.

mod apply;
mod delete;
mod describe;
mod flag;
mod get;
mod live;

pub use apply::{ApplyArgs, apply};
pub use delete::{DeleteArgs, delete};
pub use describe::describe;
pub use flag::{Flag, set_flag};
pub use get::{GetArgs, Output, get, render};

use clap::Args;

use super::{CliError, StoreArgs};
use crate::cli::apply::resource;
use crate::store::{Kind, Store, StoredRecord};

/// How many times a verb re-reads and retries when the operator wrote the
/// record between its read and its conditional write.
const ATTEMPTS: usize = 5;

#[derive(Args, Debug)]
pub struct NamedArgs {
    /// `request` (the default), `schedule` or `policy`, then the name; or just a request's name.
    #[arg(num_args = 1..=2, value_names = ["KIND", "NAME"], required = true)]
    pub words: Vec<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `requests`, `request`, `rr`, ... → the kind.
pub fn kind_word(word: &str) -> Option<Kind> {
    match word.to_lowercase().as_str() {
        "request" | "requests" | "recyclerequest" | "recyclerequests" | "rr" => {
            Some(Kind::RecycleRequest)
        }
        "schedule" | "schedules" | "recycleschedule" | "recycleschedules" | "rs" => {
            Some(Kind::RecycleSchedule)
        }
        "policy" | "policies" | "recyclepolicy" | "recyclepolicies" | "rp" => {
            Some(Kind::RecyclePolicy)
        }
        _ => None,
    }
}

/// `[KIND] NAME` → (kind, name); a lone word is a request's name.
fn kind_and_name(words: &[String]) -> Result<(Kind, String), CliError> {
    match words {
        [name] => Ok((Kind::RecycleRequest, name.clone())),
        [kind, name] => kind_word(kind).map(|k| (k, name.clone())).ok_or_else(|| {
            CliError::Invalid(format!(
                "{kind:?} is not a kind of record; use request, schedule or policy"
            ))
        }),
        _ => Err(CliError::Invalid("name the record".into())),
    }
}

/// The named record, or every record of `kind` oldest first.
pub(crate) async fn read<S: Store>(
    store: &S,
    kind: Kind,
    name: Option<&str>,
) -> Result<Vec<StoredRecord>, CliError> {
    match name {
        Some(n) => match store.get(kind, n).await? {
            Some(r) => Ok(vec![r]),
            None => Err(CliError::NotFound(format!(
                "{} not found",
                resource(kind, n)
            ))),
        },
        None => {
            let mut all = store.list_all(kind).await?;
            all.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
            Ok(all)
        }
    }
}
