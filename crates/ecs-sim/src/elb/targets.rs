//! Targets in their target groups: RegisterTargets, DeregisterTargets and
//! DescribeTargetHealth over the wire, the same registration and
//! deregistration for ECS's own use, and the passage of time — each
//! target's state changes written to the timeline, and the registrations
//! whose draining is over forgotten.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{PROPAGATION, Registration, TargetGroup, TargetState};
use super::wire::{Params, Xml, target_group_not_found, validation};
use crate::faults::FaultProfile;
use crate::timeline::{TargetHistory, TargetTransition};
use crate::wire::ApiError;
use crate::world::World;

type Result<T> = std::result::Result<T, ApiError>;

/// The targets of a request: (id, port given).
fn targets_of(p: &Params) -> Result<Vec<(String, Option<i64>)>> {
    p.list("Targets")
        .into_iter()
        .map(|t| {
            let t = Params(t);
            let id = t.required("Id")?.to_string();
            let port = t.int_in("Port", 1, 65535)?;
            Ok((id, port))
        })
        .collect()
}

fn check_target(tg: &TargetGroup, id: &str) -> Result<()> {
    let ok = if tg.target_type == "ip" {
        id.parse::<std::net::Ipv4Addr>().is_ok()
    } else {
        id.starts_with("i-")
    };
    if ok {
        Ok(())
    } else if tg.target_type == "ip" {
        Err(validation(format!(
            "The IP address '{id}' is not a valid IPv4 address"
        )))
    } else {
        Err(ApiError::new(
            "InvalidTarget",
            format!("The following targets are not valid instances: '{id}'"),
        ))
    }
}

/// From when a newly registered target passes its health checks, as the
/// faults in force decide: at once, late, or never.
pub fn passes_from(world: &mut World, faults: &FaultProfile, now: f64) -> Option<f64> {
    if world.rng.f64() < faults.target_never_healthy {
        return None;
    }
    if world.rng.f64() < faults.target_late_healthy {
        let late = faults.late_by_seconds() / world.target_time_scale;
        return Some(now + late);
    }
    Some(now)
}

impl World {
    /// Registers a target (again); a target already registered stays as it is.
    pub fn register_target(
        &mut self,
        tg_arn: &str,
        id: &str,
        port: i64,
        task_arn: Option<String>,
        passes_from: Option<f64>,
        now: f64,
    ) {
        let Some(tg) = self.elb.target_groups.get_mut(tg_arn) else {
            return;
        };
        if tg
            .targets
            .iter()
            .any(|r| r.id == id && r.port == port && r.deregistered_at.is_none())
        {
            return;
        }
        // A draining target registered again is a new registration.
        tg.targets.retain(|r| !(r.id == id && r.port == port));
        let history = self.timeline.targets.len();
        self.timeline.targets.push(TargetHistory {
            target_group_arn: tg_arn.to_string(),
            id: id.to_string(),
            port,
            task_arn: task_arn.clone(),
            transitions: Vec::new(),
        });
        tg.targets.push(Registration {
            id: id.to_string(),
            port,
            registered_at: now,
            passes_from,
            deregistered_at: None,
            drain_until: None,
            task_arn,
            history,
            last_state: None,
        });
    }

    /// Starts draining a registered target; the seconds it will drain, or
    /// `None` when it was not registered.
    pub fn deregister_target(
        &mut self,
        tg_arn: &str,
        id: &str,
        port: i64,
        now: f64,
    ) -> Option<f64> {
        let scale = self.target_time_scale;
        let tg = self.elb.target_groups.get_mut(tg_arn)?;
        let drain = tg.drain_seconds(scale);
        let r = tg
            .targets
            .iter_mut()
            .find(|r| r.id == id && r.port == port && r.deregistered_at.is_none())?;
        r.deregistered_at = Some(now);
        r.drain_until = Some(now + drain);
        Some(drain)
    }

