//! EC2 capacity: container instances with the CPU and memory they
//! registered, capacity providers over simulated Auto Scaling groups with
//! ECS's managed scaling, and where each task of a service is placed. The
//! simple case stays simple: a cluster with no container instance and no
//! Auto Scaling group provider places every task at once, as Fargate does.

pub mod instances;
pub mod model;
pub mod placement;
pub mod providers;
pub mod scaling;

use serde_json::Value;

use crate::ecs::Result;
use crate::wire::parse;
use crate::world::World;

/// Answers the operations this module serves; `None` for any other.
pub fn handle(world: &mut World, op: &str, body: &Value, now: f64) -> Option<Result<Value>> {
    Some(match op {
        "RegisterContainerInstance" => parse(body).and_then(|r| instances::register(world, r, now)),
        "DeregisterContainerInstance" => {
            parse(body).and_then(|r| instances::deregister(world, r, now))
        }
        "ListContainerInstances" => parse(body).and_then(|r| instances::list(world, r)),
        "DescribeContainerInstances" => parse(body).and_then(|r| instances::describe(world, r)),
        "CreateCapacityProvider" => parse(body).and_then(|r| providers::create(world, r)),
        "DescribeCapacityProviders" => parse(body).and_then(|r| providers::describe(world, r)),
        "PutClusterCapacityProviders" => {
            parse(body).and_then(|r| providers::put_cluster(world, r, now))
        }
        _ => return None,
    })
}
