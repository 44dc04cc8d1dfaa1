//! The shell of hooks: makes one call of one hook — the JSON body, its
//! HMAC-SHA256 signature with the hook's secret (read from the operator's
//! environment or Secrets Manager, never from a record), the idempotency
//! key — inside the request's lease and the hook's timeout, and reads the
//! answer. It never decides: whatever happens becomes an [`Answer`] for the
//! status.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::decide::{Answer, Ask};
use super::spec::{Hook, SecretSource};
use super::{IDEMPOTENCY_HEADER, SIGNATURE_HEADER};
use crate::aws::sdk::{self, Timeouts};
use crate::duration;
use crate::fence::Fence;

/// How long a secret read from Secrets Manager is used before it is read again.
const SECRET_TTL: Duration = Duration::from_secs(300);
/// The answer to an inProgress without a retryAfter, and the shortest taken.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);
const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The longest answer body read: a verdict is a few words.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What the request is, for the body of a call.
pub(crate) struct About<'a> {
    pub request: &'a str,
    pub cluster: &'a str,
    pub service: &'a str,
    pub phase: &'a str,
}

pub(crate) struct Caller {
    http: reqwest::Client,
    secrets: aws_sdk_secretsmanager::Client,
    secrets_endpoint: String,
    timeouts: Timeouts,
    cache: tokio::sync::Mutex<HashMap<String, (tokio::time::Instant, String)>>,
}

impl Caller {
    pub(crate) fn new(sdk: &aws_config::SdkConfig) -> Arc<Self> {
        let http = reqwest::Client::builder()
            // A redirect could carry the call somewhere plain http or unchecked.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Arc::new(Self {
            http,
            secrets: aws_sdk_secretsmanager::Client::new(sdk),
            secrets_endpoint: sdk::SECRETS_MANAGER.endpoint(sdk),
            timeouts: Timeouts::of(sdk),
            cache: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Makes the call `ask` asks for, if `fence` still allows acting right
    /// before it is sent; `None` when it was not sent (the lease lapsed).
    pub(crate) async fn call(
        &self,
        hook: &Hook,
        about: &About<'_>,
        ask: &Ask,
        fence: &Fence,
    ) -> Option<Answer> {
        let secret = match self.secret(&hook.secret).await {
            Ok(s) => s,
            Err(error) => return fence.allows().then_some(Answer::Unanswered { error }),
        };
        let body = body(about, ask).to_string();
        if !fence.allows() {
            return None;
        }
        let send = self
            .http
            .post(&hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(&secret, body.as_bytes()))
            .header(IDEMPOTENCY_HEADER, &ask.key)
            .timeout(hook.timeout)
            .body(body)
            .send();
        let work = async {
            let answer = send.await.map_err(|e| reach_error(hook, e))?;
            let status = answer.status();
            let bytes = answer.bytes().await.map_err(|e| reach_error(hook, e))?;
            if !status.is_success() {
                return Err(format!("{} answered HTTP {status}", hook.label()));
            }
            read_answer(&bytes[..bytes.len().min(MAX_ANSWER_BYTES)]).map_err(|e| {
                format!(
                    "{} answered with a body that is not a verdict: {e}",
                    hook.label()
                )
            })
        };
        let answer = tokio::time::timeout(hook.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "{} gave no answer within {}",
                    hook.label(),
                    duration::format(hook.timeout)
                ))
            });
        Some(answer.unwrap_or_else(|error| Answer::Unanswered { error }))
    }

    /// The signing secret, as a sentence naming where it was looked for when it cannot be had.
    async fn secret(&self, source: &SecretSource) -> Result<String, String> {
        match source {
            SecretSource::Env(name) => std::env::var(name).ok().filter(|s| !s.is_empty()).ok_or_else(|| {
                format!("the hook's secret is not set: the operator has no environment variable {name}")
            }),
            SecretSource::SecretsManager(arn) => {
                let mut cache = self.cache.lock().await;
                if let Some((read_at, s)) = cache.get(arn)
                    && read_at.elapsed() < SECRET_TTL
                {
                    return Ok(s.clone());
                }
                let out = self
                    .secrets
                    .get_secret_value()
                    .secret_id(arn)
                    .send()
                    .await
                    .map_err(|e| {
                        let why = sdk::unanswered(
                            sdk::SECRETS_MANAGER,
                            "GetSecretValue",
                            &self.secrets_endpoint,
                            &self.timeouts,
                            &e,
                        )
                        .unwrap_or_else(|| aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string());
                        format!("the hook's secret {arn} could not be read: {why}")
                    })?;
                let text = out
                    .secret_string()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| format!("the hook's secret {arn} holds no text (SecretString)"))?
                    .to_string();
                cache.insert(arn.clone(), (tokio::time::Instant::now(), text.clone()));
                Ok(text)
            }
        }
    }
}

