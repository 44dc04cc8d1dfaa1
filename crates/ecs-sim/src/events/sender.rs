//! Sends the feed's events to an SQS queue in the background, with the
//! official aws-sdk-sqs client, so the scheduler never waits on SQS: events
//! go through a bounded queue (a full one loses the event, counted), and
//! each SendMessageBatch has a deadline (a queue that does not answer in
//! time loses that batch, counted as failed).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

/// Events waiting for the sender at most; more are lost (`overflowed`).
pub const QUEUE: usize = 1024;

/// How long one SendMessageBatch may take.
const DEADLINE: Duration = Duration::from_secs(3);

/// What the sender did, shared with the world that reports it.
#[derive(Debug, Default)]
pub struct Sent {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
}

/// The handle of a running sender; dropping it ends the sender.
pub struct Sender {
    pub queue: mpsc::Sender<String>,
    pub sent: Arc<Sent>,
}

/// Starts a sender to `queue_url` (its scheme, host and port are the SQS
/// endpoint) on the current Tokio runtime.
pub fn start(queue_url: &str, region: &str) -> Result<Sender, String> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        "events: the simulator must run inside a Tokio runtime to send events".to_string()
    })?;
    let endpoint = endpoint_of(queue_url)?;
    let (queue, mut receiver) = mpsc::channel::<String>(QUEUE);
    let sent = Arc::new(Sent::default());
    let counts = sent.clone();
    let (url, region) = (queue_url.to_string(), region.to_string());
    runtime.spawn(async move {
        let client = client(&endpoint, &region).await;
        while let Some(first) = receiver.recv().await {
            let mut batch = vec![first];
            while batch.len() < 10 {
                match receiver.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            let n = batch.len() as u64;
            match tokio::time::timeout(DEADLINE, send(&client, &url, batch)).await {
                Ok(Ok(ok)) => {
                    counts.sent.fetch_add(ok, Ordering::Relaxed);
                    counts.failed.fetch_add(n - ok, Ordering::Relaxed);
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, queue = %url, "events not sent to SQS");
                    counts.failed.fetch_add(n, Ordering::Relaxed);
                }
                Err(_) => {
                    tracing::warn!(queue = %url, "SQS did not answer in time; events lost");
                    counts.failed.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
    });
    Ok(Sender { queue, sent })
}

/// `http://127.0.0.1:PORT/123456789012/q` → `http://127.0.0.1:PORT`.
fn endpoint_of(queue_url: &str) -> Result<String, String> {
    let (scheme, rest) = queue_url
        .split_once("://")
        .ok_or_else(|| format!("events.sqsQueueUrl: {queue_url:?} is not a URL like http://127.0.0.1:PORT/123456789012/ecs-events"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || !matches!(scheme, "http" | "https") {
        return Err(format!(
            "events.sqsQueueUrl: {queue_url:?} is not a URL like http://127.0.0.1:PORT/123456789012/ecs-events"
        ));
    }
    Ok(format!("{scheme}://{host}"))
}

/// An SQS client for a local stand-in: fixed test credentials, no retries
/// (a lost batch is the point of a fault, not something to hide).
async fn client(endpoint: &str, region: &str) -> aws_sdk_sqs::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "ecs-sim",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    aws_sdk_sqs::Client::new(&config)
}

/// Sends one batch; answers how many SQS took.
async fn send(client: &aws_sdk_sqs::Client, url: &str, batch: Vec<String>) -> Result<u64, String> {
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
    let entries = batch
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(body)
                .build()
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let out = client
        .send_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| format!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    Ok(out.successful().len() as u64)
}
