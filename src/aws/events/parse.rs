//! One message of the events queue read as the ECS event EventBridge put
//! in it: the envelope (`id`, `detail-type`, `source` "aws.ecs",
//! `account`, `time`, `region`, `resources`, `detail`) and, of the
//! `detail`, what the operator uses: a task's state change with its
//! `version`, a service's steady state or deployment. Fields ECS may add
//! later are ignored; a body that is not an ECS event is an `Err` saying
//! why. Pure.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::request::hints::{Health, TaskSeen};

/// One ECS event, as far as the operator reads it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Event {
    /// EventBridge's id: the copies of one event share it.
    pub id: String,
    pub kind: Kind,
    pub account: String,
    pub region: String,
    /// When ECS sent it, to the second.
    pub time: DateTime<Utc>,
    /// The cluster's name, when the event names one.
    pub cluster: Option<String>,
    pub about: About,
}

/// The `detail-type`s of ECS's events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    TaskStateChange,
    ServiceAction,
    DeploymentStateChange,
    ContainerInstanceStateChange,
    Other,
}

impl Kind {
    /// The label of `ecs_recycler_events_received_total{type}`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::TaskStateChange => "task_state_change",
            Self::ServiceAction => "service_action",
            Self::DeploymentStateChange => "deployment_state_change",
            Self::ContainerInstanceStateChange => "container_instance_state_change",
            Self::Other => "other",
        }
    }

    fn of(detail_type: &str) -> Self {
        match detail_type {
            "ECS Task State Change" => Self::TaskStateChange,
            "ECS Service Action" => Self::ServiceAction,
            "ECS Deployment State Change" => Self::DeploymentStateChange,
            "ECS Container Instance State Change" => Self::ContainerInstanceStateChange,
            _ => Self::Other,
        }
    }
}

/// What an event is about.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum About {
    /// A task changed: its newest state, with the version that orders it.
    Task {
        arn: String,
        version: u64,
        /// Its service (`group` "service:NAME"), if a service started it.
        service: Option<String>,
        seen: TaskSeen,
    },
    /// A service's action or deployment changed.
    Service {
        service: String,
        /// `eventName`: `SERVICE_STEADY_STATE`, `SERVICE_DEPLOYMENT_COMPLETED`, ...
        name: String,
        /// When ECS says it happened (`createdAt` of an action).
        changed_at: Option<DateTime<Utc>>,
    },
    /// Anything else (container instances, kinds ECS adds later).
    Other,
}

impl Event {
    /// ECS reported the service steady.
    pub(crate) fn is_steady_state(&self) -> bool {
        matches!(&self.about, About::Service { name, .. } if name == "SERVICE_STEADY_STATE")
    }
}

/// Reads one message body, received at `received`.
pub(crate) fn parse(body: &str, received: DateTime<Utc>) -> Result<Event, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let text = |key: &str| -> Result<String, String> {
        v.get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("no {key:?}"))
    };
    let source = text("source")?;
    if source != "aws.ecs" {
        return Err(format!("source {source:?} is not aws.ecs"));
    }
    let kind = Kind::of(&text("detail-type")?);
    let time = timestamp(&text("time")?).ok_or("\"time\" is not an ISO 8601 time")?;
    let detail = v
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or("no \"detail\" object")?;
    let resources: Vec<&str> = v
        .get("resources")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let service_arn = resources
        .iter()
        .find(|r| arn_resource(r).is_some_and(|r| r.starts_with("service/")));
    let cluster = detail
        .get("clusterArn")
        .and_then(Value::as_str)
        .and_then(|arn| arn_resource(arn)?.strip_prefix("cluster/"))
        .map(str::to_string)
        // A deployment's detail names no cluster; its service's ARN does
        // (service/CLUSTER/NAME).
        .or_else(|| {
            let rest = arn_resource(service_arn?)?.strip_prefix("service/")?;
            rest.split_once('/').map(|(c, _)| c.to_string())
        });
    let about = match kind {
        Kind::TaskStateChange => task(detail, received)?,
        Kind::ServiceAction | Kind::DeploymentStateChange => match service_arn {
            Some(arn) => About::Service {
                service: arn.rsplit('/').next().unwrap_or_default().to_string(),
                name: detail
                    .get("eventName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                changed_at: detail
                    .get("createdAt")
                    .and_then(Value::as_str)
                    .and_then(timestamp),
            },
            None => return Err("a service event naming no service in \"resources\"".into()),
        },
        _ => About::Other,
    };
    Ok(Event {
        id: text("id")?,
        kind,
        account: text("account")?,
        region: text("region")?,
        time,
        cluster,
        about,
    })
}

