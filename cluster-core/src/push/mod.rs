//! The `ConfigPush` trait (Ansible in production) and the job log a push writes to.

use async_trait::async_trait;

use crate::error::Result;
use crate::job::{JobReport, JobSpec};

pub mod ansible;
pub mod command;
mod log;
mod noop;
mod process;

pub use ansible::AnsiblePush;
pub use command::CommandPush;
pub use log::{JobLog, LogLine, LogSink};
pub use noop::NoopPush;

/// Pushes configuration to hosts: one call runs one action over all hosts of a spec.
#[async_trait]
pub trait ConfigPush: Send + Sync + std::fmt::Debug {
    /// Registry name of the implementation (`ansible`, `command`, ...).
    fn name(&self) -> &str;

    /// Checks up front that the push can run `spec` at all (binary and playbook
    /// present, ...), so the manager can refuse a request before changing anything.
    async fn preflight(&self, _action: crate::job::PushAction) -> Result<()> {
        Ok(())
    }

    /// Runs the action. Per-host failures go in the report; an `Err` means the push
    /// as a whole could not run, and the manager fails every host with its message.
    /// Output lines go to `log`. When `spec.cancel` fires the push stops its work.
    async fn run(&self, spec: JobSpec, log: LogSink) -> Result<JobReport>;
}
