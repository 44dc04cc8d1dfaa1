//! The store: the one contract both stores keep, and DynamoDB on moto.

#[path = "../support/mod.rs"]
mod support;

mod clauses;
mod contract;
mod dynamo;
