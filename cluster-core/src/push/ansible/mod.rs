//! `AnsiblePush`: configuration push with `ansible-playbook`, one run per job step over
//! all its hosts.
//!
//! Each run gets a private directory holding a generated inventory (every host in
//! `cluster-node` and in its host group, with host vars `node_name`, `node_addr`,
//! `ansible_host`), the merged extra vars (passed as `-e @file`, never on the command
//! line; see [`inventory`] for how per-host values and Jinja-looking strings are
//! handled) and a small callback plugin. The program is started directly (no shell) in
//! its own process group; cancellation and the timeout kill the whole group.
//!
//! Results: the shipped `clusterm_results` callback writes per-host outcomes as JSON
//! lines to a file while the regular stdout callback keeps printing the human log,
//! which is streamed line by line into the job log. This keeps the log exactly what an
//! operator running the playbook by hand would see (and honours their choice of stdout
//! callback), and it needs no waiting for the end of the run to show progress, which a
//! JSON stdout callback (one document at the end) would force.
//!
//! The environment is not inherited wholesale: `ANSIBLE_*` variables, `PATH`, `HOME`,
//! locale and SSH agent settings pass through, so secrets of the daemon's own
//! environment do not reach playbooks.

mod config;
mod inventory;
mod results;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio::process::Command;

pub use config::{AnsibleConfig, Playbooks};
pub use inventory::InventoryGroups;

use super::process::{self, Bounds, JobDir, io_error, push_error};
use super::{ConfigPush, LogSink};
use crate::error::{Error, Result};
use crate::job::{HostResult, JobReport, JobSpec, PushAction};
use crate::registry::{BuildFuture, PushFactory, parse_config};

/// Source of the callback plugin written into every run's directory.
const CALLBACK_SOURCE: &str = include_str!("clusterm_results.py");
const CALLBACK_NAME: &str = "clusterm_results";

/// Variables of the daemon's environment handed to ansible-playbook besides `ANSIBLE_*`
/// and `LC_*`.
const PASSED_ENV: [&str; 10] = [
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "SSH_AUTH_SOCK",
    "VIRTUAL_ENV",
];

/// Pushes configuration by running ansible-playbook.
#[derive(Debug, Clone)]
pub struct AnsiblePush {
    config: AnsibleConfig,
    bounds: Bounds,
}

impl AnsiblePush {
    /// Checks `config` and builds the push (files are checked per run and in preflight).
    pub fn from_config(config: AnsibleConfig) -> Result<Self> {
        let fail = |message: &str| Error::Config {
            component: "ansible".into(),
            message: message.into(),
        };
        if config.max_forks == 0 {
            return Err(fail("max_forks must be at least 1"));
        }
        if config.groups.all.is_empty() {
            return Err(fail("groups.all must not be empty"));
        }
        if config.site_playbook.is_none()
            && PushAction::ALL
                .iter()
                .all(|a| config.playbooks.get(*a).is_none())
        {
            return Err(fail(
                "no playbook configured: set playbooks.<action> or site_playbook",
            ));
        }
        let bounds = Bounds::from_secs("ansible", config.timeout_secs, config.kill_grace_secs)?;
        Ok(AnsiblePush { config, bounds })
    }

    /// The settings in force.
    pub fn config(&self) -> &AnsibleConfig {
        &self.config
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        match &self.config.playbook_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }

    /// The playbook file of `action` and the tag to run, when it is the site playbook.
    fn playbook(&self, action: PushAction) -> Result<(PathBuf, Option<&'static str>)> {
        let (path, tag) = match (
            self.config.playbooks.get(action),
            &self.config.site_playbook,
        ) {
            (Some(p), _) => (self.resolve(p), None),
            (None, Some(site)) => (self.resolve(site), Some(action.as_str())),
            (None, None) => {
                return Err(push_error(
                    action,
                    format!("no playbook for {action}: set playbooks.{action} or site_playbook"),
                ));
            }
        };
        if !path.is_file() {
            return Err(push_error(
                action,
                format!("playbook {} does not exist", path.display()),
            ));
        }
        Ok((path, tag))
    }

    fn program(&self, action: PushAction) -> Result<PathBuf> {
        process::find_program(&self.config.program).ok_or_else(|| {
            push_error(
                action,
                format!(
                    "{} not found (install ansible-core, or set program to its path)",
                    self.config.program.display()
                ),
            )
        })
    }

    /// The environment of a run: the passed-through part of ours, the configured
    /// variables, and what the callback and isolation need.
    fn environment(
        &self,
        dir: &JobDir,
        results: &Path,
    ) -> std::io::Result<BTreeMap<String, String>> {
        let mut env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| {
                k.starts_with("ANSIBLE_")
                    || k.starts_with("LC_")
                    || PASSED_ENV.contains(&k.as_str())
            })
            .collect();
        env.extend(self.config.env.clone());
        let callbacks = dir.subdir("callbacks")?;
        std::fs::write(
            callbacks.join(format!("{CALLBACK_NAME}.py")),
            CALLBACK_SOURCE,
        )?;
        let mut append = |key: &str, value: String, sep: char| {
            let joined = match env.get(key).filter(|v| !v.is_empty()) {
                Some(old) => format!("{value}{sep}{old}"),
                None => value,
            };
            env.insert(key.into(), joined);
        };
        append(
            "ANSIBLE_CALLBACK_PLUGINS",
            callbacks.display().to_string(),
            ':',
        );
        append("ANSIBLE_CALLBACKS_ENABLED", CALLBACK_NAME.into(), ',');
        let local_temp = dir.subdir("tmp")?;
        for (k, v) in [
            ("ANSIBLE_LOCAL_TEMP", local_temp.display().to_string()),
            ("ANSIBLE_NOCOLOR", "1".into()),
            ("ANSIBLE_RETRY_FILES_ENABLED", "false".into()),
            // The inventory's group names (service-master, ...) carry dashes on purpose.
            ("ANSIBLE_TRANSFORM_INVALID_GROUP_CHARS", "ignore".into()),
        ] {
            env.entry(k.into()).or_insert(v);
        }
        env.insert("PYTHONUNBUFFERED".into(), "1".into());
        env.insert(
            "CLUSTERM_RESULTS_FILE".into(),
            results.display().to_string(),
        );
        Ok(env)
    }
}

