//! ECS's events, read from the SQS queue an EventBridge rule on `aws.ecs`
//! fills (`--events-queue`): the queue's two calls — a bounded long poll
//! for up to 10 messages, and one batched delete of what was handled —
//! how a message reads as an event ([`parse`]), and which events were
//! handled already ([`ledger`]).
//!
//! The one thing to know: the client is made from the operator's one SDK
//! configuration ([`super::sdk`]), so both calls have its deadlines, and
//! the long poll waits at most half an attempt's deadline (and never more
//! than SQS's 20 s): a poll that finds nothing answers well before the
//! deadline would call it unanswered. SQS is reached the standard way
//! (`AWS_ENDPOINT_URL_SQS` points it elsewhere).

pub(crate) mod ledger;
pub(crate) mod parse;

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_ecs::error::SdkError;

use super::error::{AwsError, classify};
use super::sdk::{self, Timeouts};
use crate::metrics::Metrics;

/// SQS's longest long poll.
const LONGEST_WAIT: Duration = Duration::from_secs(20);
/// SQS's most messages a call.
const MOST_MESSAGES: i32 = 10;

/// One message received: its body, and the handle that deletes it.
pub(crate) struct Message {
    pub body: String,
    pub receipt: String,
}

/// The queue ECS's events arrive on.
pub(crate) struct EventQueue {
    sqs: aws_sdk_sqs::Client,
    url: String,
    endpoint: String,
    timeouts: Timeouts,
}

impl EventQueue {
    /// The queue at `url`, reached with `sdk` (which should come from
    /// [`sdk::load`], so that every call has its deadlines). The SDK's
    /// retries are off: a queue that does not answer is known at its first
    /// attempt's deadline, well inside a lease, and the feed's own loop
    /// tries again.
    pub(crate) fn new(sdk: &SdkConfig, url: String) -> Self {
        let config = aws_sdk_sqs::config::Builder::from(sdk)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        Self {
            sqs: aws_sdk_sqs::Client::from_conf(config),
            url,
            endpoint: sdk::SQS.endpoint(sdk),
            timeouts: Timeouts::of(sdk),
        }
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The account that owns the queue, from its URL
    /// (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`), if it says.
    pub(crate) fn account(&self) -> Option<String> {
        let path = self.url.split_once("://")?.1.split_once('/')?.1;
        let account = path.split('/').next()?;
        (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
            .then(|| account.to_string())
    }

    /// How long a poll waits for a message: half an attempt's deadline in
    /// whole seconds, at most 20 s; zero (SQS answers at once) when an
    /// attempt is shorter than two seconds.
    pub(crate) fn wait(&self) -> Duration {
        let half = Duration::from_secs(self.timeouts.attempt.as_secs() / 2);
        half.min(LONGEST_WAIT)
    }

    /// Up to 10 messages, waiting up to [`EventQueue::wait`] for the first.
    pub(crate) async fn receive(&self, metrics: &Metrics) -> Result<Vec<Message>, AwsError> {
        const ACTION: &str = "sqs:ReceiveMessage";
        let began = tokio::time::Instant::now();
        let answer = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(MOST_MESSAGES)
            .wait_time_seconds(self.wait().as_secs() as i32)
            .send()
            .await;
        let out = match answer {
            Ok(out) => out,
            Err(e) => return Err(self.failed(metrics, ACTION, began.elapsed(), e)),
        };
        metrics.aws_call(ACTION, "ok");
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                Some(Message {
                    receipt: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                })
            })
            .collect())
    }

    /// Deletes the messages handled (at most 10, one call); answers how
    /// many SQS did not delete (they come back, and are known as copies).
    pub(crate) async fn delete(
        &self,
        metrics: &Metrics,
        receipts: Vec<String>,
    ) -> Result<usize, AwsError> {
        const ACTION: &str = "sqs:DeleteMessage";
        if receipts.is_empty() {
            return Ok(0);
        }
        let entries: Vec<_> = receipts
            .into_iter()
            .enumerate()
            .filter_map(|(i, receipt)| {
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .ok()
            })
            .collect();
        let began = tokio::time::Instant::now();
        let answer = self
            .sqs
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await;
        match answer {
            Ok(out) => {
                metrics.aws_call(ACTION, "ok");
                Ok(out.failed.len())
            }
            Err(e) => Err(self.failed(metrics, ACTION, began.elapsed(), e)),
        }
    }

    /// A call that failed, sorted and counted; one that got no answer says
    /// where it went and how long it waited.
    fn failed<E, R>(
        &self,
        metrics: &Metrics,
        action: &str,
        waited: Duration,
        e: SdkError<E, R>,
    ) -> AwsError
    where
        E: aws_sdk_ecs::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let error = match classify(action, e) {
            AwsError::Unanswered { action, cause, .. } => AwsError::Unanswered {
                action,
                endpoint: self.endpoint.clone(),
                waited,
                cause,
            },
            other => other,
        };
        let outcome = match &error {
            AwsError::Throttled { .. } => "throttled",
            AwsError::Refused { .. } => "refused",
            AwsError::Unanswered { .. } => "unanswered",
            _ => "transient",
        };
        metrics.aws_call(action, outcome);
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(url: &str, attempt: Duration) -> EventQueue {
        let sdk = sdk::with_timeouts(
            &SdkConfig::builder()
                .region(aws_config::Region::new("us-east-1"))
                .behavior_version(aws_config::BehaviorVersion::latest())
                .build(),
            Timeouts {
                attempt,
                ..Timeouts::default()
            },
        );
        EventQueue::new(&sdk, url.into())
    }

    #[test]
    fn the_poll_waits_well_inside_an_attempt_and_never_past_sqs_limit() {
        let url = "https://sqs.us-east-1.amazonaws.com/123456789012/ecs-events";
        assert_eq!(
            queue(url, Duration::from_secs(10)).wait(),
            Duration::from_secs(5)
        );
        assert_eq!(
            queue(url, Duration::from_secs(60)).wait(),
            Duration::from_secs(20)
        );
        assert_eq!(
            queue(url, Duration::from_millis(1500)).wait(),
            Duration::ZERO,
            "no whole second fits: SQS answers at once"
        );
    }

    #[test]
    fn the_queue_url_names_its_account() {
        let t = Duration::from_secs(10);
        assert_eq!(
            queue(
                "https://sqs.us-east-1.amazonaws.com/123456789012/ecs-events",
                t
            )
            .account()
            .as_deref(),
            Some("123456789012")
        );
        assert_eq!(
            queue("http://127.0.0.1:5000/123456789012/q", t)
                .account()
                .as_deref(),
            Some("123456789012")
        );
        assert_eq!(queue("http://127.0.0.1:5000/q", t).account(), None);
    }
}
