//! The Auto Scaling groups behind capacity providers, simulated: made and
//! read through the control API (`/_sim/auto-scaling-groups`), their
//! instances registering with the provider's cluster once launched, ECS's
//! managed scaling launching instances for tasks waiting in PROVISIONING,
//! and those tasks stopped once they have waited longer than ECS waits.
//!
//! What managed scaling does here, after ECS's "managed scale-out
//! behavior": the tasks of a provider waiting for room are binpacked onto
//! the room its launching instances will bring and then onto new instances
//! of the group's size; ECS aims at `M / N × 100 = targetCapacity` (M the
//! instances needed, N the group's size) and changes the desired count by
//! at least `minimumScalingStepSize` and at most `maximumScalingStepSize`,
//! within the group's max. No scale-out while an instance of the group is
//! within its warm-up. Scale-in is not modelled: instances stay.

use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{AutoScalingGroup, CapacityProvider, GroupInstance};
use crate::duration::serde_opt_duration;
use crate::model::{ACCOUNT, Needs, StopCause};
use crate::world::World;

/// How long ECS lets a task wait in PROVISIONING for capacity: its
/// "between 10 and 30 minutes", at the long end (before `ecsTimeScale`).
pub const PROVISIONING_TIMEOUT: f64 = 30.0 * 60.0;

/// The stopped reason of a task ECS gave up placing. ECS's documentation
/// gives no wording for it: these are the simulator's words.
pub const PROVISIONING_TIMEOUT_REASON: &str =
    "Capacity provider could not provide capacity for the task within the provisioning timeout";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GroupRequest {
    name: String,
    min: u32,
    max: u32,
    desired: u32,
    cpu: i64,
    memory: i64,
    #[serde(default, with = "serde_opt_duration")]
    launch: Option<std::time::Duration>,
    #[serde(default, with = "serde_opt_duration")]
    warmup: Option<std::time::Duration>,
}

/// `POST /_sim/auto-scaling-groups`: a group with `desired` instances up
/// and warm at once (an existing group); posting an existing name changes
/// its min, max and sizes, and launches instances up to a higher desired.
pub fn set_group(world: &mut World, body: Value, now: f64) -> Result<Value, String> {
    let req: GroupRequest =
        serde_json::from_value(body).map_err(|e| format!("invalid request: {e}"))?;
    if req.name.is_empty() || req.name.len() > 255 {
        return Err("name: 1 to 255 characters are required".into());
    }
    if !(req.min <= req.desired && req.desired <= req.max) {
        return Err(format!(
            "min {} <= desired {} <= max {} must hold",
            req.min, req.desired, req.max
        ));
    }
    if req.cpu <= 0 || req.memory <= 0 {
        return Err("cpu and memory (of the group's instance type) must be more than 0".into());
    }
    let launch = req.launch.map_or(90.0, |d| d.as_secs_f64());
    let warmup = req.warmup.map_or(300.0, |d| d.as_secs_f64());
    let size = Needs {
        cpu: req.cpu,
        memory: req.memory,
    };
    let existing = world
        .capacity
        .groups
        .get(&req.name)
        .map(|g| g.instances.len() as u32);
    let uuid = world.random_uuid();
    let arn = format!(
        "arn:aws:autoscaling:{}:{ACCOUNT}:autoScalingGroup:{uuid}:autoScalingGroupName/{}",
        world.arns.region, req.name
    );
    let group = world
        .capacity
        .groups
        .entry(req.name.clone())
        .or_insert_with(|| AutoScalingGroup {
            name: req.name.clone(),
            arn,
            min: req.min,
            max: req.max,
            desired: 0,
            size,
            launch,
            warmup,
            instances: Vec::new(),
        });
    group.min = req.min;
    group.max = req.max;
    group.size = size;
    group.launch = launch;
    group.warmup = warmup;
    let have = existing.unwrap_or(0);
    if req.desired > have {
        let ready = existing.is_none();
        world.launch_instances(&req.name, req.desired - have, ready, now);
    }
    world.register_group_instances(now);
    Ok(group_json(world, &req.name))
}

