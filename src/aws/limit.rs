//! Staying inside a share of AWS's request limits, and riding out throttling.
//!
//! AWS throttles per account and Region with one token bucket per
//! *category* of actions (ECS: ListTasks and DescribeTasks draw from one
//! bucket; UpdateService's refills at 5 a second), shared by every caller
//! in the account. The table is data in the `api-limits` crate, which the
//! simulator's realistic throttling reads too. The operator keeps one
//! client-side bucket per category, account and Region ([`Limiter`]), sized
//! to a share of AWS's ([`ApiShare`], half by default) so the account's own
//! deploys keep the rest; the replicas of one operator split that share
//! between them by how many are live ([`Replicas`]).
//!
//! The SDK's own retry modes were measured against the simulator's
//! throttling (docs/performance.md): `standard` gives up after 3 attempts
//! and `adaptive` only slows down after being throttled, per client;
//! neither keeps several clients of one account under a shared limit. So a
//! token is taken before every attempt, and a call answered with throttling
//! anyway (someone else spent the account's bucket) is tried again with
//! jittered exponential backoff (`backon`); a call still throttled after that
//! is a transient error, which requeues the request — throttling never fails
//! a request.
//!
//! Every call has a time by which its token must be in hand: a mutating
//! call, the end of the record's lease as this replica counts it (which
//! already leaves out the lease's safety margin); a read, its operation
//! deadline. A token whose turn would come later is not taken: the call
//! answers [`AwsError::Deferred`] at once, the step ends and is tried again
//! when the turn would have come. So a category's queue never holds more
//! than its rate serves within a lease, and no token is spent on a call
//! that the fence would then refuse. A token taken for an attempt that is
//! not sent after all (dropped while waiting, or its lease lost meanwhile)
//! goes back to the bucket.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use api_limits::Category;
use backon::{ExponentialBuilder, Retryable};
use parking_lot::Mutex;
use tokio::time::Instant;

use super::AwsError;
use crate::metrics::{CategoryLabel, Metrics};

/// An account's own bucket for a category, where it differs from the
/// published one: raised by AWS Support, or scaled in a simulation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quota {
    pub burst: u32,
    pub refill_per_second: f64,
}

/// How much of AWS's buckets the operator may spend, all its replicas together.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiShare {
    /// The fraction of every bucket (its burst and its refill) the operator
    /// may use; the rest is left to the account's other callers.
    pub share: f64,
    /// Category name → its own fraction, instead of `share`.
    pub per_category: BTreeMap<String, f64>,
    /// Category name → the account's bucket, instead of the published one.
    pub quotas: BTreeMap<String, Quota>,
}

impl Default for ApiShare {
    /// Half of every bucket: the account's deploys keep at least the other half.
    fn default() -> Self {
        Self {
            share: 0.5,
            per_category: BTreeMap::new(),
            quotas: BTreeMap::new(),
        }
    }
}

/// A category for actions the table does not list: small, so that an
/// action added without its category costs little of anyone's budget.
const UNLISTED: Category = Category {
    name: "unlisted",
    service: api_limits::Service::Ecs,
    actions: &[],
    burst: 10,
    refill_per_second: 1.0,
    source: api_limits::Source::Assumed,
};

