//! The helper CLI's shell: the flags every verb shares, opening the store
//! they name, and the errors a verb ends with — each a sentence for the
//! person and an exit code for their scripts. The verbs are in [`records`];
//! what they decide and print is in [`crate::cli::apply`], [`crate::request::preview`] and
//! [`crate::cli::present`].

pub(crate) mod apply;
pub mod chart;
pub(crate) mod manifest;
pub(crate) mod policies;
pub(crate) mod present;
pub mod records;

pub use crate::validate::is_record_name;
pub use apply::{Source, check};
pub use chart::Look;
pub use manifest::read_documents;
pub use present::describe_request;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::aws::sdk::{self, Timeouts};
use crate::duration;

use crate::store::StoreError;
use crate::store::any::AnyStore;
use crate::store::dynamo::DynamoStore;
use crate::store::embedded::EmbeddedStore;

/// Exit codes, documented in `--help` and docs/cli.md.
pub mod exit {
    pub const OK: u8 = 0;
    /// Bad flags, a manifest that cannot be read or is invalid, or a change a
    /// running request cannot take.
    pub const INVALID: u8 = 1;
    /// The store or AWS could not be reached, or refused (denied).
    pub const UNREACHABLE: u8 = 2;
    /// The named record does not exist.
    pub const NOT_FOUND: u8 = 3;
    /// The record kept changing under the command; run it again.
    pub const CONFLICT: u8 = 4;
    /// The sandbox's recycle did not succeed, or broke an invariant.
    pub const UNSUCCESSFUL: u8 = 5;
}

pub const EXIT_CODES_HELP: &str = "Exit codes: 0 done; 1 invalid input (flags, manifests, a change a running request cannot take); 2 the store or AWS unreachable or denied; 3 no such record; 4 the record kept changing, run again; 5 the sandbox's recycle did not succeed.";

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unsuccessful(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Invalid(_) => exit::INVALID,
            Self::Unreachable(_) => exit::UNREACHABLE,
            Self::NotFound(_) => exit::NOT_FOUND,
            Self::Conflict(_) => exit::CONFLICT,
            Self::Unsuccessful(_) => exit::UNSUCCESSFUL,
        }
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        let text = e.to_string();
        match e {
            StoreError::NotFound { .. } => Self::NotFound(text),
            StoreError::Conflict { .. }
            | StoreError::LeaseLost { .. }
            | StoreError::AlreadyExists { .. } => Self::Conflict(text),
            StoreError::Unavailable(_) | StoreError::Corrupt(_) => Self::Unreachable(text),
        }
    }
}

/// One line of a verb's answer. A closed pipe (`| head`) is not the verb's failure.
pub(crate) fn say(out: &mut dyn std::io::Write, text: impl AsRef<str>) {
    let _ = writeln!(out, "{}", text.as_ref());
}

/// The deadlines of every AWS call: the same flags for every verb and the operator.
#[derive(Args, Clone, Copy, Debug)]
pub struct AwsArgs {
    /// The longest wait to open a connection to an AWS endpoint.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = duration::parse, env = "ECS_RECYCLER_AWS_CONNECT_TIMEOUT")]
    pub aws_connect_timeout: Duration,
    /// The longest one attempt of an AWS call may take, answer included.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration::parse, env = "ECS_RECYCLER_AWS_ATTEMPT_TIMEOUT")]
    pub aws_attempt_timeout: Duration,
    /// The longest an AWS call may take, every attempt included.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration::parse, env = "ECS_RECYCLER_AWS_OPERATION_TIMEOUT")]
    pub aws_operation_timeout: Duration,
}

impl AwsArgs {
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: self.aws_connect_timeout,
            attempt: self.aws_attempt_timeout,
            operation: self.aws_operation_timeout,
        }
    }

    /// The SDK configuration of the standard chain with these deadlines,
    /// or why they cannot be used.
    pub async fn load(&self) -> Result<aws_config::SdkConfig, CliError> {
        let problems = self.timeouts().problems();
        if !problems.is_empty() {
            return Err(CliError::Invalid(problems.join("; ")));
        }
        Ok(sdk::load(self.timeouts()).await)
    }
}

/// Where records live: the same flags for every verb that reads or writes them.
#[derive(Args, Clone, Debug)]
pub struct StoreArgs {
    /// The DynamoDB table holding the records (the default store).
    #[arg(long, value_name = "NAME", env = "ECS_RECYCLER_TABLE")]
    pub table: Option<String>,
    /// Use the embedded store kept in this file instead (local use, the sandbox, tests).
    #[arg(long, value_name = "PATH", env = "ECS_RECYCLER_STORE")]
    pub store: Option<PathBuf>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

impl StoreArgs {
    /// Opens the store the flags name; `--store` wins over an inherited
    /// `ECS_RECYCLER_TABLE`, as a flag given on the command line should.
    pub async fn open(&self) -> Result<AnyStore, CliError> {
        match (&self.store, &self.table) {
            (Some(path), _) => EmbeddedStore::open(path)
                .map(AnyStore::Embedded)
                .map_err(|e| {
                    CliError::Unreachable(format!(
                        "cannot open the store at {}: {e}",
                        path.display()
                    ))
                }),
            (None, Some(table)) => {
                let sdk = self.aws.load().await?;
                Ok(AnyStore::Dynamo(DynamoStore::new(&sdk, table)))
            }
            (None, None) => Err(CliError::Invalid(
                "say where records live: --table NAME (or ECS_RECYCLER_TABLE) for DynamoDB, or --store PATH for a local file".into(),
            )),
        }
    }
}
