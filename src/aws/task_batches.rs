//! DescribeTasks calls shared by the looks of one account and cluster. A
//! call waiting to go out (for its token, or for its place among the calls
//! in flight) takes along the tasks other looks in its cluster ask for
//! meanwhile, up to ECS's 100 a call; they wait for its answer instead of
//! spending a token each. Uncontended, a call goes out at once as it would
//! alone; the busier the cluster resource read bucket, the more each call
//! carries. The one bucket behind both ListTasks and DescribeTasks was the
//! second limit of a thousand recycles at once (docs/performance.md).

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::{AwsError, Clients, classify};

/// ECS describes at most this many tasks a call.
pub(crate) const TASKS_PER_CALL: usize = 100;

type Answer = Result<Arc<DescribeTasksOutput>, AwsError>;

/// The calls still open to more tasks, one per account and cluster.
#[derive(Default)]
pub(crate) struct TaskBatches {
    open: Mutex<HashMap<(String, String), Arc<Batch>>>,
}

/// One call and the tasks it is for.
struct Batch {
    /// The tasks asked for, and whether the call has gone out (then they
    /// are fixed, and a retry sends the same).
    tasks: Mutex<(Vec<String>, bool)>,
    answer: watch::Sender<Option<Answer>>,
}

impl Batch {
    fn new(tasks: Vec<String>) -> Self {
        Self {
            tasks: Mutex::new((tasks, false)),
            answer: watch::Sender::new(None),
        }
    }

    /// Adds `more` unless the call has gone out or they would not fit.
    fn join(&self, more: &[String]) -> bool {
        let mut guard = self.tasks.lock();
        let (tasks, sent) = &mut *guard;
        if *sent {
            return false;
        }
        let new: Vec<&String> = more.iter().filter(|a| !tasks.contains(a)).collect();
        if tasks.len() + new.len() > TASKS_PER_CALL {
            return false;
        }
        tasks.extend(new.into_iter().cloned());
        true
    }

    /// The tasks to send; none can join from now on.
    fn seal(&self) -> Vec<String> {
        let mut guard = self.tasks.lock();
        guard.1 = true;
        guard.0.clone()
    }
}

impl TaskBatches {
    /// DescribeTasks for `tasks` (at most [`TASKS_PER_CALL`]) of `cluster`:
    /// joins a call of the same account and cluster waiting to go out when
    /// they fit, or makes one that others may join. The answer may describe
    /// more tasks than asked for.
    pub(crate) async fn describe(
        &self,
        clients: &Clients,
        cluster: &str,
        tasks: &[String],
    ) -> Answer {
        let key = (clients.account.clone(), cluster.to_string());
        let joined = {
            let mut open = self.open.lock();
            match open.get(&key) {
                Some(batch) if batch.join(tasks) => Err(batch.answer.subscribe()),
                _ => {
                    let batch = Arc::new(Batch::new(tasks.to_vec()));
                    open.insert(key.clone(), batch.clone());
                    Ok(batch)
                }
            }
        };
        match joined {
            Ok(batch) => {
                let mut sender = Sender {
                    batches: self,
                    key,
                    batch,
                    answered: false,
                };
                let answer = sender.call(clients, cluster).await;
                sender.answer(answer.clone());
                answer
            }
            Err(mut answer) => match answer.wait_for(Option::is_some).await {
                Ok(seen) => seen.clone().unwrap_or_else(|| Err(dropped())),
                Err(_) => Err(dropped()),
            },
        }
    }

    /// Closes `batch` to newcomers, if it is still the open one.
    fn close(&self, key: &(String, String), batch: &Arc<Batch>) {
        let mut open = self.open.lock();
        if open.get(key).is_some_and(|b| Arc::ptr_eq(b, batch)) {
            open.remove(key);
        }
    }
}

/// The look that makes the call. Dropped before answering (its look was
/// given up), it closes the call and answers the others that it was not
/// made, so none waits for it.
struct Sender<'a> {
    batches: &'a TaskBatches,
    key: (String, String),
    batch: Arc<Batch>,
    answered: bool,
}

impl Sender<'_> {
    async fn call(&self, clients: &Clients, cluster: &str) -> Answer {
        let action = "ecs:DescribeTasks";
        clients
            .call(action, || async {
                // Only now, after the wait for the token: whatever joined
                // meanwhile goes in this call.
                self.batches.close(&self.key, &self.batch);
                let tasks = self.batch.seal();
                clients
                    .ecs
                    .describe_tasks()
                    .cluster(cluster)
                    .set_tasks(Some(tasks))
                    .send()
                    .await
                    .map_err(|e| classify(action, e))
            })
            .await
            .map(Arc::new)
    }

    fn answer(&mut self, answer: Answer) {
        self.batches.close(&self.key, &self.batch);
        self.batch.answer.send_replace(Some(answer));
        self.answered = true;
    }
}

impl Drop for Sender<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.answer(Err(dropped()));
        }
    }
}

/// The shared call was given up before it answered: worth trying again.
fn dropped() -> AwsError {
    AwsError::Transient {
        action: "ecs:DescribeTasks".into(),
        message: "the shared DescribeTasks call was given up before it answered".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arns(n: std::ops::Range<usize>) -> Vec<String> {
        n.map(|i| format!("t{i}")).collect()
    }

    #[test]
    fn a_call_takes_tasks_until_it_goes_out_or_is_full() {
        let batch = Batch::new(arns(0..60));
        assert!(batch.join(&arns(50..90)), "the ten already in count once");
        assert!(
            !batch.join(&arns(90..101)),
            "101 tasks do not fit in one call"
        );
        assert!(batch.join(&arns(90..100)));
        assert_eq!(batch.seal(), arns(0..100));
        assert!(!batch.join(&arns(0..1)), "sealed: nothing more joins");
    }

    #[test]
    fn a_call_given_up_answers_those_who_joined_it_and_closes() {
        let batches = TaskBatches::default();
        let key = ("111122223333".to_string(), "prod".to_string());
        let batch = Arc::new(Batch::new(arns(0..1)));
        batches.open.lock().insert(key.clone(), batch.clone());
        assert!(batch.join(&arns(1..2)));
        let joined = batch.answer.subscribe();
        drop(Sender {
            batches: &batches,
            key: key.clone(),
            batch,
            answered: false,
        });
        assert!(
            matches!(&*joined.borrow(), Some(Err(AwsError::Transient { .. }))),
            "the one who joined is told to try again, not left waiting"
        );
        assert!(
            batches.open.lock().get(&key).is_none(),
            "closed to newcomers"
        );
    }
}
