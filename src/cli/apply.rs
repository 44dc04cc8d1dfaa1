//! What `apply` decides before it writes anything: which files a path names,
//! every document of them checked (each problem reported, nothing written
//! while any document is invalid), and each valid document compared with the
//! record the table holds — to be created, configured, left unchanged, or
//! refused because a running request cannot take that change.

use std::io::Read;
use std::path::{Path, PathBuf};

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::cli::manifest::{self, Document};
use crate::request::spec::{RecycleSpec, parse_spec};
use crate::request::status::request_status;
use crate::request::strategy::Strategy;
use crate::store::{Kind, StoredRecord};

/// One manifest's text and the name it is reported under.
#[derive(Clone, Debug)]
pub struct Source {
    pub name: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub(crate) struct SourceError {
    pub path: String,
    pub reason: String,
}

/// Reads `-f` arguments: a file, every `.yaml`, `.yml` and `.json` file of a
/// directory (by name, not recursive, as kubectl does), or `-` for stdin.
pub(crate) fn read_sources(
    paths: &[PathBuf],
    stdin: &mut dyn Read,
) -> Result<Vec<Source>, SourceError> {
    let mut out = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            stdin.read_to_string(&mut text).map_err(|e| SourceError {
                path: "<stdin>".into(),
                reason: format!("cannot be read: {e}"),
            })?;
            out.push(Source {
                name: "<stdin>".into(),
                text,
            });
        } else if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| unreadable(path, e))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(SourceError {
                    path: path.display().to_string(),
                    reason: "holds no .yaml, .yml or .json file".into(),
                });
            }
            for file in files {
                out.push(read_file(&file)?);
            }
        } else {
            out.push(read_file(path)?);
        }
    }
    Ok(out)
}

fn read_file(path: &Path) -> Result<Source, SourceError> {
    let bytes = std::fs::read(path).map_err(|e| unreadable(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| SourceError {
        path: path.display().to_string(),
        reason: format!(
            "is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
    })?;
    Ok(Source {
        name: path.display().to_string(),
        text,
    })
}

fn unreadable(path: &Path, e: std::io::Error) -> SourceError {
    let reason = match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_string(),
        std::io::ErrorKind::PermissionDenied => "cannot be read: permission denied".to_string(),
        _ => format!("cannot be read: {e}"),
    };
    SourceError {
        path: path.display().to_string(),
        reason,
    }
}

/// A document that cannot be applied, and every reason.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejected {
    /// `file` or `file:line:column` for a syntax error.
    pub source: String,
    /// 1-based; `None` when the whole file could not be read.
    pub document: Option<usize>,
    /// `recyclerequest/NAME` when the document named itself.
    pub record: Option<String>,
    pub problems: Vec<String>,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.document.is_none() {
            return write!(f, "{}: {}", self.source, self.problems.join("; "));
        }
        write!(f, "{}", self.source)?;
        if let Some(n) = self.document {
            write!(f, ": document {n}")?;
        }
        if let Some(r) = &self.record {
            write!(f, " ({r})")?;
        }
        write!(f, " is invalid:")?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// A checked document and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    pub source: String,
    pub document: usize,
    pub doc: Document,
}

/// Requests whose strategy's bake (or linear pace) cannot finish before
/// their `notAfter` as of `now` are refused, naming the field: the window
/// would close in the middle of watching the canary.
pub(crate) fn refuse_late(good: Vec<Checked>, now: DateTime<Utc>) -> (Vec<Checked>, Vec<Rejected>) {
    let mut bad = Vec::new();
    let mut kept = Vec::new();
    for c in good {
        match too_late(&c, now) {
            Some(problem) => bad.push(Rejected {
                source: c.source.clone(),
                document: Some(c.document),
                record: Some(resource(c.doc.kind, &c.doc.name)),
                problems: vec![problem],
            }),
            None => kept.push(c),
        }
    }
    (kept, bad)
}

