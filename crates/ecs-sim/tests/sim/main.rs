//! The simulator through its wire protocol and control API: ECS, Application
//! Auto Scaling, the wire format, and boto3's own waiters against it.

mod autoscaling;
mod boto3;
mod ecs;
mod elb;
mod elb_boto3;
mod tags;
mod traffic;
mod wire;
