//! The simulator through its wire protocol and control API: ECS, Application
//! Auto Scaling, Elastic Load Balancing and services behind it, traffic,
//! EC2 capacity, task protection and Fargate Spot, ECS's events on SQS, the wire format checked
//! against botocore's models, and boto3's own waiters against it.

mod autoscaling;
mod boto3;
mod capacity;
mod ecs;
mod elb;
mod elb_boto3;
mod elb_services;
mod events;
mod protection;
mod shapes;
mod spot;
mod tags;
mod traffic;
mod wire;
