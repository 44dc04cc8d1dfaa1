//! The command line as a user runs it: the verbs against a store, manifests and
//! their golden errors, the schedule schemas, and the simulator command.

#[path = "../support/mod.rs"]
mod support;

mod manifests;
mod schedule_schemas;
mod sim;
mod verbs;
