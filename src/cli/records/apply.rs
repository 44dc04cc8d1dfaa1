//! `apply -f`: every document checked, and every change classified, before
//! anything is written; with `--dry-run`, what would be written and, for a
//! request, its plan against the live service. What a document is and how
//! it changes its record is decided in [`crate::cli::apply`]; this is the
//! verb that reads, asks and writes.

use std::io::Write;
use std::path::PathBuf;

use chrono::Utc;
use clap::Args;

use super::ATTEMPTS;
use super::live::{missing_gate_alarms, preview};
use crate::cli::apply::{self, Change, Checked, resource};
use crate::cli::{CliError, StoreArgs, policies, present, say};
use crate::store::{Kind, Store, StoreError, StoredRecord};

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// A manifest file, a directory of them (.yaml, .yml, .json), or - for stdin. Repeatable.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR|-",
        required = true
    )]
    pub files: Vec<PathBuf>,
    /// Check everything and show what would happen — for requests, the plan
    /// against the live service: tasks, capacity over the run, duration and
    /// AWS calls — without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply the valid documents even when others are invalid (still exits 1).
    #[arg(long)]
    pub continue_on_error: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// A valid document, how it changes its record, and the record as read.
type Planned = (Checked, Change, Option<StoredRecord>);

/// `apply -f`: everything is checked before anything is written; with an
/// invalid document or a refused change nothing is written, unless
/// `--continue-on-error`.
pub async fn apply<S: Store>(
    store: &S,
    args: &ApplyArgs,
    stdin: &mut dyn std::io::Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let sources = apply::read_sources(&args.files, stdin)
        .map_err(|e| CliError::Invalid(format!("{e}; nothing was applied")))?;
    let (good, mut bad) = apply::check(&sources);
    let (good, late) = apply::refuse_late(good, Utc::now());
    bad.extend(late);
    let sdk = aws_if_needed(args, &good).await?;
    let aws = sdk.as_ref();
    for r in &bad {
        say(err, format!("error: {r}"));
    }
    let total = good.len() + bad.len();
    if !bad.is_empty() && !args.continue_on_error {
        return Err(CliError::Invalid(format!(
            "nothing was applied: {} of {total} document(s) invalid; fix them, or pass --continue-on-error to apply the valid ones",
            bad.len()
        )));
    }
    // Every change is classified before any is written, so a refused change
    // stops the whole apply as an invalid document does.
    let (planned, refused) = classify_all(store, good, aws, err).await?;
    if refused > 0 && !args.continue_on_error {
        return Err(CliError::Invalid(format!(
            "nothing was applied: {refused} of {total} document(s) refused"
        )));
    }
    let refused = if args.dry_run {
        show_all(store, planned, aws, out).await?;
        refused
    } else {
        refused + write_all(store, planned, out, err).await?
    };
    let failed = bad.len() + refused;
    if failed > 0 {
        return Err(CliError::Invalid(format!(
            "{} of {total} document(s) applied; {failed} not",
            total - failed
        )));
    }
    Ok(())
}

/// The SDK configuration, when AWS is to be asked: only by the dry run (it
/// observes the services) and for the alarms of a request's gates (apply
/// checks that they exist).
async fn aws_if_needed(
    args: &ApplyArgs,
    good: &[Checked],
) -> Result<Option<aws_config::SdkConfig>, CliError> {
    let gated = good
        .iter()
        .any(|c| c.doc.kind == Kind::RecycleRequest && c.doc.spec.get("gates").is_some());
    if args.dry_run || gated {
        Ok(Some(args.store.aws.load().await?))
    } else {
        Ok(None)
    }
}

/// Each valid document with the change it makes, and how many were refused
/// (each said on `err`).
async fn classify_all<S: Store>(
    store: &S,
    good: Vec<Checked>,
    aws: Option<&aws_config::SdkConfig>,
    err: &mut dyn Write,
) -> Result<(Vec<Planned>, usize), CliError> {
    let mut planned = Vec::new();
    let mut refused = 0;
    for c in good {
        let existing = store.get(c.doc.kind, &c.doc.name).await?;
        match change_of(&c, existing.as_ref(), aws, err).await {
            Ok(change) => planned.push((c, change, existing)),
            Err(why) => {
                refused += 1;
                say(
                    err,
                    format!(
                        "error: {}: document {} ({}) cannot be applied: {why}",
                        c.source,
                        c.document,
                        resource(c.doc.kind, &c.doc.name)
                    ),
                );
            }
        }
    }
    Ok((planned, refused))
}

