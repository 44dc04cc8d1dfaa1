//! AWS's API throttling buckets as data: which actions share a bucket (a
//! *category*), how many tokens it holds (the burst) and how fast it refills
//! (the sustained rate). AWS keeps one bucket per category, account and
//! Region, shared by every caller in the account: the operator, the user's
//! CI/CD, the console.
//!
//! The one table both sides read: the operator takes a share of each bucket
//! (`src/aws/limit.rs`), and the simulator's realistic throttling answers
//! ThrottlingException when a bucket is empty (`crates/ecs-sim`). Keeping it
//! in a crate of its own, with no dependencies, lets the simulator use it
//! without depending on the operator.
//!
//! Where the figures come from is on each category ([`Source`]); the
//! `published` ones are copied from AWS's pages, named in
//! `docs/performance.md`, and a test below pins them.

#![warn(unreachable_pub)]

/// An AWS service, named by its IAM prefix (`ecs:StopTask`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Ecs,
    ApplicationAutoScaling,
    ElasticLoadBalancing,
    CloudWatch,
}

impl Service {
    /// The IAM prefix: `ecs`, `application-autoscaling`, `elasticloadbalancing`.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Ecs => "ecs",
            Self::ApplicationAutoScaling => "application-autoscaling",
            Self::ElasticLoadBalancing => "elasticloadbalancing",
            Self::CloudWatch => "cloudwatch",
        }
    }

    pub fn from_prefix(prefix: &str) -> Option<Self> {
        [
            Self::Ecs,
            Self::ApplicationAutoScaling,
            Self::ElasticLoadBalancing,
            Self::CloudWatch,
        ]
        .into_iter()
        .find(|s| s.prefix() == prefix)
    }
}

/// Where a category's figures come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// AWS publishes them (the page is named in `docs/performance.md`).
    Published,
    /// AWS publishes none: a cautious figure of our own, to be overridden
    /// (`--api-quota`) once the account's real one is known.
    Assumed,
}

/// One bucket: the actions that draw from it, its size and its refill.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Category {
    /// How the flags, metrics and the simulator's timeline name it
    /// (`service-modify`).
    pub name: &'static str,
    pub service: Service,
    /// Action names without the prefix (`UpdateService`).
    pub actions: &'static [&'static str],
    /// Tokens the bucket holds when full: calls allowed at once.
    pub burst: u32,
    /// Tokens added back a second: the sustained rate.
    pub refill_per_second: f64,
    pub source: Source,
}

const fn ecs(
    name: &'static str,
    actions: &'static [&'static str],
    burst: u32,
    refill_per_second: f64,
) -> Category {
    Category {
        name,
        service: Service::Ecs,
        actions,
        burst,
        refill_per_second,
        source: Source::Published,
    }
}

/// Every category known, ECS's as AWS's page "Request throttling for the
/// Amazon ECS API" lists them (same for all Regions).
pub const CATEGORIES: &[Category] = &[
    ecs(
        "cluster-modify",
        &[
            "CreateCluster",
            "DeleteCluster",
            "PutClusterCapacityProviders",
            "UpdateCluster",
            "UpdateClusterSettings",
        ],
        20,
        1.0,
    ),
    ecs(
        "cluster-read",
        &["DescribeClusters", "ListClusters"],
        50,
        20.0,
    ),
    ecs(
        "task-definition-modify",
        &["DeregisterTaskDefinition", "RegisterTaskDefinition"],
        20,
        1.0,
    ),
    ecs(
        "task-definition-read",
        &[
            "DescribeTaskDefinition",
            "ListTaskDefinitions",
            "ListTaskDefinitionFamilies",
        ],
        50,
        20.0,
    ),
    ecs("task-definition-delete", &["DeleteTaskDefinitions"], 5, 1.0),
    ecs(
        "capacity-provider-modify",
        &[
            "CreateCapacityProvider",
            "DeleteCapacityProvider",
            "UpdateCapacityProvider",
        ],
        10,
        1.0,
    ),
    ecs(
        "capacity-provider-read",
        &["DescribeCapacityProviders"],
        50,
        20.0,
    ),
    ecs("tag-modify", &["TagResource", "UntagResource"], 20, 10.0),
    ecs("tag-read", &["ListTagsForResource"], 50, 20.0),
    ecs(
        "setting-modify",
        &[
            "DeleteAccountSetting",
            "PutAccountSetting",
            "PutAccountSettingDefault",
        ],
        10,
        1.0,
    ),
    ecs("setting-read", &["ListAccountSettings"], 50, 20.0),
    ecs(
        "cluster-resource-modify",
        &[
            "DeleteAttributes",
            "DeregisterContainerInstance",
            "ExecuteCommand",
            "PutAttributes",
            "RunTask",
            "StartTask",
            "StopTask",
            "UpdateContainerAgent",
            "UpdateContainerInstancesStates",
        ],
        100,
        40.0,
    ),
    ecs(
        "cluster-resource-read",
        &[
            "DescribeContainerInstances",
            "DescribeTasks",
            "ListAttributes",
            "ListContainerInstances",
            "ListTasks",
        ],
        100,
        20.0,
    ),
    ecs(
        "agent-modify",
        &[
            "RegisterContainerInstance",
            "SubmitAttachmentStateChanges",
            "SubmitContainerStateChange",
            "SubmitTaskStateChange",
        ],
        200,
        120.0,
    ),
    ecs(
        "service-modify",
        &["CreateService", "DeleteService", "UpdateService"],
        50,
        5.0,
    ),
    ecs(
        "service-read",
        &["DescribeServices", "ListServices"],
        100,
        20.0,
    ),
    ecs(
        "service-deployment-read",
        &["DescribeServiceDeployments", "ListServiceDeployments"],
        50,
        20.0,
    ),
    ecs(
        "service-revision-read",
        &["DescribeServiceRevisions"],
        50,
        20.0,
    ),
    ecs(
        "task-protection",
        &["UpdateTaskProtection", "GetTaskProtection"],
        200,
        80.0,
    ),
    ecs(
        "cluster-service-resource-read",
        &["ListServicesByNamespace"],
        10,
        1.0,
    ),
    // Application Auto Scaling publishes no request rates (its quotas page
    // lists only counts of targets and policies): ECS's read figures,
    // assumed, for every action.
    Category {
        name: "autoscaling",
        service: Service::ApplicationAutoScaling,
        actions: &[],
        burst: 50,
        refill_per_second: 20.0,
        source: Source::Assumed,
    },
    // ELB's page "Request throttling for the ELB API" gives its
    // non-mutating (Describe*) actions a bucket of 40 refilled at 10 a
    // second, per account and Region, apart from Classic Load Balancers'.
    Category {
        name: "load-balancing-read",
        service: Service::ElasticLoadBalancing,
        actions: &[
            "DescribeTargetHealth",
            "DescribeTargetGroups",
            "DescribeTargetGroupAttributes",
            "DescribeLoadBalancers",
            "DescribeListeners",
        ],
        burst: 40,
        refill_per_second: 10.0,
        source: Source::Published,
    },
    // CloudWatch's quotas page gives DescribeAlarms 9 transactions a second
    // per account and Region (a quota, adjustable); read by alarm gates.
    Category {
        name: "cloudwatch-describe-alarms",
        service: Service::CloudWatch,
        actions: &["DescribeAlarms"],
        burst: 9,
        refill_per_second: 9.0,
        source: Source::Published,
    },
];

