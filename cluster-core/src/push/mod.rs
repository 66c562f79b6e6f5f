//! The `ConfigPush` trait (Ansible in production), the job log a push writes to, and
//! [`PerAction`], the shape of settings given per push action.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::job::{JobReport, JobSpec, PushAction};

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

/// One optional setting per push action (a playbook, a command, ...); an action left out
/// falls back to what the push does without one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerAction<T> {
    /// For `discover`: makes hosts discoverable (installs and starts the agent).
    pub discover: Option<T>,
    /// For `provision`: configures nodes for their role.
    pub provision: Option<T>,
    /// For `cleanup`: undoes provisioning.
    pub cleanup: Option<T>,
    /// For `upgrade`: upgrades the installed software.
    pub upgrade: Option<T>,
    /// For `verify`: checks nodes still match their configuration.
    pub verify: Option<T>,
}

// Not derived: that would ask `T: Default`, which an empty set does not need.
impl<T> Default for PerAction<T> {
    fn default() -> Self {
        PerAction {
            discover: None,
            provision: None,
            cleanup: None,
            upgrade: None,
            verify: None,
        }
    }
}

impl<T> PerAction<T> {
    /// The setting of `action`, when there is one.
    pub fn get(&self, action: PushAction) -> Option<&T> {
        match action {
            PushAction::Discover => self.discover.as_ref(),
            PushAction::Provision => self.provision.as_ref(),
            PushAction::Cleanup => self.cleanup.as_ref(),
            PushAction::Upgrade => self.upgrade.as_ref(),
            PushAction::Verify => self.verify.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_action_reads_its_own_setting() {
        let all: PerAction<String> = serde_json::from_value(serde_json::json!({
            "discover": "discover", "provision": "provision", "cleanup": "cleanup",
            "upgrade": "upgrade", "verify": "verify",
        }))
        .unwrap();
        for action in PushAction::ALL {
            assert_eq!(all.get(action).map(String::as_str), Some(action.as_str()));
            assert_eq!(PerAction::<String>::default().get(action), None);
        }
        let typo = serde_json::from_value::<PerAction<String>>(serde_json::json!({"upgarde": "x"}));
        assert!(typo.unwrap_err().to_string().contains("upgarde"));
    }
}
