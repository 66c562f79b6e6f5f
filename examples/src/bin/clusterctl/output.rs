//! Tables for people (comfy-table) and pretty JSON for scripts.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use serde_json::Value;

/// Prints `v` as indented JSON.
pub fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

/// A field as display text (`-` when absent).
fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn reachability(v: &Value) -> String {
    match v["state"].as_str() {
        Some(s) => match v["since"].as_str() {
            Some(since) => format!("{s} since {since}"),
            None => s.to_owned(),
        },
        None => text(v),
    }
}

/// The node table.
pub fn nodes(v: &Value) {
    let mut t = table(&[
        "NAME",
        "STATUS",
        "REACHABILITY",
        "HOST GROUP",
        "ADDRESS",
        "LAST JOB",
    ]);
    for n in v.as_array().into_iter().flatten() {
        t.add_row(vec![
            text(&n["name"]),
            text(&n["status"]),
            reachability(&n["reachability"]),
            text(&n["host_group"]),
            text(&n["addr"]),
            text(&n["last_job"]),
        ]);
    }
    println!("{t}");
}

/// One node, field by field.
pub fn node(n: &Value) {
    let mut t = table(&["FIELD", "VALUE"]);
    for key in [
        "name",
        "status",
        "host_group",
        "addr",
        "serial",
        "last_job",
        "error",
        "revision",
        "updated_at",
    ] {
        t.add_row(vec![key.to_owned(), text(&n[key])]);
    }
    t.add_row(vec![
        "reachability".to_owned(),
        reachability(&n["reachability"]),
    ]);
    t.add_row(vec!["tags".to_owned(), n["tags"].to_string()]);
    t.add_row(vec!["vars".to_owned(), n["vars"].to_string()]);
    println!("{t}");
}

/// An audit log page.
pub fn events(v: &Value) {
    let mut t = table(&["SEQ", "TIME", "KIND", "FROM", "TO", "CAUSE", "JOB"]);
    for e in v.as_array().into_iter().flatten() {
        t.add_row(vec![
            text(&e["seq"]),
            text(&e["at"]),
            text(&e["kind"]),
            text(&e["from"]),
            text(&e["to"]),
            text(&e["cause"]),
            text(&e["job"]),
        ]);
    }
    println!("{t}");
}

/// Why a job failed, in one line.
pub fn job_error(j: &Value) -> String {
    if let Some(e) = j["error"].as_str() {
        return e.to_owned();
    }
    let failed: Vec<String> = j["failed"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(n, why)| format!("{n}: {}", why.as_str().unwrap_or("failed")))
        .collect();
    if failed.is_empty() {
        "-".into()
    } else {
        failed.join("; ")
    }
}

fn nodes_list(j: &Value) -> String {
    let names: Vec<&str> = j["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if names.len() > 6 {
        format!("{} ... ({} nodes)", names[..5].join(", "), names.len())
    } else {
        names.join(", ")
    }
}

/// One job.
pub fn job(j: &Value) {
    let mut t = table(&["FIELD", "VALUE"]);
    t.add_row(vec!["id".to_owned(), text(&j["id"])]);
    t.add_row(vec!["kind".to_owned(), text(&j["kind"])]);
    t.add_row(vec!["status".to_owned(), text(&j["status"])]);
    t.add_row(vec!["nodes".to_owned(), nodes_list(j)]);
    t.add_row(vec!["host_group".to_owned(), text(&j["host_group"])]);
    t.add_row(vec!["created_at".to_owned(), text(&j["created_at"])]);
    t.add_row(vec!["ended_at".to_owned(), text(&j["ended_at"])]);
    t.add_row(vec!["error".to_owned(), job_error(j)]);
    println!("{t}");
}

/// The job list.
pub fn jobs(v: &Value) {
    let mut t = table(&["ID", "KIND", "STATUS", "NODES", "CREATED", "ERROR"]);
    for j in v.as_array().into_iter().flatten() {
        t.add_row(vec![
            text(&j["id"]),
            text(&j["kind"]),
            text(&j["status"]),
            nodes_list(j),
            text(&j["created_at"]),
            job_error(j),
        ]);
    }
    println!("{t}");
}

/// The cluster record.
pub fn cluster(c: &Value) {
    let mut t = table(&["FIELD", "VALUE"]);
    for key in ["backend", "state", "bootstrap_node", "updated_at"] {
        t.add_row(vec![key.to_owned(), text(&c[key])]);
    }
    println!("{t}");
}
