//! The files one ansible-playbook run reads: the generated inventory and the extra-vars
//! file, both written as YAML flow documents (JSON syntax plus tags).
//!
//! Every string that comes from user data is tagged `!unsafe`, so Ansible never runs it
//! through Jinja: a value like `{{ lookup('pipe', 'id') }}` reaches the playbook as
//! those characters, not as the output of a command. Strings are written with escapes
//! for everything outside printable ASCII, because PyYAML refuses some raw characters
//! (DEL, C1 controls) even inside quotes.
//!
//! Ansible extra vars apply to every host of a run, while merged vars are per host.
//! Keys whose value is the same on every host go to the extra-vars file (the highest
//! precedence in Ansible); keys whose value differs between hosts of the run become host
//! vars of each host in the inventory. For the usual run (globals and request vars only)
//! everything is an extra var.

use std::collections::BTreeSet;
use std::fmt::Write;

use serde_json::{Map, Value};

use crate::job::HostSpec;

/// Names of the groups of the generated inventory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InventoryGroups {
    /// Group every host of a run belongs to.
    pub all: String,
    /// Groups defined in every inventory even when no host of the run is in them, so
    /// plays that target them match nothing instead of warning.
    pub always: Vec<String>,
}

impl Default for InventoryGroups {
    fn default() -> Self {
        InventoryGroups {
            all: "cluster-node".into(),
            always: vec!["service-master".into(), "service-worker".into()],
        }
    }
}

/// Whether `name` can be an inventory host name as is: Ansible reads `[a:b]` as a
/// range and `host:port` as a port, and templates host names that look like Jinja.
pub(super) fn usable_host_name(name: &str) -> bool {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    plain || name.parse::<std::net::Ipv6Addr>().is_ok()
}

/// Vars of a run split into the extra vars shared by every host and each host's own.
#[derive(Debug, Default, PartialEq)]
pub(super) struct SplitVars {
    /// Same value on every host.
    pub common: Map<String, Value>,
    /// Per host, in the order of the hosts: keys whose value differs between hosts.
    pub per_host: Vec<Map<String, Value>>,
}

/// Splits the merged vars of `hosts` (see the module doc).
pub(super) fn split_vars(hosts: &[HostSpec]) -> SplitVars {
    let empty = Map::new();
    let objects: Vec<&Map<String, Value>> = hosts
        .iter()
        .map(|h| h.vars.as_object().unwrap_or(&empty))
        .collect();
    let keys: BTreeSet<&String> = objects.iter().flat_map(|o| o.keys()).collect();
    let mut out = SplitVars {
        common: Map::new(),
        per_host: vec![Map::new(); hosts.len()],
    };
    for key in keys {
        let first = objects.first().and_then(|o| o.get(key));
        let shared = first.is_some() && objects.iter().all(|o| o.get(key) == first);
        if shared {
            out.common
                .insert(key.clone(), first.cloned().unwrap_or_default());
        } else {
            for (own, vars) in out.per_host.iter_mut().zip(&objects) {
                if let Some(v) = vars.get(key) {
                    own.insert(key.clone(), v.clone());
                }
            }
        }
    }
    out
}

/// The extra-vars document.
pub(super) fn vars_document(vars: &Map<String, Value>, tag_unsafe: bool) -> String {
    let mut out = String::new();
    write_object(&mut out, vars, tag_unsafe, false);
    out.push('\n');
    out
}

/// The inventory document for `hosts` (all with usable names) with their own vars.
pub(super) fn inventory_document(
    hosts: &[HostSpec],
    own_vars: &[Map<String, Value>],
    groups: &InventoryGroups,
    tag_unsafe: bool,
) -> String {
    let mut members: std::collections::BTreeMap<&str, Vec<&str>> = groups
        .always
        .iter()
        .filter(|g| **g != groups.all)
        .map(|g| (g.as_str(), Vec::new()))
        .collect();
    for h in hosts {
        if let Some(g) = &h.group {
            if g.as_str() != groups.all {
                members.entry(g.as_str()).or_default().push(&h.name);
            }
        }
    }
    let mut out = String::from("{\"all\": {\"children\": {");
    write_str(&mut out, &groups.all, false);
    out.push_str(": {\"hosts\": {");
    for (i, (host, own)) in hosts.iter().zip(own_vars).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_str(&mut out, &host.name, false);
        out.push_str(": {");
        let addr = if host.addr.is_empty() {
            &host.name
        } else {
            &host.addr
        };
        let fixed = [
            ("node_name", &host.name),
            ("node_addr", &host.addr),
            ("ansible_host", addr),
        ];
        for (j, (k, v)) in fixed.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            write_str(&mut out, k, false);
            out.push_str(": ");
            write_str(&mut out, v, tag_unsafe);
        }
        for (k, v) in own {
            out.push_str(", ");
            write_str(&mut out, k, false);
            out.push_str(": ");
            write_value(&mut out, v, tag_unsafe);
        }
        out.push('}');
    }
    out.push_str("}}");
    for (group, names) in members {
        out.push_str(", ");
        write_str(&mut out, group, false);
        out.push_str(": {\"hosts\": {");
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            write_str(&mut out, n, false);
            out.push_str(": null");
        }
        out.push_str("}}");
    }
    out.push_str("}}}\n");
    out
}

