//! Everything the benchmark takes from the operator's library, in one
//! place: the operator's loop and configuration, its AWS clients and rate
//! limits, its store trait and embedded store, and the SDK fixture the
//! sandbox uses too. When the library's surface moves, the benchmark's
//! imports of it change here alone.

use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};

pub use ecs_recycler::aws::limit::RateLimit;
pub use ecs_recycler::aws::sdk::{Timeouts, with_timeouts};
pub use ecs_recycler::aws::{AwsError, ClientPool};
pub use ecs_recycler::endpoints::{Vitals, http_get};
pub use ecs_recycler::metrics::Metrics;
pub use ecs_recycler::reconciler::{OperatorConfig, Reconciler};
pub use ecs_recycler::sandbox::fixture::{
    FixtureError, client_config, create_service, steady, wait_steady,
};
pub use ecs_recycler::store::embedded::EmbeddedStore;
pub use ecs_recycler::store::{
    Kind, Lease, STRAY, StatusWrite, Store, StoreError, StoreResult, StoredRecord, Stray,
};

/// An SDK error sorted as the operator sorts it, for the retry-modes
/// scenario's calls through the operator's client layer: a throttling or
/// server-error answer is tried again, any other answer is a refusal, no
/// answer is transient. The library keeps its own sorting (`aws::classify`)
/// to itself; were it public, this would be a `pub use` of it.
pub fn classify<E, R>(action: &str, err: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    const THROTTLING: &[&str] = &[
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
    ];
    const TRANSIENT: &[&str] = &["ServerException", "ServiceUnavailable", "InternalFailure"];
    let action = action.to_string();
    let Some(service_error) = err.as_service_error() else {
        return AwsError::Transient {
            action,
            message: err.to_string(),
        };
    };
    let code = service_error.code().unwrap_or("Unknown").to_string();
    let message = service_error.message().unwrap_or_default().to_string();
    if THROTTLING.contains(&code.as_str()) {
        AwsError::Throttled {
            action,
            message: format!("{code}: {message}"),
        }
    } else if TRANSIENT.contains(&code.as_str()) {
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