fn task(detail: &Value, received: DateTime<Utc>) -> Result<About, String> {
    let text = |key: &str| detail.get(key).and_then(Value::as_str);
    let arn = text("taskArn").ok_or("a task event with no taskArn")?;
    let version = detail
        .get("version")
        .and_then(Value::as_u64)
        .ok_or("a task event with no version")?;
    let status = |key: &str| {
        text(key)
            .map(str::to_string)
            .ok_or_else(|| format!("a task event with no {key}"))
    };
    let health: Vec<&str> = detail
        .get("containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| c.get("healthStatus").and_then(Value::as_str).unwrap_or(""))
                .collect()
        })
        .unwrap_or_default();
    let health = if health.contains(&"UNHEALTHY") {
        Health::Unhealthy
    } else if !health.is_empty() && health.iter().all(|h| *h == "HEALTHY") {
        Health::Healthy
    } else {
        Health::Unknown
    };
    Ok(About::Task {
        arn: arn.to_string(),
        version,
        service: text("group")
            .and_then(|g| g.strip_prefix("service:"))
            .map(str::to_string),
        seen: TaskSeen {
            last_status: status("lastStatus")?,
            desired_status: status("desiredStatus")?,
            created_at: text("createdAt").and_then(timestamp),
            health,
            changed_at: text("updatedAt").and_then(timestamp),
            received,
        },
    })
}

/// The resource part of an ARN (`cluster/prod` of `arn:aws:ecs:…:cluster/prod`).
fn arn_resource(arn: &str) -> Option<&str> {
    arn.splitn(6, ':').nth(5)
}

