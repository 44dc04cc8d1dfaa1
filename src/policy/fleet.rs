//! Finding a policy's services and the age of each one's oldest task, in
//! as few ECS calls as the API allows: ListServices at 100 a page;
//! DescribeServices (10 a call, with `include: [TAGS]`) only when the
//! policy selects by tags; then the running tasks — listed for the whole
//! cluster when most of its services match, else for each matching
//! service — described 100 a call. Every call goes through the account's
//! rate limiter, like the reconciler's.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_ecs::types::{DesiredStatus, ServiceField};
use chrono::{DateTime, Utc};

use super::FleetService;
use super::spec::ServiceSelector;
use crate::aws::observe::calls::{describe_chunk, list_pages, to_utc};
use crate::aws::task_batches::TASKS_PER_CALL;
use crate::aws::{AwsError, Clients, classify};

const SERVICES_PER_PAGE: i32 = 100;
const SERVICES_PER_CALL: usize = 10;
/// Pages of one listing at most (100 items a page): a bound on one look.
const MAX_PAGES: usize = 100;

/// Every matching service of the selector's clusters, with its oldest
/// running task's start.
pub(crate) async fn look(
    clients: &Clients,
    selector: &ServiceSelector,
) -> Result<Vec<FleetService>, AwsError> {
    let mut out = Vec::new();
    for cluster in &selector.clusters {
        let listed = list_services(clients, cluster).await?;
        let mut names: Vec<String> = listed
            .iter()
            .filter(|n| selector.names.is_empty() || selector.names.contains(n))
            .cloned()
            .collect();
        if !selector.tags.is_empty() {
            names = with_tags(clients, cluster, &names, selector).await?;
        }
        if names.is_empty() {
            continue;
        }
        // Listing the whole cluster costs a page per 100 tasks of every
        // service; listing each service costs a call per service.
        let oldest = if names.len() * 4 >= listed.len() {
            oldest_in_cluster(clients, cluster).await?
        } else {
            oldest_of_services(clients, cluster, &names).await?
        };
        out.extend(names.into_iter().map(|service| FleetService {
            cluster: cluster.clone(),
            oldest_started: oldest.get(&service).copied(),
            service,
            recycled_since_look: false,
        }));
    }
    Ok(out)
}

async fn list_services(clients: &Clients, cluster: &str) -> Result<Vec<String>, AwsError> {
    let action = "ecs:ListServices";
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = clients
            .call(action, || async {
                clients
                    .ecs
                    .list_services()
                    .cluster(cluster)
                    .max_results(SERVICES_PER_PAGE)
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| classify(action, e))
            })
            .await?;
        names.extend(page.service_arns().iter().map(|a| short_name(a)));
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => break,
        }
    }
    Ok(names)
}

/// The services among `names` that are ACTIVE and carry the selector's tags.
async fn with_tags(
    clients: &Clients,
    cluster: &str,
    names: &[String],
    selector: &ServiceSelector,
) -> Result<Vec<String>, AwsError> {
    let action = "ecs:DescribeServices";
    let mut out = Vec::new();
    for chunk in names.chunks(SERVICES_PER_CALL) {
        let described = clients
            .call(action, || async {
                clients
                    .ecs
                    .describe_services()
                    .cluster(cluster)
                    .set_services(Some(chunk.to_vec()))
                    .include(ServiceField::Tags)
                    .send()
                    .await
                    .map_err(|e| classify(action, e))
            })
            .await?;
        for svc in described.services() {
            let name = svc.service_name().unwrap_or_default();
            let tags: BTreeMap<String, String> = svc
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
                .collect();
            if svc.status() == Some("ACTIVE") && selector.matches(name, Some(&tags)) {
                out.push(name.to_string());
            }
        }
    }
    Ok(out)
}

/// Service name → its oldest running task's start, for every service of the cluster.
async fn oldest_in_cluster(
    clients: &Clients,
    cluster: &str,
) -> Result<HashMap<String, DateTime<Utc>>, AwsError> {
    let arns = list_pages(clients, cluster, None, DesiredStatus::Running, MAX_PAGES).await?;
    oldest_by_service(clients, cluster, &arns).await
}

async fn oldest_of_services(
    clients: &Clients,
    cluster: &str,
    names: &[String],
) -> Result<HashMap<String, DateTime<Utc>>, AwsError> {
    let mut arns = Vec::new();
    for name in names {
        arns.extend(
            list_pages(
                clients,
                cluster,
                Some(name),
                DesiredStatus::Running,
                MAX_PAGES,
            )
            .await?,
        );
    }
    oldest_by_service(clients, cluster, &arns).await
}

/// A task not started yet counts from its creation: it is the task the
/// service has had longest, whatever it is doing.
async fn oldest_by_service(
    clients: &Clients,
    cluster: &str,
    arns: &[String],
) -> Result<HashMap<String, DateTime<Utc>>, AwsError> {
    let mut oldest: HashMap<String, DateTime<Utc>> = HashMap::new();
    for chunk in arns.chunks(TASKS_PER_CALL) {
        let described = describe_chunk(clients, cluster, chunk).await?;
        for task in described.tasks() {
            let Some(service) = task.group().and_then(|g| g.strip_prefix("service:")) else {
                continue;
            };
            let Some(at) = to_utc(task.started_at().or(task.created_at())) else {
                continue;
            };
            oldest
                .entry(service.to_string())
                .and_modify(|t| *t = (*t).min(at))
                .or_insert(at);
        }
    }
    Ok(oldest)
}

fn short_name(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or(arn).to_string()
}