/// How a document changes its record, or why it cannot; a change that
/// names gate alarms CloudWatch does not have is refused, and one whose
/// alarms could not be checked goes on with a warning.
async fn change_of(
    c: &Checked,
    existing: Option<&StoredRecord>,
    aws: Option<&aws_config::SdkConfig>,
    err: &mut dyn Write,
) -> Result<Change, String> {
    let classified = apply::classify(&c.doc, existing);
    let gate_check = match (aws, &classified) {
        (Some(sdk), Ok(change)) if *change != Change::Unchanged => {
            missing_gate_alarms(&c.doc, sdk).await
        }
        _ => Ok(None),
    };
    match (classified, gate_check) {
        (Ok(_), Ok(Some(missing))) => Err(missing),
        (Ok(change), Err(why)) => {
            say(
                err,
                format!(
                    "warning: {}: the gate alarms of {} could not be checked ({why}); the operator checks them before the run touches anything",
                    c.source,
                    resource(c.doc.kind, &c.doc.name)
                ),
            );
            Ok(change)
        }
        (classified, _) => classified,
    }
}

/// The dry run: what each document would do, with a policy's fleet and a
/// request's plan; the last of them that could not be had is the error.
async fn show_all<S: Store>(
    store: &S,
    planned: Vec<Planned>,
    aws: Option<&aws_config::SdkConfig>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut unreachable = None;
    for (c, change, existing) in planned {
        let name = resource(c.doc.kind, &c.doc.name);
        let next = next_run_note(&c, existing.as_ref());
        say(
            out,
            format!("{name} {} (dry run){next}", change.past_tense()),
        );
        if c.doc.kind == Kind::RecyclePolicy {
            match policies::preview(store, &c.doc.name, &c.doc.spec, aws).await {
                Ok(text) => {
                    let _ = write!(out, "{text}");
                }
                Err(e) => {
                    say(out, format!("  Fleet unavailable: {e}"));
                    unreachable = Some(e);
                }
            }
        }
        if c.doc.kind == Kind::RecycleRequest && change != Change::Unchanged {
            match preview(store, &c, aws).await {
                Ok(text) => {
                    let _ = write!(out, "{text}");
                }
                Err(e) => {
                    say(out, format!("  Plan unavailable: {e}"));
                    unreachable = Some(e);
                }
            }
        }
    }
    unreachable.map_or(Ok(()), Err)
}

/// Writes each document, saying what became of it; answers how many were
/// refused at their write (each said on `err`).
async fn write_all<S: Store>(
    store: &S,
    planned: Vec<Planned>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<usize, CliError> {
    let mut refused = 0;
    for (c, _, existing) in planned {
        let name = resource(c.doc.kind, &c.doc.name);
        let next = next_run_note(&c, existing.as_ref());
        match write(store, &c).await {
            Ok(change) => say(out, format!("{name} {}{next}", change.past_tense())),
            Err(CliError::Invalid(why)) => {
                refused += 1;
                say(
                    err,
                    format!("error: {}: {name} cannot be applied: {why}", c.source),
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok(refused)
}

/// For a schedule, when it runs next with the spec applied — from its cron
/// expression and time zone, and the status the table holds, if any.
fn next_run_note(c: &Checked, existing: Option<&StoredRecord>) -> String {
    if c.doc.kind != Kind::RecycleSchedule {
        return String::new();
    }
    present::schedule_next_run(
        &c.doc.name,
        &c.doc.spec,
        existing.and_then(|r| r.status.as_ref()),
        existing.and_then(|r| r.created_at),
        Utc::now(),
    )
    .map_or_else(String::new, |next| format!("; next run: {next}"))
}

/// Writes one document, reading again and re-deciding when the record
/// changed in between (the operator may have started the request meanwhile).
async fn write<S: Store>(store: &S, c: &Checked) -> Result<Change, CliError> {
    let (kind, name) = (c.doc.kind, c.doc.name.as_str());
    for _ in 0..ATTEMPTS {
        let existing = store.get(kind, name).await?;
        let change = apply::classify(&c.doc, existing.as_ref()).map_err(CliError::Invalid)?;
        let written = match (&change, &existing) {
            (Change::Unchanged, _) => return Ok(change),
            (Change::Create, _) => store
                .create(kind, name, c.doc.spec.clone(), Utc::now())
                .await
                .map(|_| ()),
            (Change::Configure, Some(r)) => store
                .update_spec(kind, name, r.version, c.doc.spec.clone())
                .await
                .map(|_| ()),
            (Change::Configure, None) => continue,
        };
        match written {
            Ok(()) => return Ok(change),
            Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(CliError::Conflict(format!(
        "{} kept changing while it was applied; run apply again",
        resource(kind, name)
    )))
}