fn too_late(c: &Checked, now: DateTime<Utc>) -> Option<String> {
    if c.doc.kind != Kind::RecycleRequest {
        return None;
    }
    let spec = crate::request::spec::parse_spec(&c.doc.spec, "spec").ok()?;
    let not_after = spec.not_after?;
    let pause = spec.strategy.longest_pause();
    let left = (not_after - now).to_std().unwrap_or_default();
    let field = match spec.strategy {
        Strategy::Canary { .. } => "spec.strategy.canary.bake",
        Strategy::Linear { .. } => "spec.strategy.linear.every",
        _ => return None,
    };
    (pause > left).then(|| {
        format!(
            "{field}: {} is longer than the {} left before spec.notAfter ({}); the window would close before it ends: shorten it, or move notAfter",
            crate::duration::format(pause),
            crate::duration::format(Duration::from_secs(left.as_secs())),
            not_after.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    })
}

/// `recyclerequest/NAME`, as kubectl names a resource.
pub(crate) fn resource(kind: Kind, name: &str) -> String {
    format!("{}/{name}", kind.as_str().to_lowercase())
}

/// Checks every document of every source: the valid ones, and the rejected
/// ones with all their problems. A record named twice is rejected the second time.
pub fn check(sources: &[Source]) -> (Vec<Checked>, Vec<Rejected>) {
    let mut good: Vec<Checked> = Vec::new();
    let mut bad = Vec::new();
    for source in sources {
        let docs = match manifest::read_documents(&source.text, &source.name) {
            Ok(docs) => docs,
            Err(manifest::ManifestError::Syntax {
                line,
                column,
                message,
                ..
            }) => {
                let place = match (line, column) {
                    (Some(l), Some(c)) => format!("{}:{l}:{c}", source.name),
                    _ => source.name.clone(),
                };
                bad.push(Rejected {
                    source: place,
                    document: None,
                    record: None,
                    problems: vec![message],
                });
                continue;
            }
        };
        if docs.is_empty() {
            bad.push(Rejected {
                source: source.name.clone(),
                document: None,
                record: None,
                problems: vec!["holds no document".into()],
            });
        }
        for (i, value) in docs.iter().enumerate() {
            let named = named_as(value);
            match manifest::parse_document(value, "") {
                Ok(doc) => {
                    let twice = good
                        .iter()
                        .find(|c| c.doc.kind == doc.kind && c.doc.name == doc.name);
                    if let Some(first) = twice {
                        bad.push(Rejected {
                            source: source.name.clone(),
                            document: Some(i + 1),
                            record: named,
                            problems: vec![format!(
                                "metadata.name: {:?} is already defined by {} document {}; each record once",
                                doc.name, first.source, first.document
                            )],
                        });
                    } else {
                        good.push(Checked {
                            source: source.name.clone(),
                            document: i + 1,
                            doc,
                        });
                    }
                }
                Err(invalid) => bad.push(Rejected {
                    source: source.name.clone(),
                    document: Some(i + 1),
                    record: named,
                    problems: invalid.0.iter().map(ToString::to_string).collect(),
                }),
            }
        }
    }
    (good, bad)
}

/// `recyclerequest/NAME` when a document says enough to be named, even if invalid.
fn named_as(value: &Value) -> Option<String> {
    let kind = Kind::parse(value.get("kind")?.as_str()?)?;
    let name = value.get("metadata")?.get("name")?.as_str()?;
    Some(resource(kind, name))
}

/// What applying one document does to its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Create,
    Configure,
    Unchanged,
}

impl Change {
    pub(crate) fn past_tense(self) -> &'static str {
        match self {
            Self::Create => "created",
            Self::Configure => "configured",
            Self::Unchanged => "unchanged",
        }
    }
}

/// Compares a checked document with the record the table holds, if any.
/// `Err` says which field cannot change now and why.
pub(crate) fn classify(doc: &Document, existing: Option<&StoredRecord>) -> Result<Change, String> {
    let Some(existing) = existing else {
        return Ok(Change::Create);
    };
    match doc.kind {
        Kind::RecycleRequest => classify_request(doc, existing),
        // A policy, like a schedule, holds no run of its own.
        Kind::RecyclePolicy => {
            let parse = |v: &Value| crate::policy::parse_policy_spec(v, "spec").ok();
            let old = existing.spec.as_ref().ok().and_then(parse);
            Ok(if old.is_some() && old == parse(&doc.spec) {
                Change::Unchanged
            } else {
                Change::Configure
            })
        }
        // A schedule holds no run of its own: any change may be made at any time.
        Kind::RecycleSchedule => {
            let parse = |v: &Value| crate::schedule::parse_schedule_spec(v, "spec").ok();
            let old = existing.spec.as_ref().ok().and_then(parse);
            Ok(if old.is_some() && old == parse(&doc.spec) {
                Change::Unchanged
            } else {
                Change::Configure
            })
        }
    }
}

