//! Elastic Load Balancing v2 on the simulator's endpoint, in its own AWS
//! Query protocol: load balancers, listeners, target groups and target
//! health, with health checks that run on the simulator's clock.

mod health;
mod load_balancers;
pub mod model;
mod target_groups;
pub mod targets;
pub mod wire;

use serde_json::Value;

use crate::wire::ApiError;
use crate::world::World;
use wire::Params;

/// Answers one action: the XML inside its `<ActionResult>`.
pub fn handle(world: &mut World, op: &str, params: &Value, now: f64) -> Result<String, ApiError> {
    let p = Params(params);
    match op {
        "CreateLoadBalancer" => load_balancers::create_load_balancer(world, p, now),
        "DescribeLoadBalancers" => load_balancers::describe_load_balancers(world, p),
        "CreateListener" => load_balancers::create_listener(world, p, now),
        "DescribeListeners" => load_balancers::describe_listeners(world, p),
        "CreateTargetGroup" => target_groups::create_target_group(world, p),
        "DescribeTargetGroups" => target_groups::describe_target_groups(world, p),
        "ModifyTargetGroup" => target_groups::modify_target_group(world, p),
        "DescribeTargetGroupAttributes" => target_groups::describe_attributes(world, p),
        "ModifyTargetGroupAttributes" => target_groups::modify_attributes(world, p),
        "RegisterTargets" => targets::register_targets(world, p, now),
        "DeregisterTargets" => targets::deregister_targets(world, p, now),
        "DescribeTargetHealth" => targets::describe_target_health(world, p, now),
        _ => Err(ApiError::new(
            "InvalidAction",
            format!("Could not find operation {op} for version 2015-12-01"),
        )),
    }
}
