//! How each fault of the catalogue ([`crate::nemesis`]) is done to the
//! running world, and undone: signals to the replicas, the proxy or the
//! store's lock, the simulator's control API, the campaign's own AWS calls
//! (signed as someone other than the operator), the gate alarm on moto, the
//! hook receiver's mode. A fault that finds nothing to act on (a replica
//! already down, a service already deleted) is journalled as such, never an
//! error of the run.

use std::time::Duration;

use aws_sdk_cloudwatch::types::StateValue;
use serde_json::{Value, json};

use ecs_recycler::store::{Kind, Store};

use super::{Bed, replicas};
use crate::nemesis::{AIMED_WINDOW, Fault, Whom};
use crate::plan::CLUSTER;
use crate::watch::Act;

/// A task as the campaign picks one to act on.
struct RunningTask {
    arn: String,
    /// When ECS created it, epoch seconds.
    created: f64,
    /// Launched on FARGATE_SPOT.
    spot: bool,
}

/// A fault's identity while it lasts: its description.
fn fault_key(f: &Fault) -> String {
    format!("{f:?}")
}

impl Bed {
    /// Begins fault `f`; answers whether it acted on something.
    pub async fn begin(&mut self, f: &Fault) -> bool {
        let what = f.describe(&self.schedule);
        let (acted, done) = match self.begin_fault(f).await {
            Ok(true) => (true, what),
            Ok(false) => (false, format!("{what} (nothing to act on)")),
            Err(e) => (false, format!("{what} (failed: {e})")),
        };
        self.watch.note(&self.sim.clock, Act::FaultBegan(done));
        acted
    }

    /// Ends fault `f` (for those that last).
    pub async fn heal(&mut self, f: &Fault) {
        let healed = self.heal_fault(f).await;
        let what = f.describe(&self.schedule);
        let what = match healed {
            Ok(None) => what,
            Ok(Some(note)) => format!("{what} ({note})"),
            Err(e) => format!("{what} (heal failed: {e})"),
        };
        self.watch.note(&self.sim.clock, Act::FaultHealed(what));
    }

    async fn begin_fault(&mut self, f: &Fault) -> anyhow::Result<bool> {
        match *f {
            Fault::Kill { whom, .. } => {
                let replica = self.resolve(whom).await;
                self.hit.insert(fault_key(f), replica);
                Ok(self.replicas.kill(replica))
            }
            Fault::Pause {
                aim: Some(aim),
                held,
                ..
            } => Ok(self.pause_first(aim.needles(), held)),
            Fault::Pause { whom, .. } => {
                let replica = self.resolve(whom).await;
                self.hit.insert(fault_key(f), replica);
                Ok(self.replicas.pause(replica))
            }
            Fault::StoreStall {
                aim: Some(aim),
                held,
                ..
            } => Ok(self.replicas.stall_first(aim.needles(), held, AIMED_WINDOW)),
            Fault::StoreStall { whom, held, .. } => {
                let replica = self.resolve(whom).await;
                Ok(self.stall_store(replica, held).await)
            }
            Fault::Throttle { fraction, .. } => {
                self.sim
                    .control("/_sim/config", json!({"throttle": {"fraction": fraction}}))
                    .await?;
                Ok(true)
            }
            Fault::FailedStarts {
                service, fraction, ..
            } => {
                self.service_faults(service, json!({"failStart": fraction}))
                    .await
            }
            Fault::UnhealthyTargets {
                service, fraction, ..
            } => {
                let key = if self.schedule.services[service].load_balancer {
                    "targetNeverHealthy"
                } else {
                    "neverHealthy"
                };
                self.service_faults(service, json!({ key: fraction })).await
            }
            Fault::Scale { service, to } => {
                let name = &self.schedule.services[service].name;
                self.sim
                    .control(
                        "/_sim/scale",
                        json!({"cluster": CLUSTER, "service": name, "desiredCount": to}),
                    )
                    .await?;
                Ok(true)
            }
            Fault::ForeignDeployment { service } => {
                self.clients
                    .ecs
                    .update_service()
                    .cluster(CLUSTER)
                    .service(&self.schedule.services[service].name)
                    .force_new_deployment(true)
                    .send()
                    .await?;
                Ok(true)
            }
            Fault::AlarmFires { .. } => {
                self.set_alarm(StateValue::Alarm).await?;
                Ok(true)
            }
            Fault::HookMisbehaves { mode, .. } => {
                self.set_hook_mode(Some(mode));
                Ok(true)
            }
            Fault::ServiceDeleted { service } => {
                self.clients
                    .ecs
                    .delete_service()
                    .cluster(CLUSTER)
                    .service(&self.schedule.services[service].name)
                    .force(true)
                    .send()
                    .await?;
                Ok(true)
            }
            Fault::Protect {
                service,
                count,
                pick,
                minutes,
                ..
            } => {
                let mut running = self.running_tasks(service).await?;
                running.sort_by(|a, b| a.arn.cmp(&b.arn));
                if running.is_empty() {
                    return Ok(false);
                }
                let first = ((pick * running.len() as f64) as usize).min(running.len() - 1);
                let tasks: Vec<String> = running
                    .iter()
                    .cycle()
                    .skip(first)
                    .take((count as usize).min(running.len()))
                    .map(|t| t.arn.clone())
                    .collect();
                self.protect(&tasks, Some(minutes)).await?;
                self.protected.insert(fault_key(f), tasks);
                Ok(true)
            }
            Fault::Spot { service, newest } => {
                let on_spot = self.running_tasks(service).await?.into_iter();
                let on_spot = on_spot.filter(|t| t.spot);
                let task = if newest {
                    on_spot.max_by(|a, b| a.created.total_cmp(&b.created))
                } else {
                    on_spot.min_by(|a, b| a.created.total_cmp(&b.created))
                };
                let Some(task) = task else {
                    return Ok(false);
                };
                self.sim
                    .control(
                        "/_sim/spot-interruptions",
                        json!({"cluster": CLUSTER, "task": task.arn}),
                    )
                    .await?;
                Ok(true)
            }
            Fault::Feed { mode, .. } => self.feed(Some(mode.settings())).await,
        }
    }