#[async_trait]
impl ConfigPush for AnsiblePush {
    fn name(&self) -> &str {
        "ansible"
    }

    async fn preflight(&self, action: PushAction) -> Result<()> {
        self.program(action)?;
        self.playbook(action).map(|_| ())
    }

    async fn run(&self, spec: JobSpec, log: LogSink) -> Result<JobReport> {
        let action = spec.action;
        let job = spec.job;
        let program = self.program(action)?;
        let (playbook, tag) = self.playbook(action)?;

        let mut report = JobReport::default();
        let (hosts, unusable): (Vec<_>, Vec<_>) = spec
            .hosts
            .into_iter()
            .partition(|h| inventory::usable_host_name(&h.name));
        for h in unusable {
            let message = format!(
                "node name {:?} cannot be an Ansible host name (letters, digits, '.', '-', '_' or an IP address)",
                h.name
            );
            log.line(format!("{}: {message}", h.name));
            report.hosts.insert(
                h.name,
                HostResult {
                    ok: false,
                    message: Some(message),
                },
            );
        }
        if hosts.is_empty() {
            return Ok(report);
        }

        let io = |doing: &str, e| io_error(action, job, doing, e);
        let dir = JobDir::create(self.config.temp_dir.as_deref(), "ansible", job)
            .map_err(|e| io("cannot create the run directory", e))?;
        let split = inventory::split_vars(&hosts);
        let tag_unsafe = !self.config.template_vars;
        let inventory_file = dir
            .write_private(
                "inventory.yml",
                inventory::inventory_document(
                    &hosts,
                    &split.per_host,
                    &self.config.groups,
                    tag_unsafe,
                )
                .as_bytes(),
            )
            .map_err(|e| io("cannot write the inventory", e))?;
        let vars_file = dir
            .write_private(
                "extra-vars.yml",
                inventory::vars_document(&split.common, tag_unsafe).as_bytes(),
            )
            .map_err(|e| io("cannot write the extra vars", e))?;
        let results_file = dir
            .write_private("results.jsonl", b"")
            .map_err(|e| io("cannot create the results file", e))?;
        let env = self
            .environment(&dir, &results_file)
            .map_err(|e| io("cannot prepare the callback plugin", e))?;

        let mut cmd = Command::new(&program);
        cmd.env_clear().envs(&env);
        if let Some(parent) = playbook.parent().filter(|p| !p.as_os_str().is_empty()) {
            // An ansible.cfg next to the playbooks applies, as when run by hand there.
            cmd.current_dir(parent);
        }
        cmd.arg("-i").arg(&inventory_file);
        cmd.arg("-e").arg(format!("@{}", vars_file.display()));
        cmd.arg("--forks")
            .arg(hosts.len().clamp(1, self.config.max_forks).to_string());
        if let Some(user) = &self.config.user {
            cmd.arg("--user").arg(user);
        }
        if let Some(key) = &self.config.private_key {
            cmd.arg("--private-key").arg(key);
        }
        if let Some(args) = &self.config.ssh_common_args {
            cmd.arg(format!("--ssh-common-args={args}"));
        }
        if let Some(c) = &self.config.connection {
            cmd.arg("--connection").arg(c);
        }
        if let Some(tag) = tag {
            cmd.arg("--tags").arg(tag);
        }
        cmd.args(&self.config.extra_args);
        cmd.arg(&playbook);

        log.line(format!(
            "ansible-playbook {}{} on {} host(s)",
            playbook.display(),
            tag.map(|t| format!(" --tags {t}")).unwrap_or_default(),
            hosts.len()
        ));
        tracing::info!(job = %job, action = %action, hosts = hosts.len(), playbook = %playbook.display(), "running ansible-playbook");
        let limits = self.bounds.limits(&spec.cancel, spec.timeout);
        let (status, stderr_tail) =
            process::run_job(cmd, None, &log, &limits, action, job, "ansible-playbook").await?;
        let output = std::fs::read_to_string(&results_file).unwrap_or_default();
        let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
        match results::report(&names, &output, status.code()) {
            Ok(r) => {
                report.hosts.extend(r.hosts);
                Ok(report)
            }
            Err(reason) => Err(push_error(
                action,
                format!(
                    "job {job}: ansible-playbook ended with {}: {reason}{}",
                    process::describe(&status),
                    tail_text(&stderr_tail)
                ),
            )),
        }
    }
}

fn tail_text(tail: &[String]) -> String {
    let lines: Vec<&str> = tail
        .iter()
        .map(String::as_str)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        String::new()
    } else {
        format!(" ({})", lines.join(" | "))
    }
}

fn build(config: Value) -> BuildFuture<dyn ConfigPush> {
    Box::pin(async move {
        let config: AnsibleConfig = parse_config("ansible", config)?;
        Ok(Arc::new(AnsiblePush::from_config(config)?) as Arc<dyn ConfigPush>)
    })
}

::inventory::submit! { PushFactory::new("ansible", build) }