impl ApiShare {
    /// Flag-named reasons why the share cannot be used.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let fraction = |v: f64| v > 0.0 && v <= 1.0;
        if !fraction(self.share) {
            out.push(format!(
                "--api-share ({}) must be more than 0 and at most 1: the fraction of each of AWS's buckets the operator may use",
                self.share
            ));
        }
        for (name, share) in &self.per_category {
            out.extend(unknown_category("--api-category-share", name));
            if !fraction(*share) {
                out.push(format!(
                    "--api-category-share {name}={share}: the share must be more than 0 and at most 1"
                ));
            }
        }
        for (name, q) in &self.quotas {
            out.extend(unknown_category("--api-quota", name));
            if q.burst == 0 || !(q.refill_per_second > 0.0 && q.refill_per_second.is_finite()) {
                out.push(format!(
                    "--api-quota {name}={}/{}: the burst must be at least 1 and the refill more than 0 a second",
                    q.burst, q.refill_per_second
                ));
            }
        }
        out
    }

    /// The operator's bucket for `category`, all replicas together.
    fn budget(&self, category: &Category) -> (f64, f64) {
        let (burst, refill) = match self.quotas.get(category.name) {
            Some(q) => (f64::from(q.burst), q.refill_per_second),
            None => (f64::from(category.burst), category.refill_per_second),
        };
        let share = self
            .per_category
            .get(category.name)
            .copied()
            .unwrap_or(self.share);
        (burst * share, refill * share)
    }
}

fn unknown_category(flag: &str, name: &str) -> Option<String> {
    if api_limits::named(name).is_some() {
        return None;
    }
    let closest = api_limits::CATEGORIES
        .iter()
        .map(|c| (strsim::jaro_winkler(c.name, name), c.name))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(score, _)| *score > 0.8)
        .map(|(_, n)| format!(" (did you mean {n}?)"))
        .unwrap_or_default();
    let known: Vec<&str> = api_limits::CATEGORIES.iter().map(|c| c.name).collect();
    Some(format!(
        "{flag}: no throttling category is named {name}{closest}; the categories are {}",
        known.join(", ")
    ))
}

/// `service-modify=0.2`, as `--api-category-share` takes it.
pub fn parse_category_share(text: &str) -> Result<(String, f64), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not CATEGORY=SHARE (service-modify=0.2)"))?;
    let share = value
        .trim()
        .parse::<f64>()
        .map_err(|e| format!("{text:?}: the share {value:?} is not a number: {e}"))?;
    Ok((name.trim().to_string(), share))
}

/// `service-modify=100/10` (burst/refill a second), as `--api-quota` takes it.
pub fn parse_quota(text: &str) -> Result<(String, Quota), String> {
    let form = || format!("{text:?} is not CATEGORY=BURST/REFILL (service-modify=100/10)");
    let (name, value) = text.split_once('=').ok_or_else(form)?;
    let (burst, refill) = value.split_once('/').ok_or_else(form)?;
    let burst = burst
        .trim()
        .parse::<u32>()
        .map_err(|e| format!("{text:?}: the burst {burst:?} is not a whole number: {e}"))?;
    let refill_per_second = refill
        .trim()
        .parse::<f64>()
        .map_err(|e| format!("{text:?}: the refill {refill:?} is not a number: {e}"))?;
    Ok((
        name.trim().to_string(),
        Quota {
            burst,
            refill_per_second,
        },
    ))
}

/// How many replicas of the operator are live, as this one last counted
/// them (from the leases in the store): each spends its part of the share.
#[derive(Debug)]
pub(crate) struct Replicas(AtomicUsize);

impl Default for Replicas {
    fn default() -> Self {
        Self(AtomicUsize::new(1))
    }
}

impl Replicas {
    pub(crate) fn set(&self, n: usize) {
        self.0.store(n.max(1), Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed).max(1)
    }
}

/// Calls of one category in flight at once per account: far more than the
/// rate needs.
const IN_FLIGHT: usize = 32;

/// The client-side bucket of one category in one account and Region.
/// Callers reserve a token, possibly in the future, and sleep until it is
/// theirs: fair, and no thundering herd when the bucket refills.
///
/// It starts empty, not full: replicas that start together cannot yet see
/// each other's leases, and full buckets would let each spend the whole
/// share's burst at once.
pub(crate) struct Limiter {
    category: &'static str,
    /// Calls of this category in flight (or waiting for a token, or backing
    /// off) at once: beyond it callers wait holding no SDK future. Per
    /// category, so that calls queued for a slow bucket (UpdateService's)
    /// never hold up the others.
    slots: tokio::sync::Semaphore,
    /// The operator's part of AWS's bucket, all replicas together.
    burst: f64,
    refill: f64,
    replicas: Arc<Replicas>,
    state: Mutex<(f64, Instant)>,
}

