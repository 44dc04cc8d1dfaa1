//! The pure part of hooks: what a call under way looks like in the status,
//! and, from it and the time, whether a point of the run is passed, a call
//! is due, the run waits, or the run fails. No I/O, no clock of its own.
//!
//! A call is on record (`status.hook`, with its idempotency key) before it
//! is made, and its answer is recorded by the shell after it; a replica
//! that dies in between finds the call due and makes it again, with the
//! same key. So every call is made at least once, never skipped.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::record::with_message;
pub(crate) use super::record::{Answer, HookCall};
use super::spec::{Hook, OnTimeout, Point};
use crate::duration;

/// The longest pause between two calls that got no answer.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The first pause after a call that got no answer.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// What is asked of the shell: call hook `hook` for this point, under `key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ask {
    pub hook: usize,
    pub point: Point,
    pub batch: u32,
    pub key: String,
    pub attempt: u32,
    /// What the hook is told: the batch's tasks (to be stopped, or stopped),
    /// their replacements (afterBatch), the desired count. Filled in by the
    /// request's decision, which sees the service.
    pub tasks: Vec<String>,
    pub replacements: Vec<String>,
    pub desired: u32,
}

/// Where a point of the run stands with its hooks.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every hook of the point answered succeeded (or timed out with onTimeout: continue).
    Passed,
    /// A call is due now.
    Call(Ask),
    /// The run waits for a hook: until a later call, saying why.
    Wait { after: Duration, why: String },
    /// The run ends: a hook answered failed, or gave no verdict within its deadline.
    Fail(String),
}

/// The hooks' own part of a request's status, the only part the verdict
/// reads or changes: the call under way and the points already passed.
pub(crate) struct OnRecord<'a> {
    /// The call under way (`status.hook`).
    pub call: &'a mut Option<HookCall>,
    /// The points passed, as `point/batch/hook` (`status.hooksPassed`).
    pub passed: &'a mut Vec<String>,
    /// When the run started: part of every idempotency key.
    pub run_started: Option<DateTime<Utc>>,
}

/// A verdict, and what the hooks said on the way to it (an answer taken, a
/// deadline passed): each a sentence for the run's events.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Decided {
    pub verdict: Verdict,
    pub said: Vec<String>,
}

/// The short name of one point of one run's hook, kept in `status.hooksPassed`.
fn passed_name(point: Point, batch: u32, hook: usize) -> String {
    format!("{}/{batch}/{hook}", point.as_str())
}

/// Decides the hooks of `point` (for `batch`) from what is on record and
/// the time, updating the record: a call that is due is put on record
/// before it is asked for, an answer is turned into the next call's due
/// time, a passed hook into the points passed.
pub(crate) fn verdict(
    hooks: &[Hook],
    request: &str,
    record: &mut OnRecord<'_>,
    point: Point,
    batch: u32,
    now: DateTime<Utc>,
) -> Decided {
    let mut said = Vec::new();
    let verdict = decide_point(hooks, request, record, point, batch, now, &mut said);
    Decided { verdict, said }
}

fn decide_point(
    hooks: &[Hook],
    request: &str,
    record: &mut OnRecord<'_>,
    point: Point,
    batch: u32,
    now: DateTime<Utc>,
    said: &mut Vec<String>,
) -> Verdict {
    for (index, hook) in hooks.iter().enumerate() {
        if !hook.at.contains(&point) {
            continue;
        }
        let passed = passed_name(point, batch, index);
        if record.passed.contains(&passed) {
            continue;
        }
        let call = match record.call.take() {
            Some(c) if c.hook == index && c.point == point && c.batch == batch => c,
            _ => HookCall {
                hook: index,
                point,
                batch,
                key: idempotency_key(request, record.run_started, &passed),
                since: now,
                attempts: 0,
                due: Some(now),
                answer: None,
            },
        };
        match decide_hook(hook, call, now, said, record.call) {
            None => record.passed.push(passed),
            Some(verdict) => return verdict,
        }
    }
    Verdict::Passed
}

