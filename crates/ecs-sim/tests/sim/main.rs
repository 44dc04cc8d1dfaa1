//! The simulator through its wire protocol and control API: ECS, Application
//! Auto Scaling, Elastic Load Balancing and services behind it, traffic,
//! the wire format, and boto3's own waiters against it.

mod autoscaling;
mod boto3;
mod ecs;
mod elb;
mod elb_boto3;
mod elb_services;
mod tags;
mod traffic;
mod wire;
