//! Per-host results of one ansible-playbook run, read from the JSON lines the
//! `clusterm_results` callback writes, turned into a [`JobReport`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::job::{HostResult, JobReport};

/// Exit codes with which ansible-playbook has run the whole playbook: success, failed
/// hosts, unreachable hosts. Any other code means it stopped before the end.
const COMPLETED_CODES: [i32; 3] = [0, 2, 4];

/// One record of the callback.
#[derive(Debug, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Record {
    Failed(TaskFailure),
    Unreachable(TaskFailure),
    Stats { hosts: BTreeMap<String, Summary> },
}

#[derive(Debug, Deserialize)]
struct TaskFailure {
    host: String,
    #[serde(default)]
    task: String,
    #[serde(default)]
    msg: String,
}

/// The PLAY RECAP line of one host.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Summary {
    failures: u64,
    unreachable: u64,
}

/// Builds the report for `hosts` from the callback `output` and the exit code (`None`
/// when killed by a signal). `Err` carries a reason when the output holds no final
/// summary: the playbook never got to its end (syntax error, crash).
pub(super) fn report(
    hosts: &[String],
    output: &str,
    exit_code: Option<i32>,
) -> Result<JobReport, String> {
    let mut first_failure: BTreeMap<String, String> = BTreeMap::new();
    let mut stats = None;
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Record>(line) {
            Ok(Record::Failed(f)) => {
                first_failure
                    .entry(f.host)
                    .or_insert_with(|| format!("task {:?} failed: {}", f.task, f.msg));
            }
            Ok(Record::Unreachable(f)) => {
                first_failure
                    .entry(f.host)
                    .or_insert_with(|| format!("unreachable: {}", f.msg));
            }
            Ok(Record::Stats { hosts }) => stats = Some(hosts),
            Err(e) => tracing::warn!(error = %e, "unreadable ansible result record"),
        }
    }
    let Some(stats) = stats else {
        return Err("ansible-playbook reported no per-host summary".into());
    };
    let completed = exit_code.is_some_and(|c| COMPLETED_CODES.contains(&c));
    let hosts = hosts
        .iter()
        .map(|name| {
            let summary = stats.get(name);
            let failed = summary.is_some_and(|s| s.failures > 0 || s.unreachable > 0);
            let result = if failed {
                HostResult {
                    ok: false,
                    message: Some(
                        first_failure
                            .remove(name)
                            .unwrap_or_else(|| "failed in ansible-playbook".into()),
                    ),
                }
            } else if !completed {
                HostResult {
                    ok: false,
                    message: Some(match exit_code {
                        Some(c) => format!("ansible-playbook stopped early with exit code {c}"),
                        None => "ansible-playbook was killed".into(),
                    }),
                }
            } else {
                HostResult {
                    ok: true,
                    message: summary.is_none().then(|| "no task ran on this host".into()),
                }
            };
            (name.clone(), result)
        })
        .collect();
    Ok(JobReport { hosts })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = r#"{"event": "failed", "host": "b", "task": "install", "msg": "no package"}
{"event": "failed", "host": "b", "task": "later", "msg": "second"}
{"event": "unreachable", "host": "c", "task": "Gathering Facts", "msg": "ssh: refused"}
not json
{"event": "stats", "hosts": {"a": {"ok": 3, "failures": 0, "unreachable": 0}, "b": {"ok": 1, "failures": 1, "unreachable": 0}, "c": {"ok": 0, "failures": 0, "unreachable": 1}}}
"#;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn failures_map_to_their_hosts_with_the_first_reason() {
        let r = report(&names(&["a", "b", "c", "d"]), OUTPUT, Some(2)).unwrap();
        assert_eq!(r.failure("a"), None);
        assert_eq!(
            r.failure("b").as_deref(),
            Some("task \"install\" failed: no package")
        );
        assert_eq!(r.failure("c").as_deref(), Some("unreachable: ssh: refused"));
        assert_eq!(r.failure("d"), None);
        assert_eq!(
            r.hosts["d"].message.as_deref(),
            Some("no task ran on this host")
        );
    }

    #[test]
    fn an_early_stop_fails_the_hosts_that_had_not_failed_yet() {
        let r = report(&names(&["a", "b"]), OUTPUT, Some(8)).unwrap();
        assert!(r.failure("a").unwrap().contains("exit code 8"));
        assert!(r.failure("b").unwrap().contains("no package"));
        let killed = report(&names(&["a"]), OUTPUT, None).unwrap();
        assert!(killed.failure("a").unwrap().contains("killed"));
    }

    #[test]
    fn no_summary_is_an_error() {
        let out = r#"{"event": "failed", "host": "a", "task": "t", "msg": "m"}"#;
        assert!(report(&names(&["a"]), out, Some(1)).is_err());
        assert!(report(&names(&["a"]), "", Some(0)).is_err());
    }
}
