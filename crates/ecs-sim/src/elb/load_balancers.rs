//! Load balancers and their listeners: enough of them to exist, be
//! described, and send a target group traffic through a listener's
//! `forward` default action.

use serde_json::Value;

use super::model::{Listener, LoadBalancer};
use super::wire::{
    Params, Xml, check_name, load_balancer_not_found, target_group_not_found, timestamp, validation,
};
use crate::model::ACCOUNT;
use crate::wire::ApiError;
use crate::world::World;

type Result<T> = std::result::Result<T, ApiError>;

const VPC: &str = "vpc-0a1b2c3d4e5f60718";

pub fn create_load_balancer(world: &mut World, p: Params, now: f64) -> Result<String> {
    let name = p.required("Name")?.to_string();
    check_name("Load balancer", &name)?;
    let kind = p.str("Type").unwrap_or("application").to_string();
    if !matches!(kind.as_str(), "application" | "network") {
        return Err(validation(format!(
            "Load balancer type '{kind}' is not supported by this simulator; use 'application' or 'network'"
        )));
    }
    let scheme = p.str("Scheme").unwrap_or("internet-facing").to_string();
    if !matches!(scheme.as_str(), "internet-facing" | "internal") {
        return Err(validation(format!(
            "1 validation error detected: Value '{scheme}' at 'scheme' failed to satisfy constraint: Member must satisfy enum value set: [internet-facing, internal]"
        )));
    }
    if let Some(existing) = world.elb.load_balancers.values().find(|lb| lb.name == name) {
        if existing.kind != kind || existing.scheme != scheme {
            return Err(ApiError::new(
                "DuplicateLoadBalancerName",
                format!(
                    "A load balancer with the same name '{name}' exists, but with different settings"
                ),
            ));
        }
        let mut x = Xml::default();
        x.list("LoadBalancers", [existing], |x, lb| lb_xml(world, x, lb));
        return Ok(x.into_string());
    }
    let short = if kind == "network" { "net" } else { "app" };
    let id = world.random_hex(16);
    let region = world.arns.region.clone();
    let arn =
        format!("arn:aws:elasticloadbalancing:{region}:{ACCOUNT}:loadbalancer/{short}/{name}/{id}");
    let prefix = if scheme == "internal" {
        "internal-"
    } else {
        ""
    };
    let dns_name = if kind == "network" {
        format!(
            "{prefix}{name}-{}.elb.{region}.amazonaws.com",
            world.random_hex(16)
        )
    } else {
        format!(
            "{prefix}{name}-{}.{region}.elb.amazonaws.com",
            world.random_digits(10)
        )
    };
    let lb = LoadBalancer {
        arn: arn.clone(),
        name,
        kind,
        scheme,
        dns_name,
        vpc_id: VPC.into(),
        created_at: now,
    };
    world.elb.load_balancers.insert(arn, lb.clone());
    let mut x = Xml::default();
    x.list("LoadBalancers", [&lb], |x, lb| lb_xml(world, x, lb));
    Ok(x.into_string())
}

fn lb_xml(world: &World, x: &mut Xml, lb: &LoadBalancer) {
    let zone = if lb.kind == "network" {
        "Z26RNL4JYFTOTI"
    } else {
        "Z35SXDOTRQ7X7K"
    };
    x.text("LoadBalancerArn", &lb.arn)
        .text("DNSName", &lb.dns_name)
        .text("CanonicalHostedZoneId", zone)
        .text("CreatedTime", timestamp(world.epoch(lb.created_at)))
        .text("LoadBalancerName", &lb.name)
        .text("Scheme", &lb.scheme)
        .text("VpcId", &lb.vpc_id)
        .nest("State", |s| {
            s.text("Code", "active");
        })
        .text("Type", &lb.kind)
        .list("AvailabilityZones", ["a", "b"], |z, letter| {
            z.text("ZoneName", format!("{}{letter}", world.arns.region))
                .text("SubnetId", format!("subnet-0sim{letter}"));
        })
        .text("IpAddressType", "ipv4");
}

pub fn describe_load_balancers(world: &mut World, p: Params) -> Result<String> {
    let arns = p.strings("LoadBalancerArns");
    let names = p.strings("Names");
    if !arns.is_empty() && !names.is_empty() {
        return Err(validation(
            "Load balancer names and load balancer ARNs cannot be specified at the same time",
        ));
    }
    let all: Vec<&LoadBalancer> = world.elb.load_balancers.values().collect();
    let chosen: Vec<&LoadBalancer> = if !arns.is_empty() {
        arns.iter()
            .map(|a| {
                world
                    .elb
                    .load_balancers
                    .get(a)
                    .ok_or_else(load_balancer_not_found)
            })
            .collect::<Result<_>>()?
    } else if !names.is_empty() {
        names
            .iter()
            .map(|n| {
                all.iter()
                    .copied()
                    .find(|lb| &lb.name == n)
                    .ok_or_else(load_balancer_not_found)
            })
            .collect::<Result<_>>()?
    } else {
        all
    };
    let mut x = Xml::default();
    x.list("LoadBalancers", chosen, |x, lb| lb_xml(world, x, lb));
    Ok(x.into_string())
}

