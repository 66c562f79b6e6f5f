//! Arguments shared by the client and the manager: one or many node names, and the
//! lifecycle request they make up with host group, extra vars and rolling options.

use cluster_core::manager::Request;
use cluster_core::{Error, Rolling};
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::json;

/// One node name or a sequence of them.
pub enum Names {
    /// A single `str`: the per-node API route.
    One(String),
    /// A list: the batch route.
    Many(Vec<String>),
}

impl Names {
    /// Reads a `str` or a sequence of `str`.
    pub fn extract(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        if let Ok(s) = obj.cast::<PyString>() {
            return Ok(Names::One(s.extract::<String>()?));
        }
        Ok(Names::Many(obj.extract()?))
    }

    /// The names as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Names::One(n) => vec![n],
            Names::Many(v) => v,
        }
    }
}

/// The core request of a lifecycle call on `nodes` (a `str` or a list), and whether it
/// named a list (the batch route).
pub fn lifecycle(
    nodes: &Bound<'_, PyAny>,
    host_group: Option<String>,
    extra_vars: Option<&Bound<'_, PyAny>>,
    batch_size: Option<usize>,
    max_failures: Option<usize>,
) -> PyResult<(Request, bool)> {
    let names = Names::extract(nodes)?;
    let batch = matches!(names, Names::Many(_));
    let req = build(
        names.into_vec(),
        host_group,
        extra_vars,
        batch_size,
        max_failures,
    )?;
    Ok((req, batch))
}

/// Builds the core request; rolling options need a batch size.
fn build(
    nodes: Vec<String>,
    host_group: Option<String>,
    extra_vars: Option<&Bound<'_, PyAny>>,
    batch_size: Option<usize>,
    max_failures: Option<usize>,
) -> PyResult<Request> {
    let rolling = match (batch_size, max_failures) {
        (Some(batch_size), m) => Some(Rolling {
            batch_size,
            max_failures: m.unwrap_or(0),
        }),
        (None, Some(_)) => {
            return Err(crate::errors::core(Error::invalid(
                "rolling.max_failures",
                "needs batch_size",
            )));
        }
        (None, None) => None,
    };
    Ok(Request {
        nodes,
        host_group: host_group.map(|g| g.as_str().into()),
        extra_vars: json::opt_from_py("extra_vars", extra_vars)?,
        rolling,
    })
}
