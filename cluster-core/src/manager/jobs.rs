//! Running jobs: their cancel tokens and reasons, logs, timeouts and completion
//! signals, and the guarded calls out to the push and the backend. Job *records* live in
//! the store; this table only holds what exists while a job runs (and recent logs).

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Inner, lock};
use crate::job::{HostSpec, JobId, JobReport, JobSpec, PushAction};
use crate::push::{JobLog, LogSink};

/// The live part of a running job.
#[derive(Debug)]
pub(super) struct JobCtl {
    pub id: JobId,
    pub cancel: CancellationToken,
    reason: Mutex<Option<String>>,
    pub log: Arc<JobLog>,
    done: watch::Sender<bool>,
}

impl JobCtl {
    /// Why the job was stopped, once it was.
    pub fn stop_reason(&self) -> Option<String> {
        if self.cancel.is_cancelled() {
            Some(
                lock(&self.reason)
                    .clone()
                    .unwrap_or_else(|| "cancelled".into()),
            )
        } else {
            None
        }
    }

    /// Whether the stop came from a cancel request (not a timeout or shutdown).
    pub fn cancelled_by_request(&self) -> bool {
        self.stop_reason().as_deref() == Some(CANCEL_REQUEST)
    }

    fn stop(&self, reason: &str) {
        let mut r = lock(&self.reason);
        if r.is_none() {
            *r = Some(reason.to_owned());
        }
        drop(r);
        self.cancel.cancel();
    }

    /// Writes a line to the job log.
    pub fn say(&self, line: impl Into<String>) {
        LogSink::new(self.log.clone()).line(line);
    }
}

/// The reason recorded for an operator's cancel request.
pub(super) const CANCEL_REQUEST: &str = "cancelled by request";

/// Running jobs and the logs of recently finished ones.
#[derive(Debug, Default)]
pub(super) struct JobTable {
    running: Mutex<BTreeMap<JobId, Arc<JobCtl>>>,
    finished_logs: Mutex<VecDeque<(JobId, Arc<JobLog>)>>,
}

impl JobTable {
    /// Registers a new running job.
    pub fn start(&self, inner: &Inner, id: JobId) -> Arc<JobCtl> {
        let spill = inner
            .config
            .log_dir
            .as_ref()
            .map(|d| d.join(format!("job-{id}.log")));
        let (done, _) = watch::channel(false);
        let ctl = Arc::new(JobCtl {
            id,
            cancel: CancellationToken::new(),
            reason: Mutex::new(None),
            log: JobLog::new(inner.config.log_capacity, spill),
            done,
        });
        lock(&self.running).insert(id, ctl.clone());
        if let Some(limit) = inner.config.job_timeout {
            let ctl = ctl.clone();
            inner.tasks.spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(limit) => {
                        ctl.stop(&format!("timed out after {}s", limit.as_secs_f64()));
                    }
                    _ = ctl.cancel.cancelled() => {}
                }
            });
        }
        ctl
    }

    /// Ends a job whose final record is committed: wakes waiters, keeps its log.
    pub fn finish(&self, ctl: &JobCtl, keep: usize) {
        lock(&self.running).remove(&ctl.id);
        ctl.log.finish();
        let mut logs = lock(&self.finished_logs);
        logs.push_back((ctl.id, ctl.log.clone()));
        while logs.len() > keep {
            logs.pop_front();
        }
        drop(logs);
        // Ends the timeout watcher too; the job is over.
        ctl.cancel.cancel();
        ctl.done.send_replace(true);
    }

    /// Ids of running jobs, oldest first.
    pub fn running_ids(&self) -> Vec<JobId> {
        lock(&self.running).keys().copied().collect()
    }

    /// Asks a running job to stop; false when it is not running.
    pub fn cancel(&self, id: JobId, reason: &str) -> bool {
        match lock(&self.running).get(&id) {
            Some(ctl) => {
                ctl.stop(reason);
                true
            }
            None => false,
        }
    }

    /// A receiver that turns true when job `id` has finished (None: not running).
    pub fn done_signal(&self, id: JobId) -> Option<watch::Receiver<bool>> {
        lock(&self.running).get(&id).map(|c| c.done.subscribe())
    }

    /// The log of a running or recently finished job.
    pub fn log(&self, id: JobId) -> Option<Arc<JobLog>> {
        if let Some(c) = lock(&self.running).get(&id) {
            return Some(c.log.clone());
        }
        lock(&self.finished_logs)
            .iter()
            .find(|(j, _)| *j == id)
            .map(|(_, l)| l.clone())
    }
}

/// How one push run ended.
#[derive(Debug)]
pub(super) enum PushOutcome {
    /// The push ran; per-host results inside.
    Report(JobReport),
    /// The push as a whole failed; every host fails with this reason.
    Failed(String),
    /// The job was cancelled or timed out; every host fails with this reason.
    Stopped(String),
}

impl PushOutcome {
    /// The failure reason for `host`, `None` when it succeeded.
    pub fn failure(&self, host: &str) -> Option<String> {
        match self {
            PushOutcome::Report(r) => r.failure(host),
            PushOutcome::Failed(m) | PushOutcome::Stopped(m) => Some(m.clone()),
        }
    }
}

impl Inner {
    /// Runs one push action over `hosts` under the job's cancellation and timeout.
    pub(super) async fn run_push(
        &self,
        ctl: &JobCtl,
        action: PushAction,
        hosts: Vec<HostSpec>,
    ) -> PushOutcome {
        if hosts.is_empty() {
            return PushOutcome::Report(JobReport::default());
        }
        if let Some(reason) = ctl.stop_reason() {
            return PushOutcome::Stopped(reason);
        }
        ctl.say(format!(
            "{action}: {} host(s) via {}",
            hosts.len(),
            self.push.name()
        ));
        let spec = JobSpec {
            job: ctl.id,
            action,
            hosts,
            cancel: ctl.cancel.clone(),
            timeout: self.config.job_timeout,
        };
        let run = self.push.run(spec, LogSink::new(ctl.log.clone()));
        let result = self.guarded(ctl, run).await;
        match result {
            Ok(Ok(report)) => PushOutcome::Report(report),
            Ok(Err(e)) => {
                ctl.say(format!("{action} failed: {e}"));
                PushOutcome::Failed(e.to_string())
            }
            Err(reason) => {
                ctl.say(format!("{action} stopped: {reason}"));
                PushOutcome::Stopped(reason)
            }
        }
    }

    /// Awaits `fut` unless the job is stopped; a stopped job gives `fut` the cancel
    /// grace period to wind down (pushes kill their processes) and then abandons it.
    pub(super) async fn guarded<T>(
        &self,
        ctl: &JobCtl,
        fut: impl Future<Output = T>,
    ) -> Result<T, String> {
        tokio::pin!(fut);
        let out = tokio::select! {
            out = &mut fut => Some(out),
            _ = ctl.cancel.cancelled() => {
                let grace: Duration = self.config.cancel_grace;
                tokio::time::timeout(grace, &mut fut).await.ok()
            }
        };
        match (ctl.stop_reason(), out) {
            (Some(reason), _) => Err(reason),
            (None, Some(out)) => Ok(out),
            (None, None) => Err("stopped".into()),
        }
    }
}
