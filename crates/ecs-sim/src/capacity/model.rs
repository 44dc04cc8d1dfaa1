//! The records of EC2 capacity: container instances and what they hold,
//! capacity providers, and the Auto Scaling groups behind them with the
//! instances they launched.

use std::collections::BTreeMap;

use crate::model::Needs;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceStatus {
    Active,
    /// Deregistered: kept for DescribeContainerInstances, out of placement.
    Inactive,
}

impl InstanceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Inactive => "INACTIVE",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ContainerInstance {
    pub id: String,
    pub arn: String,
    pub cluster: String,
    pub ec2_instance_id: String,
    /// CPU units and MiB of memory it registered (`totalResources`).
    pub registered: Needs,
    pub status: InstanceStatus,
    pub capacity_provider: Option<String>,
    pub registered_at: f64,
    /// Grows with every change, as the `version` of ECS's instance events.
    pub version: i64,
}

/// An Auto Scaling group capacity provider.
#[derive(Clone, Debug)]
pub struct CapacityProvider {
    pub name: String,
    pub arn: String,
    /// The name of its Auto Scaling group (`/_sim/auto-scaling-groups`).
    pub group: String,
    pub group_arn: String,
    pub managed_scaling: bool,
    pub target_capacity: i64,
    pub minimum_step: i64,
    pub maximum_step: i64,
    /// `instanceWarmupPeriod` as given; the group's own warm-up otherwise.
    pub warmup: Option<i64>,
    pub termination_protection: bool,
    /// The cluster it is associated with (PutClusterCapacityProviders).
    pub cluster: Option<String>,
}

/// Managed scaling's defaults, as ECS documents them.
pub const DEFAULT_TARGET_CAPACITY: i64 = 100;
pub const DEFAULT_MINIMUM_STEP: i64 = 1;
pub const DEFAULT_MAXIMUM_STEP: i64 = 10_000;
pub const DEFAULT_WARMUP: i64 = 300;

/// A simulated EC2 Auto Scaling group: its size, the resources of its
/// instance type, how long an instance takes to launch and to warm up
/// (seconds before `ecsTimeScale`), and the instances it has.
#[derive(Clone, Debug)]
pub struct AutoScalingGroup {
    pub name: String,
    pub arn: String,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    pub size: Needs,
    pub launch: f64,
    pub warmup: f64,
    pub instances: Vec<GroupInstance>,
}

#[derive(Clone, Debug)]
pub struct GroupInstance {
    pub ec2_instance_id: String,
    pub launched_at: f64,
    /// When it is up and its agent registers it (launched + launch time).
    pub in_service_at: f64,
    /// When it counts toward managed scaling (launched + warm-up).
    pub warm_at: f64,
    pub container_instance: Option<String>,
}

/// Every record of EC2 capacity in the simulated account.
#[derive(Default)]
pub struct Capacity {
    /// ARN → container instance, in registration order of their ARNs.
    pub instances: BTreeMap<String, ContainerInstance>,
    /// Name → capacity provider (FARGATE and FARGATE_SPOT are built in).
    pub providers: BTreeMap<String, CapacityProvider>,
    /// Name → Auto Scaling group.
    pub groups: BTreeMap<String, AutoScalingGroup>,
}

/// The capacity providers every account has.
pub const FARGATE_PROVIDERS: [&str; 2] = ["FARGATE", "FARGATE_SPOT"];