/// What a hook is told about the point it is asked at.
fn body(about: &About, ask: &Ask) -> Value {
    json!({
        "idempotencyKey": ask.key,
        "request": about.request,
        "cluster": about.cluster,
        "service": about.service,
        "phase": about.phase,
        "point": ask.point.as_str(),
        "batch": ask.batch,
        "attempt": ask.attempt,
        "tasks": ask.tasks,
        "replacements": ask.replacements,
        "desiredCount": ask.desired,
    })
}

/// `sha256=<hex>`: HMAC-SHA256 of the body with the secret.
pub(crate) fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Verdict {
    status: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    retry_after: Option<String>,
}

/// A hook's answer body: `{"status": "succeeded" | "failed" | "inProgress", "message", "retryAfter"}`.
fn read_answer(bytes: &[u8]) -> Result<Answer, String> {
    let v: Verdict = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let message = crate::message::bounded(v.message);
    match v.status.as_str() {
        "succeeded" => Ok(Answer::Succeeded { message }),
        "failed" => Ok(Answer::Failed { message }),
        "inProgress" => {
            let retry_after = match v.retry_after.as_deref() {
                None => DEFAULT_RETRY_AFTER,
                Some(t) => duration::parse(t)?,
            };
            Ok(Answer::InProgress {
                message,
                retry_after: retry_after.max(MIN_RETRY_AFTER),
            })
        }
        other => Err(format!(
            "status {other:?} is none of succeeded, failed, inProgress"
        )),
    }
}

fn reach_error(hook: &Hook, e: reqwest::Error) -> String {
    let timed_out = e.is_timeout();
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if timed_out {
        format!(
            "{} gave no answer within {}",
            hook.label(),
            duration::format(hook.timeout)
        )
    } else {
        format!("{} could not be reached: {text}", hook.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body_and_a_tampered_body_does_not_match() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let body = br#"{"batch":3,"point":"beforeBatch"}"#;
        assert_ne!(
            signature("s3cret", body),
            signature("s3cret", br#"{"batch":4,"point":"beforeBatch"}"#)
        );
        assert_ne!(signature("s3cret", body), signature("other", body));
    }

    #[tokio::test]
    async fn nothing_is_sent_once_the_lease_has_lapsed_and_a_refused_connection_is_no_verdict() {
        use super::super::spec::{OnTimeout, Point};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        drop(listener);
        let hook = Hook {
            url,
            at: vec![Point::BeforeBatch],
            // Any variable the test process has will do as a key.
            secret: SecretSource::Env("PATH".into()),
            timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(10),
            on_timeout: OnTimeout::Fail,
        };
        let about = About {
            request: "rotate",
            cluster: "prod",
            service: "web",
            phase: "Recycling",
        };
        let ask = Ask {
            hook: 0,
            point: Point::BeforeBatch,
            batch: 1,
            key: "rotate/x/beforeBatch/1/0".into(),
            attempt: 1,
            tasks: vec![],
            replacements: vec![],
            desired: 3,
        };
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let caller = Caller::new(&sdk);
        let lapsed = Fence::new();
        assert_eq!(caller.call(&hook, &about, &ask, &lapsed).await, None);
        let held = Fence::new();
        held.extend(tokio::time::Instant::now() + Duration::from_secs(60));
        match caller.call(&hook, &about, &ask, &held).await {
            Some(Answer::Unanswered { error }) => {
                assert!(
                    error.starts_with("hook 127.0.0.1 could not be reached"),
                    "{error}"
                );
                assert!(!error.contains("/hook"), "never the URL's path: {error}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn answers_read_as_verdicts() {
        assert_eq!(
            read_answer(br#"{"status":"inProgress","message":"smoke","retryAfter":"5s"}"#),
            Ok(Answer::InProgress {
                message: "smoke".into(),
                retry_after: Duration::from_secs(5)
            })
        );
        assert_eq!(
            read_answer(br#"{"status":"inProgress"}"#),
            Ok(Answer::InProgress {
                message: String::new(),
                retry_after: DEFAULT_RETRY_AFTER
            })
        );
        assert_eq!(
            read_answer(br#"{"status":"failed","message":"5xx"}"#),
            Ok(Answer::Failed {
                message: "5xx".into()
            })
        );
        assert!(
            read_answer(br#"{"status":"ok"}"#)
                .unwrap_err()
                .contains("none of succeeded")
        );
        assert!(read_answer(b"<html>").is_err());
    }
}
