//! The notifier: delivers the notices of request outboxes in background
//! tasks — email through an SMTP relay with STARTTLS (lettre), SNS
//! (aws-sdk-sns), webhooks (reqwest) — retrying each with jittered
//! exponential backoff (backon), and reports every attempt as a receipt for
//! the reconciler to fold into the request's status. It never makes the
//! reconciler wait; see the module above for why that keeps delivery safe
//! across crashes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::Utc;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::sync::Semaphore;

use super::config::{NotifyConfig, SmtpSettings};
use super::outbox::{Notice, NotifyState, Receipt, apply};
use super::{Channel, EmailChannel, SnsChannel, WebhookChannel, WebhookFormat, render};
use crate::aws::sdk::{self, Timeouts};
use crate::duration;
use crate::fence::Fence;

/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The longest one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Deliveries under way at once.
const CONCURRENT_DELIVERIES: usize = 8;
/// How long a secret read from Secrets Manager is used before it is read again.
const SECRET_TTL: Duration = Duration::from_secs(300);

/// Why one attempt failed, as a sentence for the status (never with a secret).
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
pub(crate) struct DeliveryError {
    text: String,
    /// Not attempted at all: the lease lapsed.
    not_sent: bool,
}

impl DeliveryError {
    fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            not_sent: false,
        }
    }
}

#[derive(Default)]
struct Pending {
    /// Notices being delivered, or delivered but not yet out of the persisted outbox.
    in_flight: HashSet<u64>,
    receipts: Vec<Receipt>,
}

pub(crate) struct Notifier {
    config: NotifyConfig,
    sns: aws_sdk_sns::Client,
    secrets: aws_sdk_secretsmanager::Client,
    http: reqwest::Client,
    /// Where SNS and Secrets Manager calls go, and their deadlines: for the
    /// sentence of a call that got no answer.
    sns_endpoint: String,
    secrets_endpoint: String,
    timeouts: Timeouts,
    secret_cache: tokio::sync::Mutex<Option<(tokio::time::Instant, SmtpSettings)>>,
    pending: Mutex<HashMap<String, Pending>>,
    limit: Arc<Semaphore>,
}

