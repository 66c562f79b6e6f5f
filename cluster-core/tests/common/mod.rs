//! What the push tests share: a manager over a memory store with nodes joined through
//! membership events, waiting on jobs, reading job logs, and checking that a process
//! the push started is gone.

use std::sync::Arc;
use std::time::Duration;

use cluster_core::manager::{ManagerConfig, Request};
use cluster_core::testkit::eventually;
use cluster_core::{
    ConfigPush, Job, JobId, Manager, Member, MembershipEvent, MembershipKind, MemoryStore,
};
use serde_json::json;

/// Manager settings that give a cancelled push 30 s to stop.
pub fn quick_cancel() -> ManagerConfig {
    ManagerConfig {
        cancel_grace: Duration::from_secs(30),
        ..ManagerConfig::default()
    }
}

/// A running manager over a fresh memory store that pushes with `push`.
pub async fn manager(push: impl ConfigPush + 'static, config: ManagerConfig) -> Manager {
    Manager::builder(Arc::new(MemoryStore::new()))
        .push(Arc::new(push))
        .config(config)
        .start()
        .await
        .unwrap()
}

/// Joins `names` as discovered nodes at 127.0.0.10, 127.0.0.11, ...
pub async fn discovered(m: &Manager, names: &[&str]) {
    for (i, n) in names.iter().enumerate() {
        let mut member = Member::alive(*n, format!("127.0.0.{}", i + 10));
        member.tags.insert("NodeLabel".into(), (*n).into());
        m.membership(MembershipEvent {
            kind: MembershipKind::Joined,
            member,
        })
        .unwrap();
    }
    m.settle().await.unwrap();
}

/// A request for `nodes` in host group `service-worker`.
pub fn workers(nodes: impl IntoIterator<Item = impl Into<String>>) -> Request {
    Request::nodes(nodes).host_group("service-worker")
}

/// Commissioning `nodes` as workers with the fixtures told to block until stopped.
pub fn blocking_commission<const N: usize>(nodes: [&str; N]) -> Request {
    workers(nodes).vars(json!({"sleep_secs": 3600}))
}

/// Job `id` once it has finished, waiting at most `wait`.
pub async fn finished(m: &Manager, id: JobId, wait: Duration) -> Job {
    tokio::time::timeout(wait, m.wait_job(id))
        .await
        .expect("job did not finish")
        .unwrap()
}

/// The lines of job `id`'s log (none when the job has no log).
pub fn log_lines(m: &Manager, id: JobId) -> Vec<String> {
    m.job_log(id)
        .map(|l| l.lines_after(0).into_iter().map(|l| l.text).collect())
        .unwrap_or_default()
}

/// Whether process `pid` is gone (a zombie counts: it runs nothing).
pub fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Waits up to `wait` for process `pid` to be gone.
pub async fn killed(pid: i32, wait: Duration) {
    eventually(&format!("process {pid} killed"), wait, || {
        gone(pid).then_some(())
    })
    .await;
}
