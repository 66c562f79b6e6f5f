//! Waiting on jobs: a progress bar that shows the job's latest log line, and following
//! a job log as it is written (Server-Sent Events).

use std::time::Duration;

use clusterm_examples::client::{Client, SseParser};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::Failure;

/// Polls job `id` until it ends, with a spinner on stderr when `show` is set; returns
/// the final record.
pub async fn until_done(client: &Client, id: u64, show: bool) -> Result<Value, Failure> {
    let bar = if show {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] job {prefix}: {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(id.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut after = 0u64;
    loop {
        let job = client.get(&format!("/v1/jobs/{id}")).await?;
        let logs = client
            .get(&format!("/v1/jobs/{id}/logs?after={after}"))
            .await?;
        if let Some(last) = logs["lines"].as_array().and_then(|l| l.last()) {
            after = last["n"].as_u64().unwrap_or(after);
            bar.set_message(format!(
                "{} | {}",
                job["status"].as_str().unwrap_or("?"),
                last["text"].as_str().unwrap_or("")
            ));
        } else {
            bar.set_message(job["status"].as_str().unwrap_or("?").to_owned());
        }
        let done = matches!(
            job["status"].as_str(),
            Some("Complete" | "Errored" | "Cancelled")
        );
        if done {
            bar.finish_and_clear();
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Prints job `id`'s log lines as they are written, until the job ends.
pub async fn follow_log(client: &Client, id: u64) -> Result<(), Failure> {
    let mut resp = client
        .stream(&format!("/v1/jobs/{id}/logs?follow=true"))
        .await?;
    let mut parser = SseParser::default();
    loop {
        let chunk = resp
            .chunk()
            .await
            .map_err(|e| Failure(format!("job {id} log stream broke: {e}")))?;
        let Some(chunk) = chunk else { return Ok(()) };
        for ev in parser.feed(&chunk) {
            match ev.event.as_str() {
                "line" => {
                    let line: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
                    println!("{}", line["text"].as_str().unwrap_or(&ev.data));
                }
                "end" => return Ok(()),
                _ => {}
            }
        }
    }
}
