//! The load balancer side of a look: each target group's targets as
//! Elastic Load Balancing reports them (one DescribeTargetHealth call per
//! target group, shared by every service of the look that uses it), each
//! task's own target found among them, and the groups' deregistration
//! delays (read once and kept: they rarely change, and a drain only needs
//! to be known roughly).

use std::collections::HashMap;
use std::time::Duration;

use super::calls::Shared;
use crate::aws::{AwsError, ClientPool, Clients, classify};
use crate::request::observation::{LoadBalancerView, TargetSeen, TaskView, target_group_name};

/// How long a target group's deregistration delay, once read, is trusted.
const DRAIN_KEPT: Duration = Duration::from_secs(600);

/// One target as DescribeTargetHealth lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Row {
    /// An IP address (`ip` target groups) or an instance id (`instance`).
    pub id: String,
    pub port: Option<u16>,
    pub state: String,
    pub reason: Option<String>,
}

/// Target group ARN → its targets, for each of `arns` (each asked once).
pub(super) async fn health(
    clients: &Clients,
    arns: &[String],
) -> HashMap<String, Shared<Vec<Row>>> {
    let mut out = HashMap::new();
    for arn in arns {
        if out.contains_key(arn) {
            continue;
        }
        let action = "elasticloadbalancing:DescribeTargetHealth";
        let answer = clients
            .call(action, || async {
                clients
                    .elb
                    .describe_target_health()
                    .target_group_arn(arn)
                    .send()
                    .await
                    .map_err(|e| classify(action, e))
            })
            .await
            .map(|answer| {
                answer
                    .target_health_descriptions()
                    .iter()
                    .map(|d| Row {
                        id: d
                            .target()
                            .and_then(|t| t.id())
                            .map(str::to_string)
                            .unwrap_or_default(),
                        port: d
                            .target()
                            .and_then(|t| t.port())
                            .and_then(|p| u16::try_from(p).ok()),
                        state: d
                            .target_health()
                            .and_then(|h| h.state())
                            .map_or("unavailable".to_string(), |s| s.as_str().to_string()),
                        reason: d
                            .target_health()
                            .and_then(|h| h.reason())
                            .map(|r| r.as_str().to_string()),
                    })
                    .collect()
            });
        out.insert(arn.clone(), answer);
    }
    out
}

/// The longest deregistration delay among `arns`, or `None` when none
/// could be read (the drain is then not allowed for: a slower step fails
/// sooner, it never goes on blind).
pub(super) async fn longest_drain(
    pool: &ClientPool,
    clients: &Clients,
    arns: &[String],
) -> Option<Duration> {
    let mut longest = None;
    for arn in arns {
        let delay = match pool.looks.drains.get(arn, DRAIN_KEPT) {
            Some(d) => Some(d),
            None => match drain_of(clients, arn).await {
                Ok(d) => {
                    pool.looks.drains.remember(arn, d);
                    Some(d)
                }
                Err(e) => {
                    tracing::debug!(target_group = %arn, error = %e, "could not read the deregistration delay");
                    None
                }
            },
        };
        longest = longest.max(delay);
    }
    longest
}

async fn drain_of(clients: &Clients, arn: &str) -> Result<Duration, AwsError> {
    let action = "elasticloadbalancing:DescribeTargetGroupAttributes";
    let answer = clients
        .call(action, || async {
            clients
                .elb
                .describe_target_group_attributes()
                .target_group_arn(arn)
                .send()
                .await
                .map_err(|e| classify(action, e))
        })
        .await?;
    // ELB's default when the attribute is not listed.
    let seconds = answer
        .attributes()
        .iter()
        .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
        .and_then(|a| a.value())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(300);
    Ok(Duration::from_secs(seconds))
}

