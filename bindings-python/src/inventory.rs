//! Ansible dynamic inventory from clusterm's nodes: one group per host group (named as
//! the host group, so playbooks written for `service-master` keep working) and one per
//! status (`status_commissioned`, ...); globals are `all` vars, node vars host vars.

use std::collections::BTreeMap;

use cluster_core::Node;
use pyo3::prelude::*;
use serde_json::{Map, Value, json};

use crate::json::{self, Json};
use crate::types;

/// Group names Ansible reserves; a host group by that name is not turned into a group.
const RESERVED: [&str; 3] = ["all", "ungrouped", "_meta"];

/// The inventory group of nodes in `status`.
pub fn status_group(status: cluster_core::NodeStatus) -> String {
    format!("status_{}", status.as_str().to_ascii_lowercase())
}

/// The host vars of one node: connection and clusterm facts, then the node's own vars
/// (which win, so a node can override `ansible_host`).
pub fn host_vars(node: &Node) -> Value {
    let mut vars = Map::new();
    if !node.addr.is_empty() {
        vars.insert("ansible_host".into(), json!(node.addr));
    }
    vars.insert("clusterm_status".into(), json!(node.status.as_str()));
    vars.insert(
        "clusterm_reachability".into(),
        json!(node.reachability.as_str()),
    );
    vars.insert("clusterm_host_group".into(), json!(node.host_group));
    vars.insert("clusterm_serial".into(), json!(node.serial));
    vars.insert("clusterm_tags".into(), json!(node.tags));
    if let Value::Object(own) = &node.vars {
        vars.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Value::Object(vars)
}

/// The `--list` document for `nodes` with `globals` as `all` vars.
pub fn list(nodes: &[Node], globals: &Value) -> Value {
    let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut hostvars = Map::new();
    for n in nodes {
        hostvars.insert(n.name.clone(), host_vars(n));
        if let Some(g) = &n.host_group {
            if !RESERVED.contains(&g.as_str()) && !g.as_str().is_empty() {
                groups
                    .entry(g.as_str().to_owned())
                    .or_default()
                    .push(&n.name);
            }
        }
        groups
            .entry(status_group(n.status))
            .or_default()
            .push(&n.name);
    }
    let mut doc = Map::new();
    let all_vars = match globals {
        Value::Object(_) => globals.clone(),
        _ => json!({}),
    };
    doc.insert(
        "all".into(),
        json!({ "children": groups.keys().collect::<Vec<_>>(), "vars": all_vars }),
    );
    for (g, hosts) in &groups {
        doc.insert(g.clone(), json!({ "hosts": hosts }));
    }
    doc.insert("_meta".into(), json!({ "hostvars": hostvars }));
    Value::Object(doc)
}

/// The `--list` document for these nodes and globals.
#[pyfunction]
#[pyo3(name = "ansible_inventory")]
fn py_list(nodes: Vec<PyRef<'_, types::Node>>, globals: &Bound<'_, PyAny>) -> PyResult<Json> {
    let nodes: Vec<Node> = nodes.iter().map(|n| n.0.clone()).collect();
    Ok(Json(list(&nodes, &json::from_py("globals", globals)?)))
}

/// The `--host` document (host vars) of one node.
#[pyfunction]
#[pyo3(name = "ansible_host_vars")]
fn py_host_vars(node: PyRef<'_, types::Node>) -> Json {
    Json(host_vars(&node.0))
}

/// Adds the functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(py_list, m)?)?;
    m.add_function(wrap_pyfunction!(py_host_vars, m)?)?;
    Ok(())
}
