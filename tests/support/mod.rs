//! Shared test support: what every crate's tests share comes from the
//! `test-support` crate (an in-process simulator with SDK clients pointed at
//! it, a raw HTTP helper, the pinned Python environment, and moto's server
//! as a DynamoDB, SNS and Secrets Manager stand-in, `support::moto` through
//! the re-export below, with the delaying proxy `support::proxy` and the
//! lifecycle hook receiver `support::lifecycle` the fault campaign uses
//! too); here are the operator's own: a real SMTP server ([`smtp`]), a
//! webhook receiver ([`hooks`]), enough of IAM's policy evaluation to
//! check a role against the calls of a run ([`iam`]), and a real headless
//! Chromium driven through its DevTools protocol ([`browser`]).
#![allow(dead_code)]

pub mod alarms;
pub mod browser;
pub mod hooks;
pub mod iam;
pub mod operator;
pub mod smtp;
pub mod stalled_store;

use std::path::PathBuf;

pub use test_support::*;

/// One of the Python scripts under `tests/py/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("py")
        .join(name)
}

/// Sends SIGTERM to a child process (as ECS or Ctrl-C would stop it).
pub fn terminate(child: &std::process::Child) {
    let pid = child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill -TERM {pid}");
}