    /// Brings every target to `now`: state changes into the timeline, ECS
    /// tasks told whether their targets are healthy, finished drains forgotten.
    pub fn advance_targets(&mut self, now: f64) {
        let scale = self.target_time_scale;
        let propagation = PROPAGATION / scale;
        let mut changes = Vec::new();
        // Task ARN → (every target healthy, a target group it is unhealthy in).
        let mut of_tasks: BTreeMap<String, (bool, Option<String>)> = BTreeMap::new();
        for tg in self.elb.target_groups.values_mut() {
            let states: Vec<(TargetState, f64)> = tg
                .targets
                .iter()
                .map(|r| tg.state_of(r, now, scale))
                .collect();
            for (r, (state, since)) in tg.targets.iter_mut().zip(states) {
                if r.last_state != Some(state) {
                    r.last_state = Some(state);
                    changes.push((r.history, since, state));
                }
                if let Some(task) = &r.task_arn
                    && r.deregistered_at.is_none()
                {
                    let entry = of_tasks.entry(task.clone()).or_insert((true, None));
                    entry.0 &= state == TargetState::HEALTHY;
                    if state.state == "unhealthy" {
                        entry.1.get_or_insert_with(|| tg.arn.clone());
                    }
                }
            }
            tg.targets.retain(|r| {
                !(r.drain_until.is_some_and(|u| u <= now)
                    && r.deregistered_at.is_some_and(|d| d + propagation <= now))
            });
        }
        for (index, t, state) in changes {
            if let Some(h) = self.timeline.targets.get_mut(index) {
                h.transitions.push(TargetTransition {
                    t,
                    state: state.state,
                    reason: state.reason,
                });
            }
        }
        let mut touched = BTreeSet::new();
        for (arn, (healthy, unhealthy_in)) in of_tasks {
            if let Some(task) = self.records.tasks.get_mut(&arn)
                && (task.lb_healthy != healthy || task.lb_unhealthy_in != unhealthy_in)
            {
                task.lb_healthy = healthy;
                task.lb_unhealthy_in = unhealthy_in;
                if let Some(service) = &task.service {
                    touched.insert((task.cluster.clone(), service.clone()));
                }
            }
        }
        for (cluster, service) in touched {
            self.sample(&cluster, &service, now);
        }
    }
}

pub fn register_targets(world: &mut World, p: Params, now: f64) -> Result<String> {
    let arn = p.required("TargetGroupArn")?.to_string();
    let tg = world
        .elb
        .target_groups
        .get(&arn)
        .ok_or_else(target_group_not_found)?;
    let targets = targets_of(&p)?;
    if targets.is_empty() {
        return Err(validation(
            "1 validation error detected: Value null at 'targets' failed to satisfy constraint: Member must not be null",
        ));
    }
    for (id, _) in &targets {
        check_target(tg, id)?;
    }
    let default_port = tg.port;
    let faults = world.faults.clone();
    for (id, port) in targets {
        let passes = passes_from(world, &faults, now);
        world.register_target(&arn, &id, port.unwrap_or(default_port), None, passes, now);
    }
    Ok(String::new())
}

pub fn deregister_targets(world: &mut World, p: Params, now: f64) -> Result<String> {
    let arn = p.required("TargetGroupArn")?.to_string();
    let tg = world
        .elb
        .target_groups
        .get(&arn)
        .ok_or_else(target_group_not_found)?;
    let targets = targets_of(&p)?;
    if targets.is_empty() {
        return Err(validation(
            "1 validation error detected: Value null at 'targets' failed to satisfy constraint: Member must not be null",
        ));
    }
    let default_port = tg.port;
    for (id, port) in targets {
        world.deregister_target(&arn, &id, port.unwrap_or(default_port), now);
    }
    Ok(String::new())
}

pub fn describe_target_health(world: &mut World, p: Params, now: f64) -> Result<String> {
    let arn = p.required("TargetGroupArn")?;
    let tg = world
        .elb
        .target_groups
        .get(arn)
        .ok_or_else(target_group_not_found)?;
    let scale = world.target_time_scale;
    let wanted = targets_of(&p)?;
    // (id, port, state)
    let mut rows: Vec<(String, i64, TargetState)> = Vec::new();
    if wanted.is_empty() {
        for r in tg.visible(now) {
            rows.push((r.id.clone(), r.port, tg.state_of(r, now, scale).0));
        }
    } else {
        for (id, port) in wanted {
            let found: Vec<&Registration> = tg
                .visible(now)
                .filter(|r| r.id == id && port.is_none_or(|p| p == r.port))
                .collect();
            if found.is_empty() {
                let port = port.unwrap_or(tg.port);
                rows.push((id, port, TargetState::NOT_REGISTERED));
            }
            for r in found {
                rows.push((r.id.clone(), r.port, tg.state_of(r, now, scale).0));
            }
        }
    }
    let check_port = |port: i64| {
        if tg.health.port == "traffic-port" {
            port.to_string()
        } else {
            tg.health.port.clone()
        }
    };
    let mut x = Xml::default();
    x.list("TargetHealthDescriptions", rows, |m, (id, port, state)| {
        m.nest("Target", |t| {
            t.text("Id", &id).text("Port", port);
        })
        .text("HealthCheckPort", check_port(port))
        .nest("TargetHealth", |h| {
            h.text("State", state.state)
                .opt("Reason", state.reason)
                .opt("Description", state.description);
        });
    });
    Ok(x.into_string())
}