impl Notifier {
    pub(crate) fn new(config: NotifyConfig, sdk: &aws_config::SdkConfig) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            // A redirect could carry the report somewhere plain http or unchecked.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Arc::new(Self {
            config,
            sns: aws_sdk_sns::Client::new(sdk),
            secrets: aws_sdk_secretsmanager::Client::new(sdk),
            sns_endpoint: sdk::SNS.endpoint(sdk),
            secrets_endpoint: sdk::SECRETS_MANAGER.endpoint(sdk),
            timeouts: Timeouts::of(sdk),
            http,
            secret_cache: tokio::sync::Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            limit: Arc::new(Semaphore::new(CONCURRENT_DELIVERIES)),
        })
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock()
    }

    /// Starts delivering every notice of `state`'s outbox that is not under
    /// way already, each attempt only while `fence` allows it (the
    /// request's lease). Returns at once.
    pub(crate) fn submit(self: &Arc<Self>, request: &str, state: &NotifyState, fence: &Fence) {
        if state.outbox.is_empty() {
            return;
        }
        let mut pending = self.lock();
        let entry = pending.entry(request.to_string()).or_default();
        for notice in &state.outbox {
            if !entry.in_flight.insert(notice.id) {
                continue;
            }
            let me = self.clone();
            let request = request.to_string();
            let notice = notice.clone();
            let fence = fence.clone();
            tokio::spawn(async move { me.run(request, notice, fence).await });
        }
    }

    /// Folds the attempts reported so far into `state`; true if it changed.
    pub(crate) fn collect(&self, request: &str, state: &mut NotifyState) -> bool {
        self.lock()
            .get(request)
            .is_some_and(|p| apply(state, &p.receipts))
    }

    /// `state` was written: forget the receipts it holds and the notices it
    /// no longer has.
    pub(crate) fn persisted(&self, request: &str, state: &NotifyState) {
        let mut pending = self.lock();
        let Some(entry) = pending.get_mut(request) else {
            return;
        };
        let waiting = |id: u64| state.outbox.iter().find(|n| n.id == id);
        entry
            .receipts
            .retain(|r| waiting(r.notice).is_some_and(|n| r.attempt > n.attempts));
        entry.in_flight.retain(|id| waiting(*id).is_some());
        if entry.receipts.is_empty() && entry.in_flight.is_empty() {
            pending.remove(request);
        }
    }

    fn receipt(&self, request: &str, receipt: Receipt) {
        self.lock()
            .entry(request.to_string())
            .or_default()
            .receipts
            .push(receipt);
    }

    /// Delivers one notice, retrying; every attempt becomes a receipt. Once
    /// the lease lapses it stops, leaving the notice in the outbox (and no
    /// receipt) for whoever holds the request next.
    async fn run(self: Arc<Self>, request: String, notice: Notice, fence: Fence) {
        let Ok(_permit) = self.limit.clone().acquire_owned().await else {
            return;
        };
        let budget = self.config.attempts.saturating_sub(notice.attempts).max(1);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.backoff)
            .with_max_delay(MAX_BACKOFF)
            .with_max_times(budget as usize - 1)
            .with_jitter();
        let label = notice.channel.label();
        let mut attempt = notice.attempts;
        let result = (|| self.attempt(&notice, &fence))
            .retry(backoff)
            .when(|e: &DeliveryError| !e.not_sent)
            .notify(|e: &DeliveryError, after: Duration| {
                attempt += 1;
                tracing::warn!(request = %request, event = notice.event.as_str(), channel = %label, attempt, error = %e, "notification not delivered; trying again");
                self.receipt(
                    &request,
                    Receipt {
                        notice: notice.id,
                        attempt,
                        at: Utc::now(),
                        error: Some(format!(
                            "{e}; next attempt in {}",
                            duration::format(Duration::from_secs(after.as_secs().max(1)))
                        )),
                        done: false,
                    },
                );
            })
            .await;
        if result.as_ref().is_err_and(|e| e.not_sent) {
            tracing::info!(request = %request, event = notice.event.as_str(), channel = %label, "the lease lapsed: the notification is left for whoever holds the request next");
            if let Some(p) = self.lock().get_mut(&request) {
                p.in_flight.remove(&notice.id);
            }
            return;
        }
        attempt += 1;
        let error = match result {
            Ok(()) => {
                tracing::info!(request = %request, event = notice.event.as_str(), channel = %label, attempt, "notification delivered");
                None
            }
            Err(e) => {
                tracing::error!(request = %request, event = notice.event.as_str(), channel = %label, attempt, error = %e, "notification given up");
                Some(format!("{e}; given up after {attempt} attempts"))
            }
        };
        self.receipt(
            &request,
            Receipt {
                notice: notice.id,
                attempt,
                at: Utc::now(),
                error,
                done: true,
            },
        );
    }

    async fn attempt(&self, notice: &Notice, fence: &Fence) -> Result<(), DeliveryError> {
        if !fence.allows() {
            return Err(DeliveryError {
                text: "not sent: the lease on the request lapsed".into(),
                not_sent: true,
            });
        }
        let work = async {
            match &notice.channel {
                Channel::Email(c) => self.email(c, notice).await,
                Channel::Sns(c) => self.sns(c, notice).await,
                Channel::Webhook(c) => self.webhook(c, notice).await,
            }
        };
        tokio::time::timeout(ATTEMPT_TIMEOUT, work)
            .await
            .unwrap_or_else(|_| {
                Err(DeliveryError::new(format!(
                    "no answer within {}",
                    duration::format(ATTEMPT_TIMEOUT)
                )))
            })
    }

    /// The relay's settings: the flags, with the secret's fields over them.
    async fn smtp_settings(&self) -> Result<SmtpSettings, DeliveryError> {
        let Some(id) = &self.config.smtp_secret else {
            return Ok(self.config.smtp.clone());
        };
        let mut cache = self.secret_cache.lock().await;
        if let Some((read_at, s)) = cache.as_ref()
            && read_at.elapsed() < SECRET_TTL
        {
            return Ok(self.config.smtp.overlaid(s));
        }
        let out = self
            .secrets
            .get_secret_value()
            .secret_id(id)
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
                .unwrap_or_else(|| sdk_error(&e));
                DeliveryError::new(format!("the SMTP secret {id} could not be read: {why}"))
            })?;
        let text = out.secret_string().ok_or_else(|| {
            DeliveryError::new(format!("the SMTP secret {id} holds no text (SecretString)"))
        })?;
        let s = SmtpSettings::from_secret(text)
            .map_err(|e| DeliveryError::new(format!("the SMTP secret {id} {e}")))?;
        *cache = Some((tokio::time::Instant::now(), s.clone()));
        Ok(self.config.smtp.overlaid(&s))
    }

    async fn email(&self, c: &EmailChannel, notice: &Notice) -> Result<(), DeliveryError> {
        let s = self.smtp_settings().await?;
        if let Some(missing) = s.missing() {
            return Err(DeliveryError::new(format!(
                "email is not set up on this operator: it needs {missing}"
            )));
        }
        let (host, from) = (s.host.unwrap_or_default(), s.from.unwrap_or_default());
        let bad = |what: String| DeliveryError::new(what);
        let from: Mailbox = from
            .parse()
            .map_err(|e| bad(format!("the sender {from:?} is not an address: {e}")))?;
        let mut message = Message::builder()
            .from(from)
            .subject(render::email_subject(&c.subject_prefix, &notice.report));
        for to in &c.to {
            let mailbox: Mailbox = to
                .parse()
                .map_err(|e| bad(format!("{to:?} is not an address: {e}")))?;
            message = message.to(mailbox);
        }
        let message = message
            .header(ContentType::TEXT_PLAIN)
            .body(render::text_body(&notice.report))
            .map_err(|e| bad(format!("the email could not be made: {e}")))?;
        let mut tls = TlsParameters::builder(host.clone());
        if let Some(pem) = &self.config.smtp_ca {
            let cert = Certificate::from_pem(pem)
                .map_err(|e| bad(format!("the SMTP CA file cannot be used: {e}")))?;
            tls = tls.add_root_certificate(cert);
        }
        let tls = tls
            .build()
            .map_err(|e| bad(format!("TLS for {host} cannot be set up: {e}")))?;
        let port = s.port.unwrap_or(587);
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
            .map_err(|e| bad(format!("{host} cannot be used as a relay: {e}")))?
            .port(port)
            .tls(Tls::Required(tls))
            .timeout(Some(ATTEMPT_TIMEOUT));
        if let (Some(user), Some(password)) = (s.username, s.password) {
            transport = transport.credentials(Credentials::new(user, password));
        }
        transport
            .build()
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| bad(format!("the relay {host}:{port} refused the email: {e}")))
    }

    async fn sns(&self, c: &SnsChannel, notice: &Notice) -> Result<(), DeliveryError> {
        use aws_sdk_sns::types::MessageAttributeValue;
        let r = &notice.report;
        let attribute = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|e| DeliveryError::new(format!("an SNS attribute cannot be made: {e}")))
        };
        self.sns
            .publish()
            .topic_arn(&c.topic_arn)
            .subject(render::sns_subject(r))
            .message(render::text_body(r))
            // For subscription filter policies.
            .message_attributes("event", attribute(notice.event.as_str())?)
            .message_attributes("cluster", attribute(&r.cluster)?)
            .message_attributes("service", attribute(&r.service)?)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                let text = match sdk::unanswered(
                    sdk::SNS,
                    "Publish",
                    &self.sns_endpoint,
                    &self.timeouts,
                    &e,
                ) {
                    Some(why) => {
                        format!("the message for {} was not delivered: {why}", c.topic_arn)
                    }
                    None => format!(
                        "SNS refused the message for {}: {}",
                        c.topic_arn,
                        sdk_error(&e)
                    ),
                };
                DeliveryError::new(text)
            })
    }

    async fn webhook(&self, c: &WebhookChannel, notice: &Notice) -> Result<(), DeliveryError> {
        let body = match c.format {
            WebhookFormat::Json => render::webhook_json(&notice.report),
            WebhookFormat::Slack => render::slack_json(&notice.report),
        };
        let host = Channel::Webhook(c.clone()).label();
        let answer = self
            .http
            .post(&c.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                DeliveryError::new(format!(
                    "the {host} could not be reached: {}",
                    without_url(e)
                ))
            })?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError::new(format!("the {host} answered {status}")))
        }
    }
}

/// An AWS error as `Code: message`, or its whole chain when AWS sent none.
fn sdk_error<E, R>(e: &aws_sdk_sns::error::SdkError<E, R>) -> String
where
    E: aws_sdk_sns::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(s) if s.code().is_some() => format!(
            "{}: {}",
            s.code().unwrap_or_default(),
            s.message().unwrap_or_default()
        ),
        _ => aws_sdk_sns::error::DisplayErrorContext(e).to_string(),
    }
}

/// reqwest's error text names the URL, whose path may hold a token.
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