impl Limiter {
    pub(crate) fn new(share: &ApiShare, action: &str, replicas: Arc<Replicas>) -> Self {
        let category = api_limits::category_of_iam(action).unwrap_or(&UNLISTED);
        let (burst, refill) = share.budget(category);
        Self {
            category: category.name,
            slots: tokio::sync::Semaphore::new(IN_FLIGHT),
            burst,
            refill,
            replicas,
            state: Mutex::new((0.0, Instant::now())),
        }
    }

    pub(crate) fn category(&self) -> &'static str {
        self.category
    }

    /// A place among the calls of this category in flight; waits for one.
    pub(crate) async fn slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.slots.acquire().await.ok()
    }

    /// This replica's burst and refill: its part of the operator's.
    fn own(&self) -> (f64, f64) {
        let n = self.replicas.get() as f64;
        ((self.burst / n).max(1.0), self.refill / n)
    }

    /// Takes a token if its turn comes by `by`, answering it and how long
    /// to wait for it; otherwise takes nothing and answers how long the
    /// wait would have been.
    pub(crate) fn take(&self, by: Instant) -> Result<(Token<'_>, Duration), Duration> {
        let (burst, refill) = self.own();
        let mut state = self.state.lock();
        let now = Instant::now();
        let (tokens, at) = &mut *state;
        let added = now.saturating_duration_since(*at).as_secs_f64() * refill;
        *tokens = (*tokens + added).min(burst);
        *at = now;
        // Negative tokens are the turns already promised to calls waiting.
        let wait = if *tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - *tokens) / refill)
        };
        if now + wait > by {
            return Err(wait);
        }
        *tokens -= 1.0;
        Ok((
            Token {
                limiter: self,
                spent: false,
            },
            wait,
        ))
    }

    /// How long a token taken now would be waited for.
    pub(crate) fn wait_now(&self) -> Duration {
        let (burst, refill) = self.own();
        let (tokens, at) = *self.state.lock();
        let added = Instant::now().saturating_duration_since(at).as_secs_f64() * refill;
        let tokens = (tokens + added).min(burst);
        Duration::from_secs_f64((1.0 - tokens).max(0.0) / refill)
    }

    /// A token taken and not spent: the next turn is one sooner.
    fn give_back(&self) {
        let (burst, _) = self.own();
        let mut state = self.state.lock();
        state.0 = (state.0 + 1.0).min(burst);
    }

    /// Waits for a token, however long; answers how long that took.
    #[cfg(test)]
    pub(crate) async fn acquire(&self) -> Duration {
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let (token, wait) = self.take(far).expect("a turn within a year");
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        token.spend();
        wait
    }
}

/// One attempt's token: given back to its bucket when dropped unspent, so an
/// attempt that is not sent costs the bucket nothing.
pub(crate) struct Token<'a> {
    limiter: &'a Limiter,
    spent: bool,
}

impl Token<'_> {
    /// The attempt goes out: the token is gone.
    pub(crate) fn spend(mut self) {
        self.spent = true;
    }
}

impl Drop for Token<'_> {
    fn drop(&mut self) {
        if !self.spent {
            self.limiter.give_back();
        }
    }
}

/// The buckets of one account and Region, one per category, made on first use.
pub(crate) struct Limiters {
    share: ApiShare,
    replicas: Arc<Replicas>,
    buckets: Mutex<BTreeMap<&'static str, Arc<Limiter>>>,
}

impl Limiters {
    pub(crate) fn new(share: ApiShare, replicas: Arc<Replicas>) -> Self {
        Self {
            share,
            replicas,
            buckets: Mutex::new(BTreeMap::new()),
        }
    }