/// One hook at one point: the answer on record taken, its deadline kept,
/// its next call made due. `None` when it passed (the next hook of the
/// point is asked); else the verdict, with the call put on record in `slot`.
fn decide_hook(
    hook: &Hook,
    mut call: HookCall,
    now: DateTime<Utc>,
    said: &mut Vec<String>,
    slot: &mut Option<HookCall>,
) -> Option<Verdict> {
    let at = at_point(hook, call.point, call.batch);
    if call.due.is_none() {
        match &call.answer {
            Some(Answer::Succeeded { message }) => {
                said.push(format!(
                    "{at} answered {}",
                    with_message("succeeded", message)
                ));
                return None;
            }
            Some(Answer::Failed { message }) => {
                let why = format!("{at} answered {}", with_message("failed", message));
                said.push(why.clone());
                *slot = Some(call);
                return Some(Verdict::Fail(why));
            }
            Some(Answer::InProgress { retry_after, .. }) => {
                call.due = Some(now + chrono::Duration::from_std(*retry_after).unwrap_or_default());
            }
            Some(Answer::Unanswered { .. }) => {
                call.due = Some(
                    now + chrono::Duration::from_std(backoff(call.attempts)).unwrap_or_default(),
                );
            }
            None => call.due = Some(now),
        }
    }
    let end = call.since + chrono::Duration::from_std(hook.deadline).unwrap_or_default();
    let due = call.due.unwrap_or(now);
    let last = call
        .answer
        .as_ref()
        .map(|a| format!("; last: {}", a.describe()))
        .unwrap_or_default();
    // A hook never asked is asked once before its deadline may end the
    // point: a replica stopped or a store stalled past the deadline is not
    // the hook's silence.
    if now >= end && call.attempts > 0 {
        let why = format!(
            "{at} gave no verdict within its deadline of {} ({} calls{last})",
            duration::format(hook.deadline),
            call.attempts
        );
        return match hook.on_timeout {
            OnTimeout::Fail => {
                said.push(why.clone());
                *slot = Some(call);
                Some(Verdict::Fail(why))
            }
            OnTimeout::Continue => {
                said.push(format!("{why}; going on (onTimeout: continue)"));
                None
            }
        };
    }
    if now >= due {
        let ask = Ask {
            hook: call.hook,
            point: call.point,
            batch: call.batch,
            key: call.key.clone(),
            attempt: call.attempts + 1,
            tasks: Vec::new(),
            replacements: Vec::new(),
            desired: 0,
        };
        *slot = Some(call);
        return Some(Verdict::Call(ask));
    }
    // Look again when the call is due, or when the deadline ends first.
    let after = (due.min(end) - now).to_std().unwrap_or_default();
    let why = format!(
        "waiting for {at}: next call at {}{last}",
        due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    *slot = Some(call);
    Some(Verdict::Wait { after, why })
}

/// Records the outcome of the call made for `key` in the call on record
/// (`status.hook`); the next decision acts on it.
pub(crate) fn record(on_record: &mut Option<HookCall>, key: &str, answer: Answer) {
    if let Some(call) = on_record.as_mut().filter(|c| c.key == key) {
        call.attempts += 1;
        call.due = None;
        call.answer = Some(answer);
    }
}

/// The pause after the `attempts`-th call that got no answer: 1s doubling to 30s.
fn backoff(attempts: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1)))
        .min(MAX_BACKOFF)
}

/// Stable for one point of one run: the request, when its run started, the
/// point, the batch and which hook.
fn idempotency_key(request: &str, run_started: Option<DateTime<Utc>>, passed: &str) -> String {
    let run = run_started
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    format!("{request}/{run}/{passed}")
}

