//! The AWS JSON 1.1 wire protocol as the simulator speaks it: typed errors in
//! the shapes AWS answers (`__type`, `message`, HTTP status), and request
//! parsing that turns any broken body into SerializationException.

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// An error answered to the client exactly as AWS would.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: &'static str,
    pub message: String,
    pub status: u16,
}

impl ApiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status: 400,
        }
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterException", message)
    }

    pub fn client(message: impl Into<String>) -> Self {
        Self::new("ClientException", message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new("ValidationException", message)
    }

    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new("SerializationException", message)
    }

    pub fn cluster_not_found() -> Self {
        Self::new("ClusterNotFoundException", "Cluster not found.")
    }

    pub fn service_not_found() -> Self {
        Self::new("ServiceNotFoundException", "Service not found.")
    }

    pub fn throttling() -> Self {
        Self::new("ThrottlingException", "Rate exceeded")
    }

    pub fn unknown_operation(target: &str) -> Self {
        Self::new(
            "UnknownOperationException",
            format!("Unknown operation {target:?}"),
        )
    }

    pub fn body(&self) -> Value {
        json!({"__type": self.code, "message": self.message})
    }
}

/// Parses a request body; an empty body is an empty request, as AWS takes it.
pub fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::serialization(format!("Request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::serialization(
            "Request body must be a JSON object",
        ));
    }
    Ok(value)
}

/// Reads a request into its typed shape; a field of the wrong type is a
/// SerializationException naming it, as AWS answers.
pub fn parse<T: DeserializeOwned>(body: &Value) -> Result<T, ApiError> {
    serde_json::from_value(body.clone()).map_err(|e| ApiError::serialization(e.to_string()))
}

/// A required member is missing: AWS answers with the service's own
/// validation error naming it.
pub fn required<T>(value: Option<T>, error: impl FnOnce() -> ApiError) -> Result<T, ApiError> {
    value.ok_or_else(error)
}
