//! Extra vars: validation and the deep merge `globals < node < request` (later wins,
//! JSON objects merge key by key, anything else is replaced whole).

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Checks that `vars` is a JSON object (or `null`, meaning none) and returns it as one.
pub fn require_object(field: &str, vars: Value) -> Result<Value> {
    match vars {
        Value::Null => Ok(Value::Object(Map::new())),
        Value::Object(_) => Ok(vars),
        other => Err(Error::invalid(
            field,
            format!("must be a JSON object, got {}", kind_name(&other)),
        )),
    }
}

/// Parses extra vars given as a JSON string (the Contiv API carries them that way).
pub fn parse_object(field: &str, text: &str) -> Result<Value> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let v: Value = serde_json::from_str(text)
        .map_err(|e| Error::invalid(field, format!("not valid JSON: {e}")))?;
    require_object(field, v)
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Merges `over` into `base`: objects merge recursively, other values replace.
pub fn deep_merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => deep_merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

/// `layers` merged left to right (the last wins), starting from an empty object.
pub fn merged<'a>(layers: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut out = Value::Object(Map::new());
    for layer in layers {
        if !layer.is_null() {
            deep_merge(&mut out, layer);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn later_layers_win_and_objects_merge_deeply() {
        let globals = json!({"a": 1, "env": {"proxy": "g", "dns": "g"}, "list": [1, 2]});
        let node = json!({"env": {"dns": "n"}, "b": true});
        let request = json!({"env": {"proxy": "r"}, "list": [3]});
        let m = merged([&globals, &node, &request]);
        assert_eq!(
            m,
            json!({"a": 1, "b": true, "env": {"proxy": "r", "dns": "n"}, "list": [3]})
        );
    }

    #[test]
    fn non_objects_are_refused_with_the_field_named() {
        for bad in [json!(1), json!("x"), json!([1]), json!(true)] {
            let e = require_object("extra_vars", bad).unwrap_err();
            assert_eq!(e.code(), "invalid_input");
            assert!(e.to_string().contains("extra_vars"), "{e}");
        }
        assert_eq!(require_object("v", Value::Null).unwrap(), json!({}));
        assert!(parse_object("extra_vars", "{\"a\": ").is_err());
        assert!(parse_object("extra_vars", "[1]").is_err());
        assert_eq!(parse_object("extra_vars", " ").unwrap(), json!({}));
        assert_eq!(
            parse_object("extra_vars", "{\"a\":1}").unwrap(),
            json!({"a": 1})
        );
    }
}
