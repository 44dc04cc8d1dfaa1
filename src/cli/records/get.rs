//! `get`: the table of records, or whole records as JSON, YAML or names;
//! with `--watch`, printed again as they change.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use chrono::Utc;
use clap::{Args, ValueEnum};
use serde_json::Value;

use super::{kind_word, read};
use crate::cli::Look;
use crate::cli::apply::resource;
use crate::cli::{CliError, StoreArgs, policies, present};
use crate::store::{Kind, Store, StoredRecord};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// The default table.
    Table,
    /// The table with batch size, surge and the replica holding the lease.
    Wide,
    /// The whole record (apiVersion, kind, metadata, spec, status) as JSON.
    Json,
    /// The whole record as YAML; `apply -f` takes it back.
    Yaml,
    /// kind/name only.
    Name,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// `requests` (the default), `schedules` or `policies`; or a request's name.
    pub what: Option<String>,
    /// One record's name.
    pub name: Option<String>,
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Keep printing as records change (a named request: until it finishes). Ctrl-C stops.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// How often --watch reads the table.
    #[arg(long, default_value = "1s", value_parser = crate::duration::parse)]
    pub interval: Duration,
    /// Only the requests this RecyclePolicy made.
    #[arg(long, value_name = "NAME")]
    pub policy: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `get`: the table, or whole records; with `--watch`, again as they change.
pub async fn get<S: Store>(
    store: &S,
    args: &GetArgs,
    redraw: bool,
    look: Look,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let (kind, name) = match (&args.what, &args.name) {
        (None, _) => (Kind::RecycleRequest, None),
        (Some(w), name) => match kind_word(w) {
            Some(kind) => (kind, name.clone()),
            None if name.is_none() => (Kind::RecycleRequest, Some(w.clone())),
            None => {
                return Err(CliError::Invalid(format!(
                    "{w:?} is not a kind of record; use requests, schedules or policies"
                )));
            }
        },
    };
    if args.policy.is_some() && kind != Kind::RecycleRequest {
        return Err(CliError::Invalid(
            "--policy lists the requests a policy made; use it with get requests".into(),
        ));
    }
    let maker = args.policy.as_ref().map(|p| format!("RecyclePolicy/{p}"));
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut first = true;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CliError::Unreachable(format!("cannot listen for SIGTERM: {e}")))?;
    loop {
        let mut records = read(store, kind, name.as_deref()).await?;
        if let Some(maker) = &maker {
            records.retain(|r| {
                r.spec
                    .as_ref()
                    .ok()
                    .and_then(|s| s.get("createdBy"))
                    .and_then(Value::as_str)
                    == Some(maker.as_str())
            });
        }
        let changed: Vec<&StoredRecord> = records
            .iter()
            .filter(|r| seen.get(&r.name) != Some(&r.version))
            .collect();
        if first || !changed.is_empty() {
            let shown: Vec<&StoredRecord> = if first || redraw {
                records.iter().collect()
            } else {
                changed
            };
            if redraw && !first {
                let _ = write!(out, "\x1b[2J\x1b[H");
            }
            let now = Utc::now();
            let _ = write!(
                out,
                "{}",
                render(kind, &shown, args.output, first || redraw, now)
            );
            // One request followed in a table: its run drawn under it,
            // redrawn as it changes on a terminal; a pipe gets it once the
            // run has ended.
            let table = matches!(args.output, Output::Table | Output::Wide);
            if let [record] = records.as_slice()
                && name.is_some()
                && kind == Kind::RecycleRequest
                && table
                && args.watch
                && (redraw || finished(record))
            {
                let _ = write!(
                    out,
                    "\n{}",
                    super::describe::timeline_section(record, now, look)
                );
            }
            let _ = out.flush();
        }
        first = false;
        seen = records
            .iter()
            .map(|r| (r.name.clone(), r.version))
            .collect();
        if !args.watch {
            return Ok(());
        }
        if name.is_some() && records.iter().all(finished) {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
        }
    }
}

fn finished(r: &StoredRecord) -> bool {
    r.kind == Kind::RecycleRequest
        && crate::request::status::request_status(r.status.as_ref())
            .is_ok_and(|s| s.phase.is_terminal())
}

/// What `get` prints for these records.
pub fn render(
    kind: Kind,
    records: &[&StoredRecord],
    output: Output,
    headers: bool,
    now: chrono::DateTime<Utc>,
) -> String {
    match output {
        Output::Json => {
            let docs: Vec<Value> = records.iter().map(|r| present::as_document(r)).collect();
            let value = if docs.len() == 1 {
                docs.into_iter().next().unwrap_or_default()
            } else {
                serde_json::json!({"apiVersion": crate::request::spec::API_VERSION, "kind": "List", "items": docs})
            };
            format!(
                "{}\n",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            )
        }
        Output::Yaml => records
            .iter()
            .map(|r| {
                let text = serde_saphyr::to_string(&present::as_document(r)).unwrap_or_default();
                format!("---\n{text}")
            })
            .collect(),
        Output::Name => records
            .iter()
            .map(|r| format!("{}\n", resource(r.kind, &r.name)))
            .collect(),
        Output::Table | Output::Wide => {
            let wide = output == Output::Wide;
            if records.is_empty() && headers {
                return format!("No {} found.\n", plural(kind));
            }
            let (head, rows): (Vec<&str>, Vec<Vec<String>>) = match kind {
                Kind::RecycleRequest => (
                    present::request_headers(wide),
                    records
                        .iter()
                        .map(|r| present::request_row(r, now, wide))
                        .collect(),
                ),
                Kind::RecycleSchedule => (
                    present::schedule_headers(),
                    records
                        .iter()
                        .map(|r| present::schedule_row(r, now))
                        .collect(),
                ),
                Kind::RecyclePolicy => (
                    policies::headers(),
                    records.iter().map(|r| policies::row(r, now)).collect(),
                ),
            };
            let text = present::table(&head, &rows);
            if headers {
                text
            } else {
                text.lines().skip(1).map(|l| format!("{l}\n")).collect()
            }
        }
    }
}

fn plural(kind: Kind) -> &'static str {
    match kind {
        Kind::RecycleRequest => "requests",
        Kind::RecycleSchedule => "schedules",
        Kind::RecyclePolicy => "policies",
    }
}