fn timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-01-23T17:58:00Z".parse().unwrap()
    }

    /// ECS's documented task state change, trimmed.
    fn task_event() -> Value {
        json!({
            "version": "0", "id": "3317b2af-7005-947d-b652-f55e762e571a",
            "detail-type": "ECS Task State Change", "source": "aws.ecs",
            "account": "111122223333", "time": "2026-01-23T17:57:58Z", "region": "us-west-2",
            "resources": ["arn:aws:ecs:us-west-2:111122223333:task/prod/b99d40b3"],
            "detail": {
                "clusterArn": "arn:aws:ecs:us-west-2:111122223333:cluster/prod",
                "taskArn": "arn:aws:ecs:us-west-2:111122223333:task/prod/b99d40b3",
                "group": "service:web", "lastStatus": "RUNNING", "desiredStatus": "RUNNING",
                "createdAt": "2026-01-23T17:57:34.402Z", "updatedAt": "2026-01-23T17:57:57.880Z",
                "version": 3,
                "containers": [{"name": "web", "healthStatus": "HEALTHY"},
                               {"name": "log", "healthStatus": "HEALTHY"}],
                "someFieldEcsAddsLater": {"x": 1}
            }
        })
    }

    #[test]
    fn a_task_state_change_is_read_with_its_version_service_and_health() {
        let e = parse(&task_event().to_string(), now()).unwrap();
        assert_eq!(e.kind, Kind::TaskStateChange);
        assert_eq!(
            (e.account.as_str(), e.region.as_str()),
            ("111122223333", "us-west-2")
        );
        assert_eq!(e.cluster.as_deref(), Some("prod"));
        assert_eq!(
            e.time,
            "2026-01-23T17:57:58Z".parse::<DateTime<Utc>>().unwrap()
        );
        let About::Task {
            arn,
            version,
            service,
            seen,
        } = e.about
        else {
            panic!("{:?}", e.about)
        };
        assert!(arn.ends_with("task/prod/b99d40b3"));
        assert_eq!((version, service.as_deref()), (3, Some("web")));
        assert_eq!(seen.health, Health::Healthy);
        assert_eq!(seen.received, now());
        assert_eq!(
            seen.changed_at,
            Some("2026-01-23T17:57:57.880Z".parse().unwrap())
        );
        assert_eq!(
            seen.created_at,
            Some("2026-01-23T17:57:34.402Z".parse().unwrap())
        );
        let mut v = task_event();
        v["detail"]["containers"][1]["healthStatus"] = json!("UNKNOWN");
        let About::Task { seen, .. } = parse(&v.to_string(), now()).unwrap().about else {
            panic!()
        };
        assert_eq!(seen.health, Health::Unknown, "one container not judged yet");
    }

    #[test]
    fn service_actions_and_deployments_name_their_service_and_cluster() {
        let steady = json!({
            "version": "0", "id": "af3c496d", "detail-type": "ECS Service Action",
            "source": "aws.ecs", "account": "111122223333", "time": "2026-01-23T17:57:58Z",
            "region": "us-west-2",
            "resources": ["arn:aws:ecs:us-west-2:111122223333:service/prod/web"],
            "detail": {"eventType": "INFO", "eventName": "SERVICE_STEADY_STATE",
                       "clusterArn": "arn:aws:ecs:us-west-2:111122223333:cluster/prod",
                       "createdAt": "2026-01-23T17:57:58.091Z"}
        });
        let e = parse(&steady.to_string(), now()).unwrap();
        assert!(e.is_steady_state());
        assert_eq!(e.cluster.as_deref(), Some("prod"));
        let deployment = json!({
            "version": "0", "id": "ddca6449", "detail-type": "ECS Deployment State Change",
            "source": "aws.ecs", "account": "111122223333", "time": "2026-01-23T17:57:58Z",
            "region": "us-west-2",
            "resources": ["arn:aws:ecs:us-west-2:111122223333:service/prod/web"],
            "detail": {"eventType": "INFO", "eventName": "SERVICE_DEPLOYMENT_COMPLETED",
                       "deploymentId": "ecs-svc/123", "updatedAt": "2026-01-23T17:57:58Z",
                       "reason": "ECS deployment ecs-svc/123 completed."}
        });
        let e = parse(&deployment.to_string(), now()).unwrap();
        assert_eq!(e.kind, Kind::DeploymentStateChange);
        assert_eq!(e.cluster.as_deref(), Some("prod"), "from the service's ARN");
        assert_eq!(
            e.about,
            About::Service {
                service: "web".into(),
                name: "SERVICE_DEPLOYMENT_COMPLETED".into(),
                changed_at: None,
            }
        );
        assert!(!e.is_steady_state());
    }

    #[test]
    fn what_is_not_an_ecs_event_says_why() {
        let cases: Vec<(String, &str)> = vec![
            ("{not json".into(), "not JSON"),
            (
                json!({"source": "aws.ec2", "detail-type": "x"}).to_string(),
                "is not aws.ecs",
            ),
            (
                {
                    let mut v = task_event();
                    v["detail"].as_object_mut().unwrap().remove("version");
                    v.to_string()
                },
                "no version",
            ),
            (
                {
                    let mut v = task_event();
                    v["time"] = json!("yesterday");
                    v.to_string()
                },
                "ISO 8601",
            ),
            (
                {
                    let mut v = task_event();
                    v.as_object_mut().unwrap().remove("detail");
                    v.to_string()
                },
                "no \"detail\"",
            ),
        ];
        for (body, why) in cases {
            let e = parse(&body, now()).unwrap_err();
            assert!(e.contains(why), "{body}: {e}");
        }
    }
}