/// Sets each task's target in every target group of its service. A task
/// whose target is not listed is `unregistered`; where several targets
/// could be the task's (an `instance` target group seen without the
/// instance), the least healthy stands for it, so a task is never taken
/// for serving on another's health.
pub(super) fn fill(
    tasks: &mut [TaskView],
    balancers: &[LoadBalancerView],
    health: &HashMap<String, Shared<Vec<Row>>>,
) -> Result<(), AwsError> {
    for lb in balancers {
        let rows = match health.get(&lb.target_group_arn) {
            Some(Ok(rows)) => rows,
            Some(Err(e)) => return Err(e.clone()),
            None => continue,
        };
        for task in tasks.iter_mut() {
            let mine = rows.iter().filter(|r| is_target_of(r, task, lb));
            let worst = mine.min_by_key(|r| (r.state == "healthy", r.state.clone()));
            task.targets.push(TargetSeen {
                group: target_group_name(&lb.target_group_arn),
                state: worst.map_or("unregistered".to_string(), |r| r.state.clone()),
                reason: worst.and_then(|r| r.reason.clone()),
            });
        }
    }
    Ok(())
}

fn is_target_of(row: &Row, task: &TaskView, lb: &LoadBalancerView) -> bool {
    match &task.private_ip {
        Some(ip) => &row.id == ip && row.port.is_none_or(|p| p == lb.container_port),
        None => task.host_ports.iter().any(|(name, container, host)| {
            name == &lb.container_name
                && *container == lb.container_port
                && row.port == Some(*host)
                && row.id.starts_with("i-")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, port: u16, state: &str) -> Row {
        Row {
            id: id.into(),
            port: Some(port),
            state: state.into(),
            reason: (state == "initial").then(|| "Elb.InitialHealthChecking".into()),
        }
    }

    const TG: &str =
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web-80/73e2d6bc24d8a067";

    fn lb() -> LoadBalancerView {
        LoadBalancerView {
            target_group_arn: TG.into(),
            container_name: "web".into(),
            container_port: 80,
        }
    }

    #[test]
    fn each_task_gets_its_own_target_or_unregistered() {
        let mut tasks = vec![
            TaskView {
                arn: "a".into(),
                private_ip: Some("10.0.0.1".into()),
                ..Default::default()
            },
            TaskView {
                arn: "b".into(),
                private_ip: Some("10.0.0.2".into()),
                ..Default::default()
            },
            TaskView {
                arn: "c".into(),
                private_ip: Some("10.0.0.3".into()),
                ..Default::default()
            },
        ];
        let health = HashMap::from([(
            TG.to_string(),
            Ok(vec![
                row("10.0.0.1", 80, "healthy"),
                row("10.0.0.2", 80, "initial"),
                row("10.0.0.3", 8080, "healthy"),
            ]),
        )]);
        fill(&mut tasks, &[lb()], &health).unwrap();
        assert_eq!(tasks[0].targets[0].state, "healthy");
        assert_eq!(tasks[0].targets[0].group, "tg/web-80");
        assert_eq!(tasks[1].targets[0].state, "initial");
        assert_eq!(
            tasks[1].targets[0].reason.as_deref(),
            Some("Elb.InitialHealthChecking")
        );
        assert_eq!(
            tasks[2].targets[0].state, "unregistered",
            "another port is another target"
        );
    }

    #[test]
    fn an_instance_target_seen_twice_counts_as_its_least_healthy() {
        let mut tasks = vec![TaskView {
            arn: "a".into(),
            host_ports: vec![("web".into(), 80, 32768)],
            ..Default::default()
        }];
        let health = HashMap::from([(
            TG.to_string(),
            Ok(vec![
                row("i-0aaa", 32768, "healthy"),
                row("i-0bbb", 32768, "unhealthy"),
            ]),
        )]);
        fill(&mut tasks, &[lb()], &health).unwrap();
        assert_eq!(tasks[0].targets[0].state, "unhealthy");
    }

    #[test]
    fn a_group_that_could_not_be_read_fails_the_fill() {
        let mut tasks = vec![TaskView::default()];
        let health = HashMap::from([(
            TG.to_string(),
            Err(AwsError::Refused {
                action: "elasticloadbalancing:DescribeTargetHealth".into(),
                code: "AccessDenied".into(),
                message: "no".into(),
            }),
        )]);
        assert!(fill(&mut tasks, &[lb()], &health).is_err());
    }
}
