//! How an AWS call that did not succeed is sorted: by what the operator
//! should do about it (try again later, wait, or fail the request with a
//! sentence), not by where it came from.

use std::time::Duration;

use aws_sdk_ecs::error::ProvideErrorMetadata;

use super::sdk;

/// An AWS call that did not succeed, sorted by what the operator should do.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AwsError {
    /// Throttled even after backing off: try again later; never fail a request for it.
    #[error("{action} was throttled: {message}")]
    Throttled { action: String, message: String },
    /// Timed out, unreachable or a server error: try again later.
    #[error("{action} did not answer in time: {message}")]
    Transient { action: String, message: String },
    /// AWS refused: denied, not found, invalid. Fails the request with this sentence.
    #[error("{action} was refused: {code}: {message}")]
    Refused {
        action: String,
        code: String,
        message: String,
    },
    /// Nothing came back in time, or no connection could be made; nothing
    /// says whether AWS acted. Try again later.
    #[error(
        "{action} got no answer from {endpoint} in {}: {cause}; check that {endpoint} is reachable from here (network, proxy, security groups, VPC endpoint, the AWS_ENDPOINT_URL_* variables), or raise --aws-attempt-timeout and --aws-operation-timeout",
        crate::duration::format(*waited)
    )]
    Unanswered {
        action: String,
        endpoint: String,
        waited: Duration,
        cause: String,
    },
    /// Not sent at all: this replica's lease on the record lapsed first.
    #[error("{action} was not sent: this replica's lease on the record lapsed")]
    NotSent { action: String },
    /// Not sent, and no token spent: the client-side bucket's turn for it
    /// would come only after the record's lease (or the call's deadline)
    /// ends, or a wait for it overran that end (a busy machine wakes late;
    /// the token went back). Try again once `wait` has passed.
    #[error(
        "{action} was not sent: its turn in the {category} bucket would come in {}, after this replica's lease on the record (or the call's deadline) ends",
        crate::duration::format(*wait)
    )]
    Deferred {
        action: String,
        category: &'static str,
        wait: Duration,
    },
}

impl AwsError {
    /// Worth trying again later (throttled, transient, unanswered), as opposed to refused.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Refused { .. } | Self::NotSent { .. })
    }

    /// Refused because the caller may not make the call (the role lacks
    /// it, or its credentials are not taken): a person can fix that, and
    /// the request waits for it rather than failing.
    pub fn is_denied(&self) -> bool {
        matches!(self, Self::Refused { code, .. } if DENIED_CODES.contains(&code.as_str()))
    }

    /// The IAM action of the call (`ecs:ListTasks`).
    pub fn action(&self) -> &str {
        match self {
            Self::Throttled { action, .. }
            | Self::Transient { action, .. }
            | Self::Refused { action, .. }
            | Self::Unanswered { action, .. }
            | Self::NotSent { action }
            | Self::Deferred { action, .. } => action,
        }
    }

    /// What a request's status says when a read of its service failed
    /// this way: what could not be seen of `target` (`c1/web`), why, and
    /// what to check.
    pub(crate) fn unseen(&self, target: &str) -> String {
        format!(
            "cannot see {} of {target}: {}",
            seen_by(self.action()),
            self.why_unseen()
        )
    }

    /// Why a read failed, and what to check, as a clause.
    pub(crate) fn why_unseen(&self) -> String {
        let action = self.action();
        match self {
            Self::Unanswered {
                endpoint,
                waited,
                cause,
                ..
            } => format!(
                "{action} got no answer from {endpoint} in {} ({}); check that the endpoint is reachable from the operator (VPC endpoint, proxy, security group) and that the role may call it",
                // Whole seconds: the sentence is said once, not rewritten as
                // each attempt's wait differs by milliseconds.
                crate::duration::format(Duration::from_secs(waited.as_secs().max(1))),
                clip(cause)
            ),
            Self::Refused { code, message, .. } if self.is_denied() => format!(
                "{action} was denied ({code}: {}); check that the operator's role (or the request's roleArn) allows {action}",
                clip(message)
            ),
            Self::Refused { code, message, .. } => {
                format!("{action} was refused ({code}: {})", clip(message))
            }
            Self::Throttled { message, .. } => format!(
                "{action} was throttled even after backing off ({}); the account's calls of this kind are over their share, and it tries again later",
                clip(message)
            ),
            Self::Transient { message, .. } => {
                format!("{action} failed ({}); it tries again", clip(message))
            }
            Self::NotSent { .. } | Self::Deferred { .. } => {
                format!("{}; it tries again", self)
            }
        }
    }
}

/// Codes AWS answers a call the caller may not make.
const DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
];

/// What a read of `action` shows of a service.
fn seen_by(action: &str) -> &'static str {
    match action.split_once(':').map_or(action, |(_, a)| a) {
        "DescribeServices" => "the service",
        "ListTasks" | "DescribeTasks" | "DescribeTaskDefinition" => "the tasks",
        "DescribeScalableTargets" => "the scalable target",
        "DescribeTargetHealth" | "DescribeTargetGroupAttributes" => "the targets",
        "DescribeAlarms" => "the gate alarms",
        "GetTaskProtection" => "the scale-in protection of the tasks",
        "ListContainerInstances" | "DescribeContainerInstances" | "DescribeCapacityProviders" => {
            "the capacity"
        }
        _ => "the service",
    }
}

/// AWS's words, kept short enough for a status.
fn clip(text: &str) -> String {
    const KEPT: usize = 200;
    match text.char_indices().nth(KEPT) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
];

const TRANSIENT_CODES: &[&str] = &["ServerException", "ServiceUnavailable", "InternalFailure"];

/// Sorts an SDK error: `action` names the IAM action, e.g. `ecs:StopTask`.
pub fn classify<E, R>(action: &str, err: aws_sdk_ecs::error::SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let action = action.to_string();
    match err.as_service_error() {
        Some(service_error) => {
            let code = service_error.code().unwrap_or("Unknown").to_string();
            let message = service_error.message().unwrap_or_default().to_string();
            if THROTTLING_CODES.contains(&code.as_str()) {
                AwsError::Throttled {
                    action,
                    message: format!("{code}: {message}"),
                }
            } else if TRANSIENT_CODES.contains(&code.as_str()) {
                AwsError::Transient {
                    action,
                    message: format!("{code}: {message}"),
                }
            } else {
                AwsError::Refused {
                    action,
                    code,
                    message,
                }
            }
        }
        None => {
            use aws_sdk_ecs::error::SdkError;
            let cause = match &err {
                SdkError::TimeoutError(_) => Some("timed out".to_string()),
                SdkError::DispatchFailure(f) if f.is_timeout() => {
                    Some("could not connect in time (--aws-connect-timeout)".to_string())
                }
                SdkError::DispatchFailure(f) if f.is_io() => Some(sdk::chain(&err)),
                _ => None,
            };
            match cause {
                // The endpoint and the time waited are filled in by `Clients::call`.
                Some(cause) => AwsError::Unanswered {
                    action,
                    endpoint: String::new(),
                    waited: Duration::ZERO,
                    cause,
                },
                None => AwsError::Transient {
                    action,
                    message: sdk::chain(&err),
                },
            }
        }
    }
}