    /// The bucket `action` (`ecs:ListTasks`) draws from.
    pub(crate) fn bucket(&self, action: &str) -> Arc<Limiter> {
        let name = api_limits::category_of_iam(action).map_or(UNLISTED.name, |c| c.name);
        self.buckets
            .lock()
            .entry(name)
            .or_insert_with(|| Arc::new(Limiter::new(&self.share, action, self.replicas.clone())))
            .clone()
    }
}

/// How throttled calls are tried again: jittered exponential backoff from
/// 100 ms, doubling up to 5 s, eight times (about 20 s at most).
fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(8)
}

/// One AWS call made politely: a token before each attempt, taken only
/// when its turn comes by `by()` (the lease's end or the call's deadline;
/// `None` once the lease is lost; a time gone when it has run out), every attempt counted in
/// the metrics by `action` and outcome, throttling and other transient
/// failures tried again with backoff.
pub(crate) async fn call<T, F, Fut, B>(
    limiter: &Limiter,
    metrics: &Metrics,
    action: &str,
    by: B,
    mut attempt: F,
) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
    B: Fn() -> Option<Instant>,
{
    let not_sent = || AwsError::NotSent {
        action: action.to_string(),
    };
    let deferred = |wait: Duration| AwsError::Deferred {
        action: action.to_string(),
        category: limiter.category(),
        wait,
    };
    // Callers beyond the cap wait here, holding no SDK future: a tick over a
    // thousand services costs the memory of a few dozen calls. Not past `by`.
    let counted = |result: Result<T, AwsError>| {
        metrics.aws_call(action, outcome(&result));
        result
    };
    let Some(first_by) = by().filter(|b| *b > Instant::now()) else {
        return counted(Err(not_sent()));
    };
    let Ok(_slot) = tokio::time::timeout_at(first_by, limiter.slot()).await else {
        return counted(Err(deferred(limiter.wait_now())));
    };
    let once = || {
        let fut = attempt();
        let deadline = by();
        let by = &by;
        async move {
            let Some(deadline) = deadline.filter(|d| *d > Instant::now()) else {
                return counted(Err(not_sent()));
            };
            let (token, waited) = match limiter.take(deadline) {
                Ok(t) => t,
                Err(wait) => return counted(Err(deferred(wait))),
            };
            if !waited.is_zero() {
                tokio::time::sleep(waited).await;
                metrics.throttle_wait_seconds.inc_by(waited.as_secs_f64());
                metrics
                    .token_wait_seconds
                    .get_or_create(&CategoryLabel {
                        category: limiter.category(),
                    })
                    .inc_by(waited.as_secs_f64());
            }
            // The lease may have been lost while waiting, or the wait
            // overran its end: either way the token goes back unspent.
            match by() {
                None => return counted(Err(not_sent())),
                Some(end) if Instant::now() > end => {
                    return counted(Err(deferred(Duration::ZERO)));
                }
                Some(_) => {}
            }
            token.spend();
            counted(fut.await)
        }
    };
    // Throttling gets the whole schedule; other transient failures three tries.
    let mut others = 0u32;
    once.retry(backoff())
        .when(|e: &AwsError| match e {
            AwsError::Throttled { .. } => true,
            AwsError::Transient { .. } | AwsError::Unanswered { .. } => {
                others += 1;
                others <= 3
            }
            AwsError::Refused { .. } | AwsError::NotSent { .. } | AwsError::Deferred { .. } => {
                false
            }
        })
        .notify(|_, delay| {
            metrics.throttle_wait_seconds.inc_by(delay.as_secs_f64());
        })
        .await
}

fn outcome<T>(result: &Result<T, AwsError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(AwsError::Throttled { .. }) => "throttled",
        Err(AwsError::Transient { .. }) => "transient",
        Err(AwsError::Refused { .. }) => "refused",
        Err(AwsError::Unanswered { .. }) => "unanswered",
        Err(AwsError::NotSent { .. }) => "not_sent",
        Err(AwsError::Deferred { .. }) => "deferred",
    }
}

#[cfg(test)]
mod tests;
