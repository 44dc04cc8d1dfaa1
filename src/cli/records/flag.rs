//! `pause`, `resume` and `cancel`: a flag in the spec (`paused`, `cancel`,
//! or a schedule's or a policy's `suspend`) that the operator acts on at
//! its next step.

use std::io::Write;

use serde_json::Value;

use super::{ATTEMPTS, NamedArgs, kind_and_name, read};
use crate::cli::apply::resource;
use crate::cli::manifest::validate_spec;
use crate::cli::{CliError, say};
use crate::store::{Kind, Store, StoreError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    Pause,
    Resume,
    Cancel,
}

impl Flag {
    /// The spec field a flag sets on this kind, its value, and the word for it done.
    fn field(self, kind: Kind) -> Result<(&'static str, bool, &'static str), CliError> {
        match (self, kind) {
            (Self::Pause, Kind::RecycleRequest) => Ok(("paused", true, "paused")),
            (Self::Resume, Kind::RecycleRequest) => Ok(("paused", false, "resumed")),
            (Self::Cancel, Kind::RecycleRequest) => Ok(("cancel", true, "cancelled")),
            (Self::Pause, Kind::RecycleSchedule) => Ok(("suspend", true, "suspended")),
            (Self::Resume, Kind::RecycleSchedule) => Ok(("suspend", false, "resumed")),
            (Self::Cancel, Kind::RecycleSchedule) => Err(CliError::Invalid(
                "a schedule is not cancelled: pause it (no new requests) or delete it; cancel its requests by name".into(),
            )),
            (Self::Pause, Kind::RecyclePolicy) => Ok(("suspend", true, "suspended")),
            (Self::Resume, Kind::RecyclePolicy) => Ok(("suspend", false, "resumed")),
            (Self::Cancel, Kind::RecyclePolicy) => Err(CliError::Invalid(
                "a policy is not cancelled: pause it (no new requests) or delete it; cancel its requests by name (get requests --policy NAME)".into(),
            )),
        }
    }
}

/// Sets `paused`, `cancel` or a schedule's `suspend` in the spec; the
/// operator acts on it at its next step.
pub async fn set_flag<S: Store>(
    store: &S,
    args: &NamedArgs,
    flag: Flag,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let (kind, name) = kind_and_name(&args.words)?;
    let (field, value, done) = flag.field(kind)?;
    let who = resource(kind, &name);
    for _ in 0..ATTEMPTS {
        let record = read(store, kind, Some(&name)).await?.remove(0);
        if kind == Kind::RecycleRequest
            && let Ok(status) = crate::request::status::request_status(record.status.as_ref())
            && status.phase.is_terminal()
        {
            say(out, format!("{who} unchanged (already {:?})", status.phase));
            return Ok(());
        }
        let mut spec = record.spec.clone().map_err(|e| {
            CliError::Invalid(format!(
                "{who} has a spec that cannot be read ({e}); fix it with apply"
            ))
        })?;
        if spec.get(field).and_then(Value::as_bool).unwrap_or(false) == value {
            say(out, format!("{who} unchanged (already {done})"));
            return Ok(());
        }
        match spec.as_object_mut() {
            Some(fields) => fields.insert(field.to_string(), Value::Bool(value)),
            None => {
                return Err(CliError::Invalid(format!(
                    "{who} has a spec that is not a mapping; fix it with apply"
                )));
            }
        };
        validate_spec(kind, &spec, "spec").map_err(|e| {
            CliError::Invalid(format!("{who} is invalid ({e}); fix it with apply first"))
        })?;
        match store.update_spec(kind, &name, record.version, spec).await {
            Ok(_) => {
                say(out, format!("{who} {done}"));
                return Ok(());
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(CliError::Conflict(format!(
        "{who} kept changing; run the command again"
    )))
}
