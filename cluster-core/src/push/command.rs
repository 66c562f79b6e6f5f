//! `CommandPush`: runs a configured program per action, for users without Ansible and
//! for tests.
//!
//! The program gets the job spec as one JSON document on stdin
//! (`{"job": 7, "action": "provision", "hosts": [{"name", "addr", "group", "vars"}]}`),
//! never as arguments, and its stdout and stderr are streamed into the job log. It may
//! report per-host outcomes by appending JSON lines `{"host": "n1", "ok": false,
//! "message": "..."}` to the file named by `CLUSTERM_RESULTS_FILE`; hosts it does not
//! mention succeed when it exits with 0 and fail otherwise. It runs in its own process
//! group, killed whole on cancellation or timeout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::process::Command;

use super::process::{self, Bounds, JobDir, io_error, push_error};
use super::{ConfigPush, LogSink, PerAction};
use crate::error::{Error, Result};
use crate::job::{HostResult, JobReport, JobSpec, PushAction};
use crate::registry::{BuildFuture, PushFactory, parse_config};

/// Environment variables of the daemon a command sees, besides the configured ones.
const PASSED_ENV: [&str; 6] = ["PATH", "HOME", "USER", "LOGNAME", "LANG", "TMPDIR"];

/// The program and arguments of each action; an action left out is not supported.
pub type Commands = PerAction<Vec<String>>;

/// Settings of [`CommandPush`] (the `command` push section of the daemon config).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommandConfig {
    /// Program and arguments per action.
    pub commands: Commands,
    /// Variables set for the program on top of `PATH`, `HOME`, `USER`, `LANG`, ...
    pub env: BTreeMap<String, String>,
    /// Working directory of the program.
    pub working_dir: Option<PathBuf>,
    /// Longest one run may take, in seconds; the job's own limit when absent.
    pub timeout_secs: Option<f64>,
    /// Seconds between SIGTERM and SIGKILL when a run is stopped.
    pub kill_grace_secs: f64,
    /// Where run directories are created (the system temp dir when absent).
    pub temp_dir: Option<PathBuf>,
}

impl Default for CommandConfig {
    fn default() -> Self {
        CommandConfig {
            commands: Commands::default(),
            env: BTreeMap::new(),
            working_dir: None,
            timeout_secs: None,
            kill_grace_secs: 3.0,
            temp_dir: None,
        }
    }
}

impl std::fmt::Debug for CommandConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values of `env` may be credentials; only their names are shown.
        f.debug_struct("CommandConfig")
            .field("commands", &self.commands)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("working_dir", &self.working_dir)
            .field("timeout_secs", &self.timeout_secs)
            .field("kill_grace_secs", &self.kill_grace_secs)
            .field("temp_dir", &self.temp_dir)
            .finish()
    }
}

/// Pushes configuration by running one configured program per action.
#[derive(Debug, Clone)]
pub struct CommandPush {
    config: CommandConfig,
    bounds: Bounds,
}

/// One line of the results file.
#[derive(Debug, Deserialize)]
struct Outcome {
    host: String,
    ok: bool,
    #[serde(default)]
    message: Option<String>,
}

impl CommandPush {
    /// Checks `config` and builds the push.
    pub fn from_config(config: CommandConfig) -> Result<Self> {
        let fail = |message: String| Error::Config {
            component: "command".into(),
            message,
        };
        for action in PushAction::ALL {
            if config.commands.get(action).is_some_and(|c| c.is_empty()) {
                return Err(fail(format!("commands.{action} names no program")));
            }
        }
        let bounds = Bounds::from_secs("command", config.timeout_secs, config.kill_grace_secs)?;
        Ok(CommandPush { config, bounds })
    }

    /// The program and arguments of `action`, the program resolved.
    fn command(&self, action: PushAction) -> Result<(PathBuf, &[String])> {
        let argv = self
            .config
            .commands
            .get(action)
            .ok_or_else(|| push_error(action, format!("no command configured for {action}")))?;
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| push_error(action, "empty command"))?;
        let found = process::find_program(program.as_ref()).ok_or_else(|| {
            push_error(
                action,
                format!("program {program:?} not found or not executable"),
            )
        })?;
        Ok((found, args))
    }
}

#[async_trait]
impl ConfigPush for CommandPush {
    fn name(&self) -> &str {
        "command"
    }

    async fn preflight(&self, action: PushAction) -> Result<()> {
        self.command(action).map(|_| ())
    }

    async fn run(&self, spec: JobSpec, log: LogSink) -> Result<JobReport> {
        let action = spec.action;
        let job = spec.job;
        let (program, args) = self.command(action)?;
        let io = |doing: &str, e| io_error(action, job, doing, e);
        let dir = JobDir::create(self.config.temp_dir.as_deref(), "command", job)
            .map_err(|e| io("cannot create the run directory", e))?;
        let results_file = dir
            .write_private("results.jsonl", b"")
            .map_err(|e| io("cannot create the results file", e))?;
        let input = json!({
            "job": job,
            "action": action,
            "hosts": spec.hosts,
        });
        let input = serde_json::to_vec(&input).map_err(|e| push_error(action, e.to_string()))?;

        let mut cmd = Command::new(&program);
        cmd.args(args).env_clear();
        for key in PASSED_ENV {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        cmd.envs(&self.config.env)
            .env("CLUSTERM_RESULTS_FILE", &results_file)
            .env("CLUSTERM_JOB", job.to_string())
            .env("CLUSTERM_ACTION", action.as_str());
        if let Some(wd) = &self.config.working_dir {
            cmd.current_dir(wd);
        }
        log.line(format!(
            "{} on {} host(s)",
            program.display(),
            spec.hosts.len()
        ));
        let limits = self.bounds.limits(&spec.cancel, spec.timeout);
        let (status, _) =
            process::run_job(cmd, Some(input), &log, &limits, action, job, "command").await?;
        let mut reported: BTreeMap<String, HostResult> = BTreeMap::new();
        let text = std::fs::read_to_string(&results_file).unwrap_or_default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Outcome>(line) {
                Ok(o) => {
                    reported.insert(
                        o.host,
                        HostResult {
                            ok: o.ok,
                            message: o.message,
                        },
                    );
                }
                Err(e) => {
                    log.line(format!("unreadable result line ignored: {e}"));
                }
            }
        }
        let default = if status.success() {
            HostResult {
                ok: true,
                message: None,
            }
        } else {
            HostResult {
                ok: false,
                message: Some(format!(
                    "{} ended with {}",
                    program.display(),
                    process::describe(&status)
                )),
            }
        };
        let hosts = spec
            .hosts
            .iter()
            .map(|h| {
                let r = reported.remove(&h.name).unwrap_or_else(|| default.clone());
                (h.name.clone(), r)
            })
            .collect();
        Ok(JobReport { hosts })
    }
}

fn build(config: Value) -> BuildFuture<dyn ConfigPush> {
    Box::pin(async move {
        let config: CommandConfig = parse_config("command", config)?;
        Ok(Arc::new(CommandPush::from_config(config)?) as Arc<dyn ConfigPush>)
    })
}

inventory::submit! { PushFactory::new("command", build) }
