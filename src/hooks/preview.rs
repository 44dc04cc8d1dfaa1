//! What the dry run says of a request's hooks: where each is called, at
//! which points and how often, what each call is told, where its signing
//! secret is read from (never the secret), and its timeout, deadline and
//! onTimeout.

use super::spec::{Hook, OnTimeout, Point, SecretSource};
use super::{IDEMPOTENCY_HEADER, SIGNATURE_HEADER};
use crate::duration;

/// The hooks section of `apply --dry-run`, for a run of `tasks` tasks in
/// `batches` batches.
pub(crate) fn render(hooks: &[Hook], tasks: usize, batches: usize) -> String {
    let mut out = String::new();
    for hook in hooks {
        let secret = match &hook.secret {
            SecretSource::Env(name) => format!("the operator's environment variable {name}"),
            SecretSource::SecretsManager(arn) => format!("Secrets Manager secret {arn}"),
        };
        let on_timeout = match hook.on_timeout {
            OnTimeout::Fail => "fail (Restoring → Failed)",
            OnTimeout::Continue => "continue",
        };
        out.push_str(&format!(
            "  Hook: POST {} ({}); signed {SIGNATURE_HEADER}: sha256=HMAC-SHA256(body) with {secret}; {IDEMPOTENCY_HEADER} per point\n    timeout {} a call, deadline {} a point, onTimeout: {on_timeout}\n",
            hook.url,
            hook.label(),
            duration::format(hook.timeout),
            duration::format(hook.deadline),
        ));
        for point in &hook.at {
            let asked = match point {
                Point::BeforeStart => {
                    format!("once, before anything is touched, told the {tasks} planned task(s)")
                }
                Point::BeforeBatch => format!(
                    "before each of the {batches} batch(es), told the task(s) about to be stopped"
                ),
                Point::AfterBatch => format!(
                    "after each of the {batches} batch(es) is serving, told the task(s) stopped and their replacements"
                ),
                Point::AfterEnd => {
                    "once the run has ended (capacity restored), whatever its outcome".to_string()
                }
            };
            out.push_str(&format!("    {}: asked {asked}\n", point.as_str()));
        }
    }
    if !hooks.is_empty() {
        out.push_str(
            "    The rehearsal above assumes every hook answers succeeded; a dry run calls none.\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_dry_run_lists_each_hook_its_points_and_never_the_secret() {
        let hook = Hook {
            url: "https://smoke.example.com/recycle".into(),
            at: vec![Point::BeforeBatch, Point::AfterBatch],
            secret: SecretSource::Env("SMOKE_HOOK_SECRET".into()),
            timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(600),
            on_timeout: OnTimeout::Fail,
        };
        let text = render(&[hook], 5, 3);
        for want in [
            "Hook: POST https://smoke.example.com/recycle (hook smoke.example.com)",
            "with the operator's environment variable SMOKE_HOOK_SECRET",
            "timeout 10s a call, deadline 10m a point, onTimeout: fail",
            "beforeBatch: asked before each of the 3 batch(es)",
            "afterBatch: asked after each of the 3 batch(es) is serving",
            "a dry run calls none",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
    }
}