fn classify_request(doc: &Document, existing: &StoredRecord) -> Result<Change, String> {
    let new = parse_spec(&doc.spec, "spec").map_err(|e| e.to_string())?;
    let old = existing
        .spec
        .as_ref()
        .ok()
        .and_then(|v| parse_spec(v, "spec").ok());
    if old.as_ref() == Some(&new) {
        return Ok(Change::Unchanged);
    }
    // A status the operator wrote but cannot be read counts as not started.
    let status = request_status(existing.status.as_ref()).unwrap_or_default();
    if status.phase.is_terminal() {
        return Err(format!(
            "it has finished ({:?}), so its spec can no longer change; apply the change under a new name to recycle again",
            status.phase
        ));
    }
    let (Some(old), Some(plan)) = (old, status.plan.as_ref()) else {
        // Not started: nothing was planned or changed on the strength of the old spec.
        return Ok(Change::Configure);
    };
    let fixed = fixed_fields_changed(&old, &new);
    if fixed.is_empty() {
        return Ok(Change::Configure);
    }
    let lines: Vec<String> = fixed
        .iter()
        .map(|(field, why)| {
            format!("spec.{field} cannot change once the request has started: {why}")
        })
        .collect();
    Err(format!(
        "it is {:?} (planned {} task(s) at {}); {}. Change what may change (paused, cancel, wait, stabilityTimeout, notAfter, notify), or cancel it and apply a new request",
        status.phase,
        plan.tasks.len(),
        plan.planned_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        lines.join("; ")
    ))
}