/// `GET /_sim/auto-scaling-groups/{name}`: its settings and instances.
pub fn group_json(world: &World, name: &str) -> Value {
    let Some(g) = world.capacity.groups.get(name) else {
        return Value::Null;
    };
    let instances: Vec<Value> = g
        .instances
        .iter()
        .map(|i| {
            json!({"ec2InstanceId": i.ec2_instance_id, "launchedAt": i.launched_at,
                   "inServiceAt": i.in_service_at, "warmAt": i.warm_at,
                   "containerInstanceArn": i.container_instance})
        })
        .collect();
    json!({
        "name": g.name, "autoScalingGroupArn": g.arn, "min": g.min, "max": g.max,
        "desired": g.desired, "cpu": g.size.cpu, "memory": g.size.memory,
        "launch": crate::duration::format(std::time::Duration::from_secs_f64(g.launch)),
        "warmup": crate::duration::format(std::time::Duration::from_secs_f64(g.warmup)),
        "instances": instances,
    })
}

impl World {
    /// Launches `count` instances of a group: up and warm at once when
    /// `ready`, else after its launch time and warm-up (scaled).
    fn launch_instances(&mut self, group: &str, count: u32, ready: bool, now: f64) {
        let scale = self.ecs_time_scale;
        let warmup = self.group_warmup(group);
        let ids: Vec<String> = (0..count)
            .map(|_| format!("i-{}", self.random_hex(17)))
            .collect();
        let Some(g) = self.capacity.groups.get_mut(group) else {
            return;
        };
        for id in ids {
            let (in_service, warm) = if ready {
                (now, now)
            } else {
                (now + g.launch / scale, now + warmup / scale)
            };
            g.instances.push(GroupInstance {
                ec2_instance_id: id.clone(),
                launched_at: now,
                in_service_at: in_service,
                warm_at: warm,
                container_instance: None,
            });
            self.timeline
                .instance_launched(group, &id, now, in_service, warm);
        }
        g.desired = g.instances.len() as u32;
    }

    /// The warm-up managed scaling waits for: the provider's
    /// `instanceWarmupPeriod` when it gave one, else the group's own.
    fn group_warmup(&self, group: &str) -> f64 {
        let given = self
            .capacity
            .providers
            .values()
            .find(|p| p.group == group)
            .and_then(|p| p.warmup);
        match (given, self.capacity.groups.get(group)) {
            (Some(w), _) => w as f64,
            (None, Some(g)) => g.warmup,
            (None, None) => 300.0,
        }
    }

    /// Registers the instances that are up with the cluster their group's
    /// provider serves, as their agent would.
    pub fn register_group_instances(&mut self, now: f64) {
        let mut due = Vec::new();
        for p in self.capacity.providers.values() {
            let (Some(cluster), Some(g)) = (&p.cluster, self.capacity.groups.get(&p.group)) else {
                continue;
            };
            for (i, inst) in g.instances.iter().enumerate() {
                if inst.container_instance.is_none() && inst.in_service_at <= now {
                    due.push((
                        p.name.clone(),
                        p.group.clone(),
                        cluster.clone(),
                        i,
                        inst.clone(),
                    ));
                }
            }
        }
        for (provider, group, cluster, index, inst) in due {
            let size = self.capacity.groups[&group].size;
            let at = inst.in_service_at.max(inst.launched_at);
            let arn =
                self.register_instance(&cluster, size, inst.ec2_instance_id, Some(provider), at);
            if let Some(g) = self.capacity.groups.get_mut(&group) {
                g.instances[index].container_instance = Some(arn);
            }
        }
    }

    /// Instances up, managed scaling, and tasks that waited too long.
    pub fn advance_capacity(&mut self, now: f64) {
        if self.capacity.groups.is_empty() {
            return;
        }
        self.register_group_instances(now);
        let providers: Vec<CapacityProvider> = self
            .capacity
            .providers
            .values()
            .filter(|p| p.managed_scaling && p.cluster.is_some())
            .cloned()
            .collect();
        for p in providers {
            self.scale_out(&p, now);
        }
        self.time_out_provisioning(now);
    }

