//! `NoopPush`: reports success for every host without touching it. For benchmarks and
//! for clusters whose nodes are configured by other means.

use async_trait::async_trait;

use super::{ConfigPush, LogSink};
use crate::error::Result;
use crate::job::{JobReport, JobSpec};

/// A push that changes nothing and succeeds for every host.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopPush;

#[async_trait]
impl ConfigPush for NoopPush {
    fn name(&self) -> &str {
        "noop"
    }

    async fn run(&self, spec: JobSpec, log: LogSink) -> Result<JobReport> {
        log.line(format!(
            "noop push: {} on {} host(s), nothing to do",
            spec.action,
            spec.hosts.len()
        ));
        Ok(JobReport::all_ok(&spec))
    }
}