fn write_object(out: &mut String, map: &Map<String, Value>, tag_unsafe: bool, tag_keys: bool) {
    out.push('{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_str(out, k, tag_unsafe && tag_keys);
        out.push_str(": ");
        write_value(out, v, tag_unsafe);
    }
    out.push('}');
}

fn write_value(out: &mut String, v: &Value, tag_unsafe: bool) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s, tag_unsafe),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item, tag_unsafe);
            }
            out.push(']');
        }
        // Nested keys are data too (Ansible templates dictionary keys).
        Value::Object(map) => write_object(out, map, tag_unsafe, true),
    }
}

/// Integers as they are; floats in the YAML 1.1 float form PyYAML recognises (a dot in
/// the mantissa, a signed exponent), so they stay floats.
fn write_number(out: &mut String, n: &serde_json::Number) {
    if n.is_i64() || n.is_u64() {
        let _ = write!(out, "{n}");
        return;
    }
    let f = n.as_f64().unwrap_or(0.0);
    let exp = format!("{f:e}");
    let (mantissa, exponent) = exp.split_once('e').unwrap_or((&exp, "0"));
    out.push_str(mantissa);
    if !mantissa.contains('.') {
        out.push_str(".0");
    }
    out.push('e');
    if !exponent.starts_with('-') {
        out.push('+');
    }
    out.push_str(exponent);
}

/// A double-quoted YAML scalar, tagged `!unsafe` when asked.
fn write_str(out: &mut String, s: &str, tag_unsafe: bool) {
    if tag_unsafe {
        out.push_str("!unsafe ");
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xFFFF => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08X}", c as u32);
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::HostGroup;
    use serde_json::json;

    fn host(name: &str, group: Option<&str>, vars: Value) -> HostSpec {
        HostSpec {
            name: name.into(),
            addr: format!("{name}.example"),
            group: group.map(|g| HostGroup(g.into())),
            vars,
        }
    }

    #[test]
    fn shared_values_are_extra_vars_and_differing_ones_host_vars() {
        let hosts = [
            host("a", None, json!({"g": 1, "d": {"x": 1}, "only_a": true})),
            host("b", None, json!({"g": 1, "d": {"x": 2}})),
        ];
        let split = split_vars(&hosts);
        assert_eq!(Value::Object(split.common), json!({"g": 1}));
        assert_eq!(
            split.per_host,
            vec![
                json!({"d": {"x": 1}, "only_a": true})
                    .as_object()
                    .unwrap()
                    .clone(),
                json!({"d": {"x": 2}}).as_object().unwrap().clone(),
            ]
        );
        let single = split_vars(&hosts[..1]);
        assert_eq!(single.common.len(), 3);
        assert!(single.per_host[0].is_empty());
    }

    #[test]
    fn strings_are_escaped_and_tagged() {
        let mut out = String::new();
        write_str(&mut out, "a\"b\\c\n\u{7f}é😀{{x}}", true);
        assert_eq!(
            out,
            "!unsafe \"a\\\"b\\\\c\\n\\u007F\\u00E9\\U0001F600{{x}}\""
        );
    }

    #[test]
    fn floats_keep_a_yaml_float_form() {
        let doc = vars_document(
            json!({"f": 2.5, "big": 1e300, "neg": -0.001, "i": -3, "u": u64::MAX})
                .as_object()
                .unwrap(),
            true,
        );
        assert_eq!(
            doc,
            format!(
                "{{\"big\": 1.0e+300, \"f\": 2.5e+0, \"i\": -3, \"neg\": -1.0e-3, \"u\": {}}}\n",
                u64::MAX
            )
        );
    }

    #[test]
    fn inventory_has_groups_and_fixed_host_vars() {
        let hosts = [
            host("m1", Some("service-master"), json!({})),
            host("w1", Some("service-worker"), json!({})),
            host("x1", None, json!({})),
        ];
        let own = vec![
            Map::new(),
            json!({"k": "v"}).as_object().unwrap().clone(),
            Map::new(),
        ];
        let doc = inventory_document(&hosts, &own, &InventoryGroups::default(), false);
        let parsed: Value = serde_json::from_str(&doc).unwrap();
        let children = &parsed["all"]["children"];
        assert_eq!(children["service-master"]["hosts"], json!({"m1": null}));
        assert_eq!(children["service-worker"]["hosts"], json!({"w1": null}));
        assert_eq!(
            children["cluster-node"]["hosts"]["w1"],
            json!({"node_name": "w1", "node_addr": "w1.example", "ansible_host": "w1.example", "k": "v"})
        );
        assert_eq!(
            children["cluster-node"]["hosts"].as_object().unwrap().len(),
            3
        );
    }

    #[test]
    fn host_names_that_ansible_would_reinterpret_are_refused() {
        for ok in ["n1", "node-1.example.com", "a_b", "10.0.0.1", "fe80::1"] {
            assert!(usable_host_name(ok), "{ok}");
        }
        for bad in ["", "n[1:3]", "n1:22", "{{x}}", "a b", "a,b", "é"] {
            assert!(!usable_host_name(bad), "{bad}");
        }
    }
}
