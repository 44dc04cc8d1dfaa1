//! How every AWS client is made: the SDK configuration from the standard
//! chain (credentials, `AWS_REGION`, `AWS_PROFILE`, the per-service
//! `AWS_ENDPOINT_URL_*` variables) with the operator's three deadlines on
//! every call, and the sentence a person reads when a call gets no answer.
//!
//! The one thing to know before touching it: no client may be built from
//! a configuration that did not come from [`load`], or its calls can wait
//! forever on a half-open connection. The deadlines live on the
//! [`SdkConfig`](aws_config::SdkConfig), so every client made from it
//! (DynamoDB, ECS, Application Auto Scaling, CloudWatch, SNS, Secrets
//! Manager, SQS for ECS's events, and STS for assumed roles) inherits them.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ecs::error::SdkError;

use crate::duration;

/// The deadlines of every AWS call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// To open a connection.
    pub connect: Duration,
    /// For one attempt: the request sent and the answer read.
    pub attempt: Duration,
    /// For the whole call, every attempt and the pauses between them.
    pub operation: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(3),
            attempt: Duration::from_secs(10),
            operation: Duration::from_secs(30),
        }
    }
}

impl Timeouts {
    /// Flag-named reasons why these deadlines cannot be used.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (flag, value) in [
            ("--aws-connect-timeout", self.connect),
            ("--aws-attempt-timeout", self.attempt),
            ("--aws-operation-timeout", self.operation),
        ] {
            if value.is_zero() {
                out.push(format!("{flag} must be longer than 0s"));
            }
        }
        if self.attempt > self.operation {
            out.push(format!(
                "--aws-attempt-timeout ({}) must not be longer than --aws-operation-timeout ({}): one attempt is part of the call",
                duration::format(self.attempt),
                duration::format(self.operation)
            ));
        }
        if self.connect > self.attempt {
            out.push(format!(
                "--aws-connect-timeout ({}) must not be longer than --aws-attempt-timeout ({}): connecting is part of an attempt",
                duration::format(self.connect),
                duration::format(self.attempt)
            ));
        }
        out
    }

    /// The deadlines `sdk` carries (the defaults where it has none).
    pub fn of(sdk: &SdkConfig) -> Self {
        let d = Self::default();
        let t = sdk.timeout_config();
        Self {
            connect: t.and_then(|t| t.connect_timeout()).unwrap_or(d.connect),
            attempt: t
                .and_then(|t| t.operation_attempt_timeout())
                .unwrap_or(d.attempt),
            operation: t.and_then(|t| t.operation_timeout()).unwrap_or(d.operation),
        }
    }

    fn config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }
}

/// The SDK configuration of the standard chain, with `timeouts` on every call.
pub async fn load(timeouts: Timeouts) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts.config())
        .load()
        .await
}

/// `sdk` made some other way (for a local endpoint: the sandbox, the
/// benchmark), with `timeouts` on every call.
pub fn with_timeouts(sdk: &SdkConfig, timeouts: Timeouts) -> SdkConfig {
    sdk.to_builder().timeout_config(timeouts.config()).build()
}

/// One AWS service as the operator reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Service {
    /// As people say it: "DynamoDB".
    pub name: &'static str,
    /// The SDK's service id, which names its endpoint variable and profile key.
    sdk_id: &'static str,
    /// The first label of its default endpoint host.
    host: &'static str,
}

pub const DYNAMODB: Service = Service {
    name: "DynamoDB",
    sdk_id: "DynamoDB",
    host: "dynamodb",
};
pub const ECS: Service = Service {
    name: "ECS",
    sdk_id: "ECS",
    host: "ecs",
};
pub const AUTO_SCALING: Service = Service {
    name: "Application Auto Scaling",
    sdk_id: "Application Auto Scaling",
    host: "application-autoscaling",
};
pub const CLOUDWATCH: Service = Service {
    name: "CloudWatch",
    sdk_id: "CloudWatch",
    host: "monitoring",
};
pub const ELB: Service = Service {
    name: "Elastic Load Balancing",
    sdk_id: "Elastic Load Balancing v2",
    host: "elasticloadbalancing",
};
pub const SNS: Service = Service {
    name: "SNS",
    sdk_id: "SNS",
    host: "sns",
};
pub const SQS: Service = Service {
    name: "SQS",
    sdk_id: "SQS",
    host: "sqs",
};
pub const SECRETS_MANAGER: Service = Service {
    name: "Secrets Manager",
    sdk_id: "Secrets Manager",
    host: "secretsmanager",
};

impl Service {
    /// The variable that points this service elsewhere: `AWS_ENDPOINT_URL_DYNAMODB`.
    pub fn endpoint_variable(&self) -> String {
        format!(
            "AWS_ENDPOINT_URL_{}",
            self.sdk_id.to_ascii_uppercase().replace(' ', "_")
        )
    }