/// The fields a started run rests on, each with the reason it is fixed.
fn fixed_fields_changed(old: &RecycleSpec, new: &RecycleSpec) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    if old.cluster != new.cluster || old.service != new.service {
        out.push((
            if old.cluster != new.cluster {
                "cluster"
            } else {
                "service"
            },
            "the plan, the surge and the stopped tasks belong to the service it started on",
        ));
    }
    if old.maintain_capacity != new.maintain_capacity {
        out.push((
            "maintainCapacity",
            "the surge was added (or not) when the run started, and Restoring undoes exactly that",
        ));
    }
    if old.batch_size != new.batch_size {
        out.push((
            "batchSize",
            "the surge was sized for the batch, so the capacity guarantee rests on it",
        ));
    }
    if old.strategy != new.strategy {
        out.push((
            "strategy",
            "the surge was sized for its largest batch, so the capacity guarantee rests on it",
        ));
    }
    if old.selector != new.selector {
        out.push((
            "selector",
            "the tasks to recycle were chosen by it when the plan was made",
        ));
    }
    if old.role_arn != new.role_arn || old.external_id != new.external_id {
        out.push((
            "roleArn",
            "the run's changes were made through this role and must be undone through it",
        ));
    }
    if old.dry_run != new.dry_run {
        out.push(("dryRun", "a run that has started is not a rehearsal"));
    }
    if old.hooks != new.hooks {
        out.push((
            "hooks",
            "the hook calls on record and the points already passed are counted by each hook's place in the list",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::request::status::{Phase, Plan, RecycleStatus};

    fn doc(spec: Value) -> Document {
        Document {
            kind: Kind::RecycleRequest,
            name: "web".into(),
            spec,
        }
    }

    fn record(spec: Value, status: Option<RecycleStatus>) -> StoredRecord {
        StoredRecord {
            kind: Kind::RecycleRequest,
            name: "web".into(),
            spec: Ok(spec),
            status: status.map(|s| serde_json::to_value(s).unwrap()),
            version: 3,
            created_at: None,
            active: true,
            lease: None,
        }
    }

    fn started(phase: Phase) -> RecycleStatus {
        RecycleStatus {
            phase,
            plan: Some(Plan {
                original_desired: 3,
                original_scaling: None,
                tasks: vec!["a".into(), "b".into()],
                planned_at: chrono::Utc::now(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn same_meaning_is_unchanged_whatever_the_spelling() {
        let old = json!({"cluster": "prod", "service": "web", "wait": "30s"});
        let new = json!({"cluster": "prod", "service": "web", "wait": "30000ms", "batchSize": 1});
        assert_eq!(
            classify(&doc(new), Some(&record(old, None))),
            Ok(Change::Unchanged)
        );
    }

    #[test]
    fn a_pending_request_takes_any_change() {
        let old = json!({"cluster": "prod", "service": "web"});
        let new = json!({"cluster": "prod", "service": "api", "batchSize": 2});
        assert_eq!(
            classify(&doc(new), Some(&record(old, None))),
            Ok(Change::Configure)
        );
    }

    #[test]
    fn a_running_request_refuses_its_fixed_fields_and_says_why() {
        let old = json!({"cluster": "prod", "service": "web"});
        let new =
            json!({"cluster": "prod", "service": "web", "batchSize": 2, "maintainCapacity": false});
        let err = classify(
            &doc(new),
            Some(&record(old, Some(started(Phase::Recycling)))),
        )
        .unwrap_err();
        assert!(err.contains("spec.batchSize cannot change"), "{err}");
        assert!(err.contains("spec.maintainCapacity cannot change"), "{err}");
        assert!(err.contains("it is Recycling"), "{err}");
    }

    #[test]
    fn a_running_request_refuses_a_change_of_its_hooks() {
        let old = json!({"cluster": "prod", "service": "web"});
        let new = json!({"cluster": "prod", "service": "web", "hooks": [
            {"url": "https://smoke.example.com/h", "at": ["beforeBatch"], "secret": {"env": "S"}}]});
        let err = classify(
            &doc(new),
            Some(&record(old, Some(started(Phase::Recycling)))),
        )
        .unwrap_err();
        assert!(err.contains("spec.hooks cannot change"), "{err}");
    }

    #[test]
    fn a_running_request_takes_pause_cancel_and_timings() {
        let old = json!({"cluster": "prod", "service": "web"});
        let new = json!({"cluster": "prod", "service": "web", "paused": true, "wait": "5s", "stabilityTimeout": "20m"});
        assert_eq!(
            classify(&doc(new), Some(&record(old, Some(started(Phase::Surging))))),
            Ok(Change::Configure)
        );
    }

    #[test]
    fn a_finished_request_refuses_every_change() {
        let old = json!({"cluster": "prod", "service": "web"});
        let new = json!({"cluster": "prod", "service": "web", "paused": true});
        let err = classify(
            &doc(new),
            Some(&record(old, Some(started(Phase::Succeeded)))),
        )
        .unwrap_err();
        assert!(err.contains("finished (Succeeded)"), "{err}");
    }

    #[test]
    fn one_bad_document_is_reported_with_every_problem_and_the_rest_still_checked() {
        let text = "apiVersion: ecs-recycler/v1
kind: RecycleRequest
metadata: {name: good}
spec: {cluster: prod, service: web}
---
apiVersion: ecs-recycler/v1
kind: RecycleRequest
metadata: {name: bad}
spec: {cluster: prod, batchSize: 0, wiat: 3s}
---
apiVersion: ecs-recycler/v1
kind: RecycleRequest
metadata: {name: good}
spec: {cluster: prod, service: api}
";
        let (good, bad) = check(&[Source {
            name: "m.yaml".into(),
            text: text.into(),
        }]);
        assert_eq!(good.len(), 1);
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[0].document, Some(2));
        assert_eq!(bad[0].record.as_deref(), Some("recyclerequest/bad"));
        assert_eq!(bad[0].problems.len(), 3, "{:?}", bad[0].problems);
        assert!(bad[1].problems[0].contains("already defined by m.yaml document 1"));
    }
}