/// The category an action draws from: `service` is its IAM prefix. An ECS
/// action the table does not list has none (the caller decides what that
/// costs); every Application Auto Scaling action shares one.
pub fn category_of(service: Service, action: &str) -> Option<&'static Category> {
    CATEGORIES.iter().find(|c| {
        c.service == service
            && (c.actions.contains(&action)
                || (c.actions.is_empty() && service == Service::ApplicationAutoScaling))
    })
}

/// The category an IAM action names (`ecs:UpdateService`).
pub fn category_of_iam(action: &str) -> Option<&'static Category> {
    let (prefix, name) = action.split_once(':')?;
    category_of(Service::from_prefix(prefix)?, name)
}

/// A category by its name (`service-modify`).
pub fn named(name: &str) -> Option<&'static Category> {
    CATEGORIES.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The figures of the table, which the AWS page confirms.
    #[test]
    fn the_buckets_the_operator_draws_on_are_awss() {
        for (action, name, burst, refill) in [
            ("ecs:DescribeServices", "service-read", 100, 20.0),
            ("ecs:ListServices", "service-read", 100, 20.0),
            ("ecs:DescribeTasks", "cluster-resource-read", 100, 20.0),
            ("ecs:ListTasks", "cluster-resource-read", 100, 20.0),
            ("ecs:StopTask", "cluster-resource-modify", 100, 40.0),
            ("ecs:RunTask", "cluster-resource-modify", 100, 40.0),
            ("ecs:UpdateService", "service-modify", 50, 5.0),
            ("ecs:CreateService", "service-modify", 50, 5.0),
            ("ecs:DescribeClusters", "cluster-read", 50, 20.0),
            (
                "ecs:DescribeTaskDefinition",
                "task-definition-read",
                50,
                20.0,
            ),
            // Read right before each batch, and where a task cannot be placed.
            ("ecs:GetTaskProtection", "task-protection", 200, 80.0),
            (
                "ecs:ListContainerInstances",
                "cluster-resource-read",
                100,
                20.0,
            ),
            (
                "ecs:DescribeContainerInstances",
                "cluster-resource-read",
                100,
                20.0,
            ),
            (
                "ecs:DescribeCapacityProviders",
                "capacity-provider-read",
                50,
                20.0,
            ),
        ] {
            let c = category_of_iam(action).unwrap_or_else(|| panic!("{action}"));
            assert_eq!(
                (c.name, c.burst, c.refill_per_second),
                (name, burst, refill),
                "{action}"
            );
        }
    }

    #[test]
    fn every_action_is_in_one_category_and_names_are_unique() {
        let mut names = std::collections::HashSet::new();
        for c in CATEGORIES {
            assert!(names.insert(c.name), "{} twice", c.name);
            assert!(c.burst >= 1 && c.refill_per_second > 0.0, "{}", c.name);
            for a in c.actions {
                let owners = CATEGORIES
                    .iter()
                    .filter(|o| o.service == c.service && o.actions.contains(a))
                    .count();
                assert_eq!(owners, 1, "{a}");
            }
        }
        assert_eq!(
            category_of_iam("application-autoscaling:RegisterScalableTarget").map(|c| c.name),
            Some("autoscaling")
        );
        assert_eq!(category_of_iam("ecs:NoSuchAction"), None);
        assert_eq!(category_of_iam("nonsense"), None);
    }
}