    /// The tasks of `provider` waiting for room.
    fn waiting_for(&self, provider: &str) -> Vec<Needs> {
        self.records
            .tasks
            .values()
            .filter(|t| t.waits_for_instance() && t.capacity_provider.as_deref() == Some(provider))
            .map(|t| t.needs)
            .collect()
    }

    fn scale_out(&mut self, p: &CapacityProvider, now: f64) {
        let waiting = self.waiting_for(&p.name);
        let Some(g) = self.capacity.groups.get(&p.group) else {
            return;
        };
        if waiting.is_empty() || g.instances.iter().any(|i| i.warm_at > now) {
            return;
        }
        // Room still to come: instances launched but not registered, and
        // what registered ones have left.
        let mut room: Vec<Needs> = g
            .instances
            .iter()
            .map(|i| match &i.container_instance {
                Some(arn) => self.remaining(arn),
                None => g.size,
            })
            .collect();
        let busy = g
            .instances
            .iter()
            .filter(|i| {
                i.container_instance.is_none()
                    || i.container_instance
                        .as_ref()
                        .is_some_and(|a| self.tasks_on(a).next().is_some())
            })
            .count();
        let new = binpack(&waiting, &mut room, g.size);
        if new == 0 {
            return;
        }
        let needed = (busy + new) as i64;
        let aim = (needed * 100 + p.target_capacity - 1) / p.target_capacity;
        let step = (aim - i64::from(g.desired))
            .max(1)
            .clamp(p.minimum_step, p.maximum_step);
        let after = (i64::from(g.desired) + step).min(i64::from(g.max)) as u32;
        let before = g.desired;
        if after <= before {
            return;
        }
        let group = g.name.clone();
        self.timeline.call(
            now,
            "_sim:ManagedScaling",
            json!({"capacityProvider": p.name, "autoScalingGroup": group,
                   "waitingTasks": waiting.len(), "before": before, "after": after}),
            None,
        );
        self.launch_instances(&group, after - before, false, now);
    }

    fn time_out_provisioning(&mut self, now: f64) {
        let limit = PROVISIONING_TIMEOUT / self.ecs_time_scale;
        let expired: Vec<String> = self
            .records
            .tasks
            .values()
            .filter(|t| {
                t.waits_for_instance()
                    && t.capacity_provider.is_some()
                    && t.created_at + limit <= now
            })
            .map(|t| t.arn.clone())
            .collect();
        for arn in expired {
            self.request_stop(
                &arn,
                PROVISIONING_TIMEOUT_REASON.into(),
                StopCause::ProvisioningTimeout,
                "TaskFailedToStart",
                now,
            );
        }
    }
}

/// First fit of `tasks` into `room`, opening new instances of `size`;
/// answers how many new instances it took. A task bigger than an instance
/// is left out: no instance of the group could ever take it.
fn binpack(tasks: &[Needs], room: &mut Vec<Needs>, size: Needs) -> usize {
    let mut new = 0;
    for t in tasks {
        if t.cpu > size.cpu || t.memory > size.memory {
            continue;
        }
        let slot = match room
            .iter_mut()
            .find(|r| r.cpu >= t.cpu && r.memory >= t.memory)
        {
            Some(slot) => slot,
            None => {
                new += 1;
                room.push(size);
                room.last_mut().expect("just pushed")
            }
        };
        slot.cpu -= t.cpu;
        slot.memory -= t.memory;
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binpack_fills_room_to_come_before_opening_instances() {
        let size = Needs {
            cpu: 1024,
            memory: 2048,
        };
        let task = Needs {
            cpu: 512,
            memory: 1024,
        };
        let mut room = vec![Needs {
            cpu: 512,
            memory: 1024,
        }];
        assert_eq!(binpack(&[task, task, task], &mut room, size), 1);
        let mut none = Vec::new();
        let huge = Needs {
            cpu: 4096,
            memory: 1,
        };
        assert_eq!(binpack(&[huge], &mut none, size), 0, "never fits: left out");
    }
}
