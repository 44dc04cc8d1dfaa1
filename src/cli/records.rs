//! The verbs over records: `apply`, `get`, `describe`, `pause`, `resume`,
//! `cancel` and `delete`. Each reads and writes the store through the
//! `Store` trait (so DynamoDB and the embedded file behave alike) and writes
//! what it did to `out`, one line per record in kubectl's manner.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use clap::{Args, ValueEnum};
use serde_json::Value;

use super::{CliError, StoreArgs, say};
use crate::cli::apply::{self, Change, Checked, resource};
use crate::cli::manifest::validate_spec;
use crate::cli::{policies, present};
use crate::request::status::Phase;
use crate::store::{Kind, Store, StoreError, StoredRecord};

/// How many times a verb re-reads and retries when the operator wrote the
/// record between its read and its conditional write.
const ATTEMPTS: usize = 5;

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

#[derive(Args, Debug)]
pub struct NamedArgs {
    /// `request` (the default), `schedule` or `policy`, then the name; or just a request's name.
    #[arg(num_args = 1..=2, value_names = ["KIND", "NAME"], required = true)]
    pub words: Vec<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub named: NamedArgs,
    /// Delete a request even in the middle of its run, leaving the service
    /// as it is at that moment (its surge, the autoscaler suspended).
    #[arg(long)]
    pub force: bool,
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

// ---------------------------------------------------------------- apply

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
    let (good, bad) = apply::check(&sources);
    // AWS is asked only by the dry run (it observes the services) and for
    // the alarms of a request's gates (apply checks that they exist).
    let gated = good
        .iter()
        .any(|c| c.doc.kind == Kind::RecycleRequest && c.doc.spec.get("gates").is_some());
    let sdk = if args.dry_run || gated {
        Some(args.store.aws.load().await?)
    } else {
        None
    };
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
    let mut planned = Vec::new();
    let mut refused = 0;
    for c in good {
        let existing = store.get(c.doc.kind, &c.doc.name).await?;
        let classified = apply::classify(&c.doc, existing.as_ref());
        let gate_check = match (aws, &classified) {
            (Some(sdk), Ok(change)) if *change != Change::Unchanged => {
                missing_gate_alarms(&c.doc, sdk).await
            }
            _ => Ok(None),
        };
        let classified = match (classified, gate_check) {
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
        };
        match classified {
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
    if refused > 0 && !args.continue_on_error {
        return Err(CliError::Invalid(format!(
            "nothing was applied: {refused} of {total} document(s) refused"
        )));
    }
    let mut unreachable = None;
    for (c, change, existing) in planned {
        let name = resource(c.doc.kind, &c.doc.name);
        let next = next_run_note(&c, existing.as_ref());
        if args.dry_run {
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
            continue;
        }
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
    if let Some(e) = unreachable {
        return Err(e);
    }
    let failed = bad.len() + refused;
    if failed > 0 {
        return Err(CliError::Invalid(format!(
            "{} of {total} document(s) applied; {failed} not",
            total - failed
        )));
    }
    Ok(())
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

/// The dry-run plan of one request against its live service.
async fn preview<S: Store>(
    store: &S,
    c: &Checked,
    aws: Option<&aws_config::SdkConfig>,
) -> Result<String, CliError> {
    let spec = crate::request::spec::parse_spec(&c.doc.spec, "spec")
        .map_err(|e| CliError::Invalid(e.to_string()))?;
    let Some(sdk) = aws else {
        return Err(CliError::Unreachable("no AWS configuration".into()));
    };
    let pool = std::sync::Arc::new(crate::aws::ClientPool::new(
        sdk.clone(),
        crate::aws::limit::ApiShare::default(),
        crate::metrics::Metrics::new(),
    ));
    let clients = pool
        .for_role(spec.role_arn.as_deref(), spec.external_id.as_deref())
        .await;
    // The look a Pending request's decision wants: the service, its tasks
    // and its scalable target.
    let pending = crate::request::status::RecycleStatus::default();
    let want = crate::aws::observe::Want::of(&clients, &spec, &pending, Utc::now(), false);
    let obs = crate::aws::observe::observe(&pool, want)
        .await
        .map_err(|e| {
            CliError::Unreachable(format!(
                "cannot observe {}/{}: {e}",
                spec.cluster, spec.service
            ))
        })?;
    if let Err(reason) = &obs.service {
        return Ok(format!(
            "  Plan: the request would fail at once: cannot recycle {}/{}: {reason}\n",
            spec.cluster, spec.service
        ));
    }
    let history: Vec<_> = store
        .list_all(Kind::RecycleRequest)
        .await?
        .iter()
        .filter(|r| {
            crate::request::spec::request_spec(r)
                .is_ok_and(|s| s.cluster == spec.cluster && s.service == spec.service)
        })
        .filter_map(|r| crate::request::status::request_status(r).ok())
        .filter(|s| s.phase == Phase::Succeeded)
        .collect();
    let now = Utc::now();
    let estimate = crate::request::preview::estimate(&history, &obs.tasks);
    let p = crate::request::preview::rehearse(&c.doc.name, &spec, &obs, estimate, now);
    let mut text = crate::request::preview::render(&p, &spec, now);
    if let Some(gate) = spec.alarm_gate() {
        let clients = pool
            .for_role(spec.role_arn.as_deref(), spec.external_id.as_deref())
            .await;
        let seen = crate::gates::observe::describe(&clients, gate).await;
        text.push_str(&crate::gates::preview::render(gate, &seen));
    }
    text.push_str(&crate::hooks::preview::render(
        &spec.hooks,
        p.tasks.len(),
        spec.batch_size,
    ));
    Ok(text)
}

/// The gate alarms of a request that do not exist, as a sentence, when
/// the CLI can see CloudWatch; `Ok(None)` when they all do, `Err` when the
/// CLI cannot tell (the operator checks them again when the run starts).
async fn missing_gate_alarms(
    doc: &crate::cli::manifest::Document,
    sdk: &aws_config::SdkConfig,
) -> Result<Option<String>, String> {
    let Ok(spec) = crate::request::spec::parse_spec(&doc.spec, "spec") else {
        return Ok(None);
    };
    let Some(gate) = spec.alarm_gate() else {
        return Ok(None);
    };
    let pool = crate::aws::ClientPool::new(
        sdk.clone(),
        crate::aws::limit::ApiShare::default(),
        crate::metrics::Metrics::new(),
    );
    let clients = pool
        .for_role(spec.role_arn.as_deref(), spec.external_id.as_deref())
        .await;
    let seen = crate::gates::observe::describe(&clients, gate).await;
    match (&seen, crate::gates::decide::verdict(gate, Some(&seen))) {
        (Err(e), _) => Err(e.message.clone()),
        (Ok(_), crate::gates::decide::Verdict::Fail(why)) => {
            let field = if gate.prefix.is_some() && gate.names.is_empty() {
                "prefix"
            } else {
                "names"
            };
            Ok(Some(format!("spec.gates.alarms.{field}: {why}")))
        }
        _ => Ok(None),
    }
}

// ---------------------------------------------------------------- get

/// `get`: the table, or whole records; with `--watch`, again as they change.
pub async fn get<S: Store>(
    store: &S,
    args: &GetArgs,
    redraw: bool,
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
            let _ = write!(
                out,
                "{}",
                render(kind, &shown, args.output, first || redraw, Utc::now())
            );
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
        && crate::request::status::request_status(r).is_ok_and(|s| s.phase.is_terminal())
}

async fn read<S: Store>(
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

// ---------------------------------------------------------------- describe

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

// ---------------------------------------------------------------- pause, resume, cancel

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
            && let Ok(status) = crate::request::status::request_status(&record)
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

// ---------------------------------------------------------------- delete

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
        && let Ok(status) = crate::request::status::request_status(&record)
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
