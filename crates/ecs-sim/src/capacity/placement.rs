//! Where a service's next task goes: the capacity provider its strategy
//! picks (base first, then by weight), whether it needs a container
//! instance, and which instance has room for what its task definition
//! reserves; when none has, the closest one and what it lacks, in ECS's
//! words.

use super::model::{FARGATE_PROVIDERS, InstanceStatus};
use crate::model::{LastStatus, Needs, StrategyItem};
use crate::world::World;

type ServiceKey = (String, String);

/// How a new task of a service is to be placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `FARGATE` or `EC2`.
    pub launch_type: &'static str,
    pub provider: Option<String>,
    /// It must fit on a container instance (EC2 with instances to place on).
    pub needs_instance: bool,
}

/// Why no container instance could take a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shortfall {
    /// The id of the instance with the most room, if the cluster has any.
    pub closest: Option<String>,
    /// `CPU` or `MEMORY`: what the closest one lacks.
    pub resource: &'static str,
}

impl Shortfall {
    /// The service event ECS writes, word for word.
    pub fn message(&self, service: &str) -> String {
        let head = format!(
            "(service {service}) was unable to place a task because no container instance met all of its requirements."
        );
        let tail = "For more information, see the Troubleshooting section of the Amazon ECS Developer Guide.";
        match &self.closest {
            None => {
                format!("{head} Reason: No Container Instances were found in your cluster. {tail}")
            }
            Some(id) => {
                let what = if self.resource == "CPU" {
                    "CPU units"
                } else {
                    "memory"
                };
                format!(
                    "{head} The closest matching (container-instance {id}) has insufficient {what} available. {tail}"
                )
            }
        }
    }

    /// The `reason` of ECS's SERVICE_TASK_PLACEMENT_FAILURE event.
    pub fn reason(&self) -> String {
        format!("RESOURCE:{}", self.resource)
    }
}

impl World {
    /// What the container instance has left: what it registered, less what
    /// its tasks not yet STOPPED reserve.
    pub fn remaining(&self, instance: &str) -> Needs {
        let Some(ci) = self.capacity.instances.get(instance) else {
            return Needs::default();
        };
        let mut left = ci.registered;
        for t in self.tasks_on(instance) {
            left.cpu -= t.needs.cpu;
            left.memory -= t.needs.memory;
        }
        left
    }

    /// The tasks placed on a container instance and not yet STOPPED.
    pub fn tasks_on<'a>(
        &'a self,
        instance: &'a str,
    ) -> impl Iterator<Item = &'a crate::model::Task> {
        self.records.tasks.values().filter(move |t| {
            t.container_instance.as_deref() == Some(instance)
                && t.last_status != LastStatus::Stopped
        })
    }

    /// No ACTIVE container instance and no Auto Scaling group provider:
    /// EC2 tasks are placed at once, as on Fargate (the simple case).
    pub fn fargate_like(&self, cluster: &str) -> bool {
        let instances = self
            .capacity
            .instances
            .values()
            .any(|i| i.cluster == cluster && i.status == InstanceStatus::Active);
        let providers = self
            .capacity
            .providers
            .values()
            .any(|p| p.cluster.as_deref() == Some(cluster));
        !instances && !providers
    }

    /// The first ACTIVE instance of the cluster (of `provider` when given),
    /// in ARN order, with room for `needs`.
    pub fn fit(
        &self,
        cluster: &str,
        provider: Option<&str>,
        needs: Needs,
    ) -> Result<String, Shortfall> {
        let mut closest: Option<(Needs, String)> = None;
        for ci in self.capacity.instances.values().filter(|i| {
            i.cluster == cluster
                && i.status == InstanceStatus::Active
                && provider.is_none_or(|p| i.capacity_provider.as_deref() == Some(p))
        }) {
            let left = self.remaining(&ci.arn);
            if left.cpu >= needs.cpu && left.memory >= needs.memory {
                return Ok(ci.arn.clone());
            }
            if closest
                .as_ref()
                .is_none_or(|(best, _)| left.memory > best.memory)
            {
                closest = Some((left, ci.id.clone()));
            }
        }
        Err(match closest {
            None => Shortfall {
                closest: None,
                resource: "MEMORY",
            },
            Some((left, id)) => Shortfall {
                closest: Some(id),
                resource: if left.cpu < needs.cpu {
                    "CPU"
                } else {
                    "MEMORY"
                },
            },
        })
    }

    /// How the service's next task is placed: by its capacity provider
    /// strategy when it has one, else by its launch type.
    pub fn target_for(&self, key: &ServiceKey) -> Target {
        let Some(svc) = self.records.services.get(key) else {
            return fargate(None);
        };
        if !svc.capacity_provider_strategy.is_empty() {
            let provider = self.next_provider(key, &svc.capacity_provider_strategy);
            if FARGATE_PROVIDERS.contains(&provider.as_str()) {
                return fargate(Some(provider));
            }
            return Target {
                launch_type: "EC2",
                provider: Some(provider),
                needs_instance: true,
            };
        }
        if svc.launch_type == "EC2" {
            return Target {
                launch_type: "EC2",
                provider: None,
                needs_instance: !self.fargate_like(&key.0),
            };
        }
        fargate(None)
    }

    /// The strategy's provider for the next task: the first whose `base`
    /// is not yet met, else the one furthest below its share by weight.
    fn next_provider(&self, key: &ServiceKey, strategy: &[StrategyItem]) -> String {
        let count = |p: &str| {
            self.live_tasks(&key.0, &key.1)
                .filter(|t| t.desired_running && t.capacity_provider.as_deref() == Some(p))
                .count() as i64
        };
        if let Some(item) = strategy.iter().find(|i| count(&i.provider) < i.base) {
            return item.provider.clone();
        }
        strategy
            .iter()
            .filter(|i| i.weight > 0)
            .min_by(|a, b| {
                let share = |i: &StrategyItem| count(&i.provider) as f64 / i.weight as f64;
                share(a).total_cmp(&share(b))
            })
            .or(strategy.first())
            .map(|i| i.provider.clone())
            .unwrap_or_default()
    }
}

fn fargate(provider: Option<String>) -> Target {
    Target {
        launch_type: "FARGATE",
        provider,
        needs_instance: false,
    }
}
