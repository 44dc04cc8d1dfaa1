//! The operator as a user runs it, against the simulator and a store: a run
//! end to end, faults, scale, DynamoDB, deadlines and fencing, schedules and
//! notifications, ECS's events. One binary, so the AWS SDK is linked once.

#[path = "../support/mod.rs"]
mod support;

mod bounded_fenced;
mod capacity;
mod dynamo;
mod embedded;
mod events;
mod faults;
mod gates;
mod hooks;
mod load_balancers;
mod notify;
mod policies;
mod protection;
mod scale;
mod schedules;
mod share;
mod spot;
mod strategies;
mod unseen;
mod work_sharing;