    /// Undoes `f`; answers a note on how it went, if any.
    async fn heal_fault(&mut self, f: &Fault) -> anyhow::Result<Option<&'static str>> {
        match *f {
            Fault::Kill { .. } => {
                if let Some(replica) = self.hit.remove(&fault_key(f)) {
                    self.replicas.start(replica)?;
                }
            }
            Fault::Pause { aim: Some(_), .. } => {
                if !self.replicas.stalled_any() {
                    return Ok(Some("the aimed write never came"));
                }
            }
            Fault::Pause { .. } => {
                if let Some(replica) = self.hit.remove(&fault_key(f))
                    && let Some(id) = self.replicas.resume(replica)
                {
                    self.watch.note(&self.sim.clock, Act::Resumed(id));
                }
            }
            // A stall and the lock's hold end by themselves; an aimed stall
            // not yet begun is called off.
            Fault::StoreStall { aim, .. } => {
                if aim.is_some() && !self.replicas.stalled_any() {
                    return Ok(Some("the aimed write never came"));
                }
            }
            Fault::Throttle { .. } => {
                self.sim
                    .control("/_sim/config", json!({"throttle": {"fraction": 0.0}}))
                    .await?;
            }
            Fault::FailedStarts { service, .. } | Fault::UnhealthyTargets { service, .. } => {
                self.service_faults(service, Value::Null).await?;
            }
            Fault::AlarmFires { .. } => self.set_alarm(StateValue::Ok).await?,
            Fault::HookMisbehaves { .. } => self.set_hook_mode(None),
            Fault::Feed { .. } => {
                self.feed(None).await?;
            }
            Fault::Protect { .. } => {
                if let Some(tasks) = self.protected.remove(&fault_key(f)) {
                    self.protect(&tasks, None).await?;
                }
            }
            Fault::Scale { .. }
            | Fault::ForeignDeployment { .. }
            | Fault::ServiceDeleted { .. }
            | Fault::Spot { .. } => {}
        }
        Ok(None)
    }

    /// Arms every replica's proxy to notice `needles`; the first replica to
    /// send them is stopped at once and continued `held` later (its own
    /// task, journalled as any SIGCONT). False on the embedded store.
    fn pause_first(&self, needles: &'static [&'static str], held: f64) -> bool {
        let Some(armed) = self.replicas.arm(needles) else {
            return false;
        };
        let (watch, clock) = (self.watch.clone(), self.sim.clock);
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(AIMED_WINDOW);
            while tokio::time::Instant::now() < deadline {
                if let Some((id, pid)) = armed.first_triggered() {
                    armed.disarm();
                    replicas::signal_pid(pid, libc::SIGSTOP);
                    tokio::time::sleep(Duration::from_secs_f64(held)).await;
                    replicas::signal_pid(pid, libc::SIGCONT);
                    watch.note(&clock, Act::Resumed(id));
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            armed.disarm();
        });
        true
    }

    /// The replica a fault hits: for [`Whom::Holder`], the one whose
    /// incarnation holds the most unexpired leases now.
    async fn resolve(&self, whom: Whom) -> usize {
        let (Whom::Holder(fallback) | Whom::Replica(fallback)) = whom;
        if matches!(whom, Whom::Replica(_)) {
            return fallback;
        }
        // A store held by a stopped replica must not hold the schedule up.
        let listed = tokio::time::timeout(
            Duration::from_millis(500),
            self.store.list_all(Kind::RecycleRequest),
        )
        .await;
        let Ok(Ok(records)) = listed else {
            return fallback;
        };
        let now = chrono::Utc::now();
        let mut held = vec![0usize; self.replicas.count()];
        for lease in records.iter().filter_map(|r| r.lease.as_ref()) {
            if lease.expires_at <= now {
                continue;
            }
            if let Some(i) = (0..held.len()).find(|&i| self.replicas.id(i) == lease.holder) {
                held[i] += 1;
            }
        }
        held.iter()
            .enumerate()
            .max_by_key(|(i, n)| (**n, usize::MAX - i))
            .filter(|(_, n)| **n > 0)
            .map_or(fallback, |(i, _)| i)
    }

    /// The service's tasks running and meant to run, as ECS describes them.
    async fn running_tasks(&self, service: usize) -> anyhow::Result<Vec<RunningTask>> {
        let name = &self.schedule.services[service].name;
        let listed = self
            .clients
            .ecs
            .list_tasks()
            .cluster(CLUSTER)
            .service_name(name)
            .send()
            .await?;
        if listed.task_arns().is_empty() {
            return Ok(Vec::new());
        }
        let described = self
            .clients
            .ecs
            .describe_tasks()
            .cluster(CLUSTER)
            .set_tasks(Some(listed.task_arns().to_vec()))
            .send()
            .await?;
        Ok(described
            .tasks()
            .iter()
            .filter(|t| t.last_status() == Some("RUNNING") && t.desired_status() == Some("RUNNING"))
            .map(|t| RunningTask {
                arn: t.task_arn().unwrap_or_default().to_string(),
                created: t.created_at().map_or(0.0, |d| d.as_secs_f64()),
                spot: t.capacity_provider_name() == Some("FARGATE_SPOT"),
            })
            .collect())
    }

    /// Protects `tasks` from scale-in for `minutes` of ECS's, or (`None`)
    /// clears their protection, as a task holding work does itself.
    async fn protect(&self, tasks: &[String], minutes: Option<u32>) -> anyhow::Result<()> {
        let mut call = self
            .clients
            .ecs
            .update_task_protection()
            .cluster(CLUSTER)
            .set_tasks(Some(tasks.to_vec()))
            .protection_enabled(minutes.is_some());
        if let Some(minutes) = minutes {
            call = call.expires_in_minutes(minutes as i32);
        }
        call.send().await?;
        Ok(())
    }

    /// The simulator's event feed to the schedule's queue, with `faults`
    /// (none: a faithful feed); false when the replicas read no events.
    async fn feed(&self, faults: Option<Value>) -> anyhow::Result<bool> {
        let Some(queue) = &self.events_queue else {
            return Ok(false);
        };
        let mut events = json!({"sqsQueueUrl": queue});
        if let Some(Value::Object(faults)) = faults {
            events
                .as_object_mut()
                .into_iter()
                .for_each(|e| e.extend(faults.clone()));
        }
        self.sim
            .control("/_sim/config", json!({ "events": events }))
            .await?;
        Ok(true)
    }

    /// The service's task faults (`null`: back to none).
    async fn service_faults(&self, service: usize, faults: Value) -> anyhow::Result<bool> {
        let name = &self.schedule.services[service].name;
        let path = format!("/_sim/services/{CLUSTER}/{name}");
        self.sim.control(&path, json!({ "faults": faults })).await?;
        Ok(true)
    }

    /// On DynamoDB, the replica's proxy holds its traffic; on the embedded
    /// store, the store's lock is taken and held, as a stuck process
    /// holding it would (every replica's store calls wait). A lock another
    /// process holds (a replica stopped inside a store call) is tried for
    /// half a second, then the fault is called off: the schedule never
    /// waits on the store.
    async fn stall_store(&self, replica: usize, held: f64) -> bool {
        if self.replicas.stall(replica, held) {
            return true;
        }
        let Some(file) = self.store_file() else {
            return false;
        };
        let lock_path = file.with_extension("lock");
        let (taken, answer) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let Ok(lock) = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
            else {
                let _ = taken.send(false);
                return;
            };
            let deadline = std::time::Instant::now() + Duration::from_millis(500);
            while lock.try_lock().is_err() {
                if std::time::Instant::now() > deadline {
                    let _ = taken.send(false);
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = taken.send(true);
            std::thread::sleep(Duration::from_secs_f64(held));
        });
        answer.await.unwrap_or(false)
    }
}
