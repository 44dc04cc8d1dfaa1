//! The command line as a user runs it: the verbs against a store, manifests and
//! their golden errors, the schedule schemas, the simulator command, and the
//! dashboard in a real browser.

#[path = "../support/mod.rs"]
mod support;

mod dashboard;
mod emf;
mod manifests;
mod schedule_schemas;
mod sim;
mod verbs;