/// The target groups a listener's default actions forward to.
fn forwarded(p: &Params) -> Result<Vec<String>> {
    let actions = p.list("DefaultActions");
    if actions.is_empty() {
        return Err(validation(
            "1 validation error detected: Value null at 'defaultActions' failed to satisfy constraint: Member must not be null",
        ));
    }
    let mut groups = Vec::new();
    for action in actions {
        let a = Params(action);
        if a.str("Type") != Some("forward") {
            return Err(validation(format!(
                "Action type '{}' is not supported by this simulator; use 'forward'",
                a.str("Type").unwrap_or("")
            )));
        }
        if let Some(tg) = a.str("TargetGroupArn") {
            groups.push(tg.to_string());
        }
        if let Some(config) = action.get("ForwardConfig") {
            for tg in Params(config).list("TargetGroups") {
                if let Some(arn) = tg.get("TargetGroupArn").and_then(Value::as_str) {
                    groups.push(arn.to_string());
                }
            }
        }
    }
    if groups.is_empty() {
        return Err(validation(
            "A target group ARN must be specified for a forward action",
        ));
    }
    groups.dedup();
    Ok(groups)
}

pub fn create_listener(world: &mut World, p: Params, now: f64) -> Result<String> {
    let lb_arn = p.required("LoadBalancerArn")?.to_string();
    p.required("Port")?;
    let port = p.int_in("Port", 1, 65535)?.unwrap_or_default();
    let lb = world
        .elb
        .load_balancers
        .get(&lb_arn)
        .cloned()
        .ok_or_else(load_balancer_not_found)?;
    let default_protocol = if lb.kind == "network" { "TCP" } else { "HTTP" };
    let protocol = p.str("Protocol").unwrap_or(default_protocol).to_string();
    let allowed: &[&str] = if lb.kind == "network" {
        &["TCP", "TLS", "UDP", "TCP_UDP"]
    } else {
        &["HTTP", "HTTPS"]
    };
    if !allowed.contains(&protocol.as_str()) {
        return Err(ApiError::new(
            "UnsupportedProtocol",
            format!(
                "Protocol '{protocol}' is not supported with a load balancer of type '{}'",
                lb.kind
            ),
        ));
    }
    let groups = forwarded(&p)?;
    for arn in &groups {
        let tg = world
            .elb
            .target_groups
            .get(arn)
            .ok_or_else(target_group_not_found)?;
        let family_ok = if lb.kind == "network" {
            !tg.protocol.starts_with("HTTP")
        } else {
            tg.protocol.starts_with("HTTP")
        };
        if !family_ok {
            return Err(ApiError::new(
                "IncompatibleProtocols",
                format!(
                    "The target group '{}' uses protocol '{}', which is not compatible with a load balancer of type '{}'",
                    tg.arn, tg.protocol, lb.kind
                ),
            ));
        }
        if tg.load_balancers.iter().any(|other| *other != lb_arn) {
            return Err(ApiError::new(
                "TargetGroupAssociationLimit",
                format!(
                    "The following target groups cannot be associated with more than one load balancer: {}",
                    tg.arn
                ),
            ));
        }
    }
    if world
        .elb
        .listeners
        .values()
        .any(|l| l.load_balancer_arn == lb_arn && l.port == port)
    {
        return Err(ApiError::new(
            "DuplicateListener",
            "A listener already exists on this port for this load balancer",
        ));
    }
    let lb_path = lb_arn
        .split_once(":loadbalancer/")
        .map_or("", |x| x.1)
        .to_string();
    let id = world.random_hex(16);
    let arn = format!(
        "arn:aws:elasticloadbalancing:{}:{ACCOUNT}:listener/{lb_path}/{id}",
        world.arns.region
    );
    for tg_arn in &groups {
        if let Some(tg) = world.elb.target_groups.get_mut(tg_arn) {
            if !tg.load_balancers.contains(&lb_arn) {
                tg.load_balancers.push(lb_arn.clone());
            }
            tg.in_use_since.get_or_insert(now);
        }
    }
    let listener = Listener {
        arn: arn.clone(),
        load_balancer_arn: lb_arn,
        protocol,
        port,
        target_groups: groups,
    };
    world.elb.listeners.insert(arn, listener.clone());
    let mut x = Xml::default();
    x.list("Listeners", [&listener], listener_xml);
    Ok(x.into_string())
}

fn listener_xml(x: &mut Xml, l: &Listener) {
    x.text("ListenerArn", &l.arn)
        .text("LoadBalancerArn", &l.load_balancer_arn)
        .text("Port", l.port)
        .text("Protocol", &l.protocol)
        .list("DefaultActions", [l], |a, l| {
            a.text("Type", "forward");
            if let [only] = l.target_groups.as_slice() {
                a.text("TargetGroupArn", only);
            }
            a.nest("ForwardConfig", |f| {
                f.list("TargetGroups", &l.target_groups, |t, arn| {
                    t.text("TargetGroupArn", arn).text("Weight", 1);
                });
            });
        });
}

pub fn describe_listeners(world: &mut World, p: Params) -> Result<String> {
    let arns = p.strings("ListenerArns");
    let lb = p.str("LoadBalancerArn");
    let chosen: Vec<&Listener> = match (lb, arns.is_empty()) {
        (Some(lb), true) => {
            if !world.elb.load_balancers.contains_key(lb) {
                return Err(load_balancer_not_found());
            }
            world
                .elb
                .listeners
                .values()
                .filter(|l| l.load_balancer_arn == lb)
                .collect()
        }
        (None, false) => arns
            .iter()
            .map(|a| {
                world.elb.listeners.get(a).ok_or_else(|| {
                    ApiError::new("ListenerNotFound", "One or more listeners not found")
                })
            })
            .collect::<Result<_>>()?,
        _ => {
            return Err(validation(
                "You must specify either listener ARNs or a load balancer ARN",
            ));
        }
    };
    let mut x = Xml::default();
    x.list("Listeners", chosen, listener_xml);
    Ok(x.into_string())
}
