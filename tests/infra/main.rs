//! The infrastructure: the CloudFormation stacks deployed on moto, and the
//! role checked against the calls the code makes.

#[path = "../support/mod.rs"]
mod support;

mod moto;
