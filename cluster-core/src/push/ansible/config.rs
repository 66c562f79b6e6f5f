//! Settings of the Ansible push: playbooks per action or one site playbook, connection
//! options, the environment and limits of a run.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::InventoryGroups;
use crate::push::PerAction;

/// The playbook of each action; actions left out use the site playbook.
pub type Playbooks = PerAction<PathBuf>;

/// Settings of [`AnsiblePush`] (the `ansible` push section of the daemon config).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnsibleConfig {
    /// The ansible-playbook program (a name looked up on `PATH`, or a path).
    pub program: PathBuf,
    /// Directory relative playbook paths are resolved against.
    pub playbook_dir: Option<PathBuf>,
    /// One playbook per action.
    pub playbooks: Playbooks,
    /// A playbook for every action not in `playbooks`, run with `--tags <action>`.
    pub site_playbook: Option<PathBuf>,
    /// Remote user (`--user`).
    pub user: Option<String>,
    /// SSH private key file (`--private-key`).
    pub private_key: Option<PathBuf>,
    /// Extra SSH options (`--ssh-common-args`).
    pub ssh_common_args: Option<String>,
    /// Connection type (`--connection`), e.g. `local`; Ansible's default when absent.
    pub connection: Option<String>,
    /// Upper bound of `--forks` (a run uses one fork per host up to this).
    pub max_forks: usize,
    /// Group names of the generated inventory.
    pub groups: InventoryGroups,
    /// Variables set for ansible-playbook on top of the passed-through environment.
    pub env: BTreeMap<String, String>,
    /// Further ansible-playbook arguments (e.g. `--diff`).
    pub extra_args: Vec<String>,
    /// Longest one run may take, in seconds; the job's own limit when absent.
    pub timeout_secs: Option<f64>,
    /// Seconds between SIGTERM and SIGKILL when a run is stopped.
    pub kill_grace_secs: f64,
    /// Where run directories are created (the system temp dir when absent).
    pub temp_dir: Option<PathBuf>,
    /// Let Ansible template extra vars (`{{ ... }}` in values is evaluated); off by
    /// default so values reach playbooks verbatim.
    pub template_vars: bool,
}

impl Default for AnsibleConfig {
    fn default() -> Self {
        AnsibleConfig {
            program: "ansible-playbook".into(),
            playbook_dir: None,
            playbooks: Playbooks::default(),
            site_playbook: None,
            user: None,
            private_key: None,
            ssh_common_args: None,
            connection: None,
            max_forks: 50,
            groups: InventoryGroups::default(),
            env: BTreeMap::new(),
            extra_args: Vec::new(),
            timeout_secs: None,
            kill_grace_secs: 3.0,
            temp_dir: None,
            template_vars: false,
        }
    }
}

impl std::fmt::Debug for AnsibleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values of `env` may be credentials; only their names are shown.
        f.debug_struct("AnsibleConfig")
            .field("program", &self.program)
            .field("playbook_dir", &self.playbook_dir)
            .field("playbooks", &self.playbooks)
            .field("site_playbook", &self.site_playbook)
            .field("user", &self.user)
            .field("private_key", &self.private_key)
            .field("connection", &self.connection)
            .field("max_forks", &self.max_forks)
            .field("groups", &self.groups)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("extra_args", &self.extra_args)
            .field("timeout_secs", &self.timeout_secs)
            .field("temp_dir", &self.temp_dir)
            .field("template_vars", &self.template_vars)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_names_env_variables_but_hides_their_values() {
        let config = AnsibleConfig {
            env: [("ANSIBLE_VAULT_PASSWORD".to_owned(), "hunter2".to_owned())].into(),
            ..AnsibleConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(shown.contains("ANSIBLE_VAULT_PASSWORD"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn unknown_fields_are_refused_and_defaults_fill_the_rest() {
        let c: AnsibleConfig =
            serde_json::from_value(serde_json::json!({"site_playbook": "site.yml"})).unwrap();
        assert_eq!(c.program, PathBuf::from("ansible-playbook"));
        assert_eq!(c.groups.all, "cluster-node");
        assert!(!c.template_vars);
        let err = serde_json::from_value::<AnsibleConfig>(
            serde_json::json!({"playbooks": {"provison": "p.yml"}}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("provison"), "{err}");
    }
}