/// "hook smoke.example.com at beforeBatch of batch 3", as messages say it.
pub(crate) fn at_point(hook: &Hook, point: Point, batch: u32) -> String {
    match point {
        Point::BeforeBatch | Point::AfterBatch => {
            format!("{} at {} of batch {batch}", hook.label(), point.as_str())
        }
        _ => format!("{} at {}", hook.label(), point.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::spec::SecretSource;

    fn hook(on_timeout: OnTimeout) -> Hook {
        Hook {
            url: "https://smoke.example.com/recycle".into(),
            at: vec![Point::BeforeBatch, Point::AfterBatch],
            secret: SecretSource::Env("S".into()),
            timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(600),
            on_timeout,
        }
    }

    fn t(secs: i64) -> DateTime<Utc> {
        "2026-12-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::seconds(secs)
    }

    /// The hooks' part of a status.
    #[derive(Clone, Default)]
    struct State {
        call: Option<HookCall>,
        passed: Vec<String>,
        started: Option<DateTime<Utc>>,
    }

    fn decided(hooks: &[Hook], s: &mut State, point: Point, now: DateTime<Utc>) -> Decided {
        let mut on_record = OnRecord {
            call: &mut s.call,
            passed: &mut s.passed,
            run_started: s.started,
        };
        verdict(hooks, "web", &mut on_record, point, 3, now)
    }

    fn call(hooks: &[Hook], s: &mut State, now: DateTime<Utc>) -> Verdict {
        decided(hooks, s, Point::BeforeBatch, now).verdict
    }

    #[test]
    fn a_call_is_on_record_before_it_is_made_and_made_again_until_answered() {
        let hooks = [hook(OnTimeout::Fail)];
        let mut s = State {
            started: Some(t(0)),
            ..Default::default()
        };
        let Verdict::Call(ask) = call(&hooks, &mut s, t(1)) else {
            panic!("a call is due");
        };
        assert_eq!(ask.key, "web/2026-12-01T10:00:00.000Z/beforeBatch/3/0");
        assert_eq!(
            s.call.as_ref().unwrap().key,
            ask.key,
            "on record before the call"
        );
        // A crash before the answer is recorded: the next look calls again, same key.
        let Verdict::Call(again) = call(&hooks, &mut s.clone(), t(30)) else {
            panic!("called again");
        };
        assert_eq!(again.key, ask.key);
        record(
            &mut s.call,
            &ask.key,
            Answer::Succeeded {
                message: String::new(),
            },
        );
        assert_eq!(
            decided(&hooks, &mut s, Point::BeforeBatch, t(2)),
            Decided {
                verdict: Verdict::Passed,
                said: vec![
                    "hook smoke.example.com at beforeBatch of batch 3 answered succeeded".into()
                ],
            },
            "the answer is said once, for the run's events"
        );
        assert_eq!(s.passed, ["beforeBatch/3/0"]);
        assert_eq!(
            call(&hooks, &mut s, t(3)),
            Verdict::Passed,
            "asked once per point"
        );
        assert!(matches!(
            decided(&hooks, &mut s, Point::AfterBatch, t(4)).verdict,
            Verdict::Call(_)
        ));
    }

    #[test]
    fn in_progress_waits_its_retry_after_and_failed_fails_with_the_message() {
        let hooks = [hook(OnTimeout::Fail)];
        let mut s = State::default();
        let Verdict::Call(ask) = call(&hooks, &mut s, t(0)) else {
            panic!()
        };
        record(
            &mut s.call,
            &ask.key,
            Answer::InProgress {
                message: "smoke running".into(),
                retry_after: Duration::from_secs(30),
            },
        );
        let Verdict::Wait { after, why } = call(&hooks, &mut s, t(1)) else {
            panic!()
        };
        assert_eq!(after, Duration::from_secs(30));
        assert!(why.contains("inProgress: smoke running"), "{why}");
        assert!(matches!(call(&hooks, &mut s, t(20)), Verdict::Wait { .. }));
        let Verdict::Call(ask) = call(&hooks, &mut s, t(31)) else {
            panic!()
        };
        assert_eq!(ask.attempt, 2);
        record(
            &mut s.call,
            &ask.key,
            Answer::Failed {
                message: "5xx rate 12%".into(),
            },
        );
        assert_eq!(
            call(&hooks, &mut s, t(32)),
            Verdict::Fail(
                "hook smoke.example.com at beforeBatch of batch 3 answered failed: 5xx rate 12%"
                    .into()
            )
        );
    }

    #[test]
    fn no_answer_is_retried_with_backoff_until_the_deadline_then_on_timeout_decides() {
        for (on_timeout, passes) in [(OnTimeout::Fail, false), (OnTimeout::Continue, true)] {
            let hooks = [hook(on_timeout)];
            let mut s = State::default();
            let mut now = t(0);
            let mut calls = 0;
            let end = loop {
                match call(&hooks, &mut s, now) {
                    Verdict::Call(ask) => {
                        calls += 1;
                        now += chrono::Duration::seconds(10);
                        record(
                            &mut s.call,
                            &ask.key,
                            Answer::Unanswered {
                                error: "no answer within 10s".into(),
                            },
                        );
                    }
                    Verdict::Wait { after, .. } => {
                        now += chrono::Duration::from_std(after).unwrap()
                    }
                    v => break v,
                }
            };
            assert!(calls > 10 && calls < 40, "{calls} calls in 10m");
            assert!(
                now >= t(600) && now < t(615),
                "decided at the deadline: {now}"
            );
            if passes {
                assert_eq!(end, Verdict::Passed);
            } else {
                let Verdict::Fail(why) = end else { panic!() };
                assert!(
                    why.contains("gave no verdict within its deadline of 10m"),
                    "{why}"
                );
                assert!(
                    why.contains("last: no answer: no answer within 10s"),
                    "{why}"
                );
            }
        }
    }

    #[test]
    fn backoff_doubles_to_thirty_seconds() {
        let b: Vec<u64> = (1..8).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(b, [1, 2, 4, 8, 16, 30, 30]);
    }

    /// Found by the fault campaign (seed 2124): the only replica stopped and
    /// the store stalled past a hook's deadline, the point timed out with
    /// "0 calls". A hook never asked is asked once before it may time out.
    #[test]
    fn a_hook_never_asked_is_asked_once_before_its_deadline_ends_the_point() {
        let hooks = [hook(OnTimeout::Fail)];
        let mut s = State {
            started: Some(t(0)),
            ..Default::default()
        };
        let Verdict::Call(ask) = call(&hooks, &mut s, t(1)) else {
            panic!("a call is due");
        };
        // The call on record was never made: long past the deadline, it is made.
        let Verdict::Call(again) = call(&hooks, &mut s, t(1 + 3600)) else {
            panic!("asked once before timing out");
        };
        assert_eq!(again.key, ask.key);
        record(
            &mut s.call,
            &ask.key,
            Answer::Unanswered {
                error: "connection refused".into(),
            },
        );
        let Verdict::Fail(why) = call(&hooks, &mut s, t(1 + 3601)) else {
            panic!("unanswered past the deadline: the point fails");
        };
        assert!(why.contains("(1 calls; last:"), "{why}");
    }
}
