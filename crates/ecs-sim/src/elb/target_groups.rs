//! Target groups: creation with ELB's defaults and ranges, description by
//! ARN, name or load balancer, health-check settings (ModifyTargetGroup)
//! and attributes such as the deregistration delay.

use super::model::{DEREGISTRATION_DELAY, HealthSettings, TargetGroup, default_attributes};
use super::wire::{
    Params, Xml, check_name, load_balancer_not_found, target_group_not_found, validation,
};
use crate::model::ACCOUNT;
use crate::wire::ApiError;
use crate::world::World;

type Result<T> = std::result::Result<T, ApiError>;

const PROTOCOLS: [&str; 6] = ["HTTP", "HTTPS", "TCP", "TLS", "UDP", "TCP_UDP"];

fn protocol(p: &Params, name: &str) -> Result<Option<String>> {
    match p.str(name) {
        None => Ok(None),
        Some(v) if PROTOCOLS.contains(&v) => Ok(Some(v.to_string())),
        Some(v) => Err(validation(format!(
            "1 validation error detected: Value '{v}' at '{}' failed to satisfy constraint: Member must satisfy enum value set: [HTTP, HTTPS, TCP, TLS, UDP, TCP_UDP]",
            lower(name)
        ))),
    }
}

fn lower(name: &str) -> String {
    let mut c = name.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

/// Applies the health-check members given over `base`, within ELB's ranges.
fn health_settings(p: &Params, base: HealthSettings) -> Result<HealthSettings> {
    let mut h = base;
    if let Some(v) = protocol(p, "HealthCheckProtocol")? {
        h.protocol = v;
    }
    if let Some(v) = p.str("HealthCheckPort") {
        if v != "traffic-port" && !v.parse::<u16>().is_ok_and(|n| n >= 1) {
            return Err(validation(format!(
                "Health check port '{v}' must be 'traffic-port' or a port number between 1 and 65535"
            )));
        }
        h.port = v.to_string();
    }
    if let Some(v) = p.str("HealthCheckPath") {
        h.path = Some(v.to_string());
    }
    if let Some(v) = p.int_in("HealthCheckIntervalSeconds", 5, 300)? {
        h.interval = v;
    }
    if let Some(v) = p.int_in("HealthCheckTimeoutSeconds", 2, 120)? {
        h.timeout = v;
    }
    if let Some(v) = p.int_in("HealthyThresholdCount", 2, 10)? {
        h.healthy_threshold = v;
    }
    if let Some(v) = p.int_in("UnhealthyThresholdCount", 2, 10)? {
        h.unhealthy_threshold = v;
    }
    if let Some(code) =
        p.0.get("Matcher")
            .and_then(|m| m.get("HttpCode"))
            .and_then(|c| c.as_str())
    {
        h.matcher = Some(code.to_string());
    }
    if h.timeout >= h.interval {
        return Err(validation(
            "Health check interval must be greater than the timeout.",
        ));
    }
    Ok(h)
}

pub fn create_target_group(world: &mut World, p: Params) -> Result<String> {
    let name = p.required("Name")?.to_string();
    check_name("Target group", &name)?;
    let target_type = p.str("TargetType").unwrap_or("instance").to_string();
    if !matches!(target_type.as_str(), "ip" | "instance") {
        return Err(validation(format!(
            "Target type '{target_type}' is not supported by this simulator; use 'ip' or 'instance'"
        )));
    }
    let protocol =
        protocol(&p, "Protocol")?.ok_or_else(|| validation("A protocol must be specified"))?;
    let port = p
        .int_in("Port", 1, 65535)?
        .ok_or_else(|| validation("A port must be specified"))?;
    let vpc_id = p
        .str("VpcId")
        .ok_or_else(|| validation("A VPC ID must be specified"))?
        .to_string();
    let http = protocol.starts_with("HTTP");
    let defaults = HealthSettings {
        protocol: if http { protocol.clone() } else { "TCP".into() },
        port: "traffic-port".into(),
        path: http.then(|| "/".to_string()),
        interval: 30,
        timeout: if http { 5 } else { 10 },
        healthy_threshold: 5,
        unhealthy_threshold: 2,
        matcher: http.then(|| "200".to_string()),
    };
    let health = health_settings(&p, defaults)?;
    if let Some(existing) = world.elb.target_groups.values().find(|tg| tg.name == name) {
        let same = existing.protocol == protocol
            && existing.port == port
            && existing.vpc_id == vpc_id
            && existing.target_type == target_type
            && existing.health == health;
        if !same {
            return Err(ApiError::new(
                "DuplicateTargetGroupName",
                format!(
                    "A target group with the same name '{name}' exists, but with different settings"
                ),
            ));
        }
        let mut x = Xml::default();
        x.list("TargetGroups", [existing], tg_xml);
        return Ok(x.into_string());
    }
    let id = world.random_hex(16);
    let arn = format!(
        "arn:aws:elasticloadbalancing:{}:{ACCOUNT}:targetgroup/{name}/{id}",
        world.arns.region
    );
    let tg = TargetGroup {
        arn: arn.clone(),
        name,
        attributes: default_attributes(!http),
        protocol,
        port,
        vpc_id,
        target_type,
        health,
        load_balancers: Vec::new(),
        in_use_since: None,
        targets: Vec::new(),
    };
    let mut x = Xml::default();
    x.list("TargetGroups", [&tg], tg_xml);
    world.elb.target_groups.insert(arn, tg);
    Ok(x.into_string())
}

fn tg_xml(x: &mut Xml, tg: &TargetGroup) {
    let h = &tg.health;
    x.text("TargetGroupArn", &tg.arn)
        .text("TargetGroupName", &tg.name)
        .text("Protocol", &tg.protocol)
        .text("Port", tg.port)
        .text("VpcId", &tg.vpc_id)
        .text("HealthCheckProtocol", &h.protocol)
        .text("HealthCheckPort", &h.port)
        .text("HealthCheckEnabled", true)
        .text("HealthCheckIntervalSeconds", h.interval)
        .text("HealthCheckTimeoutSeconds", h.timeout)
        .text("HealthyThresholdCount", h.healthy_threshold)
        .text("UnhealthyThresholdCount", h.unhealthy_threshold)
        .opt("HealthCheckPath", h.path.as_deref());
    if let Some(code) = &h.matcher {
        x.nest("Matcher", |m| {
            m.text("HttpCode", code);
        });
    }
    x.list("LoadBalancerArns", &tg.load_balancers, |m, arn| {
        m.value(arn);
    })
    .text("TargetType", &tg.target_type)
    .text("IpAddressType", "ipv4");
    if tg.protocol.starts_with("HTTP") {
        x.text("ProtocolVersion", "HTTP1");
    }
}

pub fn describe_target_groups(world: &mut World, p: Params) -> Result<String> {
    let arns = p.strings("TargetGroupArns");
    let names = p.strings("Names");
    let lb = p.str("LoadBalancerArn");
    if [!arns.is_empty(), !names.is_empty(), lb.is_some()]
        .iter()
        .filter(|x| **x)
        .count()
        > 1
    {
        return Err(validation(
            "Target group ARNs, target group names and a load balancer ARN cannot be specified at the same time",
        ));
    }
    let groups = &world.elb.target_groups;
    let chosen: Vec<&TargetGroup> = if !arns.is_empty() {
        arns.iter()
            .map(|a| groups.get(a).ok_or_else(target_group_not_found))
            .collect::<Result<_>>()?
    } else if !names.is_empty() {
        names
            .iter()
            .map(|n| {
                groups
                    .values()
                    .find(|tg| &tg.name == n)
                    .ok_or_else(target_group_not_found)
            })
            .collect::<Result<_>>()?
    } else if let Some(lb) = lb {
        if !world.elb.load_balancers.contains_key(lb) {
            return Err(load_balancer_not_found());
        }
        groups
            .values()
            .filter(|tg| tg.load_balancers.iter().any(|l| l == lb))
            .collect()
    } else {
        groups.values().collect()
    };
    let mut x = Xml::default();
    x.list("TargetGroups", chosen, tg_xml);
    Ok(x.into_string())
}

pub fn modify_target_group(world: &mut World, p: Params) -> Result<String> {
    let arn = p.required("TargetGroupArn")?;
    let tg = world
        .elb
        .target_groups
        .get(arn)
        .ok_or_else(target_group_not_found)?;
    let health = health_settings(&p, tg.health.clone())?;
    let tg = world
        .elb
        .target_groups
        .get_mut(arn)
        .ok_or_else(target_group_not_found)?;
    tg.health = health;
    let mut x = Xml::default();
    x.list("TargetGroups", [&*tg], tg_xml);
    Ok(x.into_string())
}

fn attributes_xml(tg: &TargetGroup) -> String {
    let mut x = Xml::default();
    x.list("Attributes", &tg.attributes, |m, (k, v)| {
        m.text("Key", k).text("Value", v);
    });
    x.into_string()
}

pub fn describe_attributes(world: &mut World, p: Params) -> Result<String> {
    let arn = p.required("TargetGroupArn")?;
    let tg = world
        .elb
        .target_groups
        .get(arn)
        .ok_or_else(target_group_not_found)?;
    Ok(attributes_xml(tg))
}

pub fn modify_attributes(world: &mut World, p: Params) -> Result<String> {
    let arn = p.required("TargetGroupArn")?.to_string();
    let tg = world
        .elb
        .target_groups
        .get(&arn)
        .ok_or_else(target_group_not_found)?;
    let given = p.list("Attributes");
    if given.is_empty() {
        return Err(validation(
            "1 validation error detected: Value null at 'attributes' failed to satisfy constraint: Member must not be null",
        ));
    }
    let mut changes = Vec::new();
    for a in given {
        let a = Params(a);
        let key = a.required("Key")?.to_string();
        let value = a.str("Value").unwrap_or("").to_string();
        if !tg.attributes.contains_key(&key) {
            return Err(ApiError::new(
                "InvalidConfigurationRequest",
                format!("Target group attribute key '{key}' is not recognized"),
            ));
        }
        if key == DEREGISTRATION_DELAY
            && !value.parse::<i64>().is_ok_and(|v| (0..=3600).contains(&v))
        {
            return Err(validation(format!(
                "'{DEREGISTRATION_DELAY}' must be an integer between 0 and 3600, but was '{value}'"
            )));
        }
        changes.push((key, value));
    }
    let tg = world
        .elb
        .target_groups
        .get_mut(&arn)
        .ok_or_else(target_group_not_found)?;
    tg.attributes.extend(changes);
    Ok(attributes_xml(tg))
}