    /// Where the clients made from `sdk` send this service's calls, found
    /// the way the SDK finds it: the service's own endpoint variable or
    /// profile key, then the shared one, then AWS's regional endpoint.
    pub fn endpoint(&self, sdk: &SdkConfig) -> String {
        let key = aws_types::service_config::ServiceConfigKey::builder()
            .service_id(self.sdk_id)
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build();
        let configured = match (sdk.get_origin("endpoint_url").is_client_config(), key) {
            (true, _) | (_, Err(_)) => None,
            (false, Ok(key)) => sdk.service_config().and_then(|c| c.load_config(key)),
        };
        configured
            .or_else(|| sdk.endpoint_url().map(str::to_string))
            .unwrap_or_else(|| {
                let region = sdk.region().map_or("us-east-1", |r| r.as_ref());
                format!("https://{}.{region}.amazonaws.com", self.host)
            })
    }
}

/// Why a call got no answer from AWS (it was not refused: nothing came
/// back), as one sentence naming the service, the operation, the endpoint,
/// the time waited and what to check. `None` when AWS did answer.
pub fn unanswered<E, R>(
    service: Service,
    operation: &str,
    endpoint: &str,
    timeouts: &Timeouts,
    error: &SdkError<E, R>,
) -> Option<String>
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let check = format!(
        "check that {endpoint} is reachable from here (network, proxy, security groups, VPC endpoint, {}), or raise",
        service.endpoint_variable()
    );
    let name = service.name;
    let what = match error {
        SdkError::TimeoutError(_) => {
            let (waited, flag) = if chain(error).contains("all attempts") {
                (timeouts.operation, "--aws-operation-timeout")
            } else {
                (timeouts.attempt, "--aws-attempt-timeout")
            };
            format!(
                "{name} {operation} at {endpoint} did not answer within {}; {check} {flag}",
                duration::format(waited)
            )
        }
        SdkError::DispatchFailure(failure) if failure.is_timeout() => format!(
            "{name} {operation} could not connect to {endpoint} within {}; {check} --aws-connect-timeout",
            duration::format(timeouts.connect)
        ),
        SdkError::DispatchFailure(failure) if failure.is_io() => format!(
            "{name} {operation} could not reach {endpoint}: {}; check that the endpoint is right and listening",
            last_cause(error)
        ),
        SdkError::ServiceError(_) => return None,
        _ => format!("{name} {operation} at {endpoint} failed: {}", chain(error)),
    };
    Some(what)
}

/// The error and every cause under it, joined.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The innermost cause: the words of the operating system ("Connection refused").
fn last_cause(error: &dyn std::error::Error) -> String {
    let mut last = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_out_of_order_are_refused_naming_the_flags() {
        let t = Timeouts {
            connect: Duration::from_secs(20),
            attempt: Duration::from_secs(15),
            operation: Duration::from_secs(5),
        };
        let problems = t.problems().join("; ");
        assert!(
            problems.contains(
                "--aws-attempt-timeout (15s) must not be longer than --aws-operation-timeout (5s)"
            ),
            "{problems}"
        );
        assert!(
            problems.contains("--aws-connect-timeout (20s)"),
            "{problems}"
        );
        assert!(Timeouts::default().problems().is_empty());
        let zero = Timeouts {
            connect: Duration::ZERO,
            ..Timeouts::default()
        };
        assert_eq!(
            zero.problems(),
            ["--aws-connect-timeout must be longer than 0s"]
        );
    }

    #[test]
    fn the_endpoint_variable_is_the_sdks() {
        assert_eq!(
            AUTO_SCALING.endpoint_variable(),
            "AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING"
        );
        assert_eq!(
            SECRETS_MANAGER.endpoint_variable(),
            "AWS_ENDPOINT_URL_SECRETS_MANAGER"
        );
        assert_eq!(DYNAMODB.endpoint_variable(), "AWS_ENDPOINT_URL_DYNAMODB");
        assert_eq!(SQS.endpoint_variable(), "AWS_ENDPOINT_URL_SQS");
        assert_eq!(
            CLOUDWATCH.endpoint_variable(),
            "AWS_ENDPOINT_URL_CLOUDWATCH"
        );
        assert_eq!(
            ELB.endpoint_variable(),
            "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2"
        );
    }

    #[test]
    fn without_an_override_the_endpoint_is_the_regional_one() {
        let sdk = SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-1"))
            .build();
        assert_eq!(ECS.endpoint(&sdk), "https://ecs.eu-west-1.amazonaws.com");
        let sdk = SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        assert_eq!(ECS.endpoint(&sdk), "http://127.0.0.1:9");
    }
}
