//! The infrastructure: the CloudFormation stacks deployed on moto, and the
//! role checked against the calls the code makes; the monitoring stack
//! checked against the metrics the code writes.

#[path = "../support/mod.rs"]
mod support;

mod monitoring;
mod moto;
