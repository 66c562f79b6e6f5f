//! A dynamic plugin: a `cdylib` that registers the `hello` configuration push, which
//! greets every host in the job log and succeeds.
//!
//! Build it with `cargo build -p clusterm-plugin-hello`, then load
//! `target/debug/libclusterm_plugin_hello.so` with
//! `cluster_core::registry::plugin::load` (the daemon's `plugins` setting does this).

use std::sync::Arc;

use async_trait::async_trait;
use cluster_core::registry::plugin::Registrar;
use cluster_core::registry::{BuildFuture, PushFactory};
use cluster_core::{ConfigPush, JobReport, JobSpec, LogSink, Result};

/// Greets each host of a job.
#[derive(Debug)]
struct HelloPush {
    greeting: String,
}

#[async_trait]
impl ConfigPush for HelloPush {
    fn name(&self) -> &str {
        "hello"
    }

    async fn run(&self, spec: JobSpec, log: LogSink) -> Result<JobReport> {
        for host in &spec.hosts {
            log.line(format!("{} {} ({})", self.greeting, host.name, spec.action));
        }
        Ok(JobReport::all_ok(&spec))
    }
}

fn build(config: serde_json::Value) -> BuildFuture<dyn ConfigPush> {
    Box::pin(async move {
        let greeting = config
            .get("greeting")
            .and_then(|g| g.as_str())
            .unwrap_or("hello")
            .to_owned();
        Ok(Arc::new(HelloPush { greeting }) as Arc<dyn ConfigPush>)
    })
}

fn register(registrar: &mut Registrar) {
    registrar.push(PushFactory::new("hello", build));
}

cluster_core::export_plugin!(register);
