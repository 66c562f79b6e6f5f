//! The exception hierarchy: one Python exception per `cluster_core::Error::code()`,
//! plus the two kinds only a remote client meets (`Unauthorized`, `TransportError`).
//! Local and remote errors go through the same code-to-class table, so `except
//! clusterm.NotFound` works the same against the daemon and the embedded manager.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    clusterm,
    ClustermError,
    PyException,
    "Base class of every clusterm error; `code` is the stable error code."
);
create_exception!(clusterm, NotFound, ClustermError, "No such node or job.");
create_exception!(
    clusterm,
    IllegalTransition,
    ClustermError,
    "The node's status does not allow the action."
);
create_exception!(
    clusterm,
    NodeBusy,
    ClustermError,
    "The node belongs to a running job."
);
create_exception!(
    clusterm,
    InvalidInput,
    ClustermError,
    "The request is malformed."
);
create_exception!(
    clusterm,
    Conflict,
    ClustermError,
    "A revision conflict on a node."
);
create_exception!(
    clusterm,
    JobStateError,
    ClustermError,
    "The job's state does not allow the request."
);
create_exception!(
    clusterm,
    UnknownComponent,
    ClustermError,
    "No component registered under the name."
);
create_exception!(
    clusterm,
    ConfigError,
    ClustermError,
    "A component's configuration is wrong."
);
create_exception!(
    clusterm,
    StoreError,
    ClustermError,
    "The inventory store failed."
);
create_exception!(
    clusterm,
    PushError,
    ClustermError,
    "The configuration push failed as a whole."
);
create_exception!(
    clusterm,
    BackendError,
    ClustermError,
    "The clustering backend failed."
);
create_exception!(
    clusterm,
    DiscoveryError,
    ClustermError,
    "The discovery layer failed."
);
create_exception!(
    clusterm,
    NotSupported,
    ClustermError,
    "The operation is not offered here."
);
create_exception!(
    clusterm,
    ShutdownError,
    ClustermError,
    "The manager is shut down."
);
create_exception!(
    clusterm,
    Unauthorized,
    ClustermError,
    "Missing or wrong bearer token."
);
create_exception!(
    clusterm,
    TransportError,
    ClustermError,
    "The daemon could not be reached or answered something unreadable."
);

/// Error code of a client-side transport failure (no HTTP answer to read a code from).
pub const TRANSPORT: &str = "transport";
/// Error code the daemon uses for a missing or wrong bearer token.
pub const UNAUTHORIZED: &str = "unauthorized";

/// Every exception class with the code it stands for, in the order they are exported.
fn table(py: Python<'_>) -> Vec<(&'static str, Bound<'_, pyo3::types::PyType>)> {
    vec![
        ("", py.get_type::<ClustermError>()),
        ("not_found", py.get_type::<NotFound>()),
        ("illegal_transition", py.get_type::<IllegalTransition>()),
        ("node_busy", py.get_type::<NodeBusy>()),
        ("invalid_input", py.get_type::<InvalidInput>()),
        ("conflict", py.get_type::<Conflict>()),
        ("job_state", py.get_type::<JobStateError>()),
        ("unknown_component", py.get_type::<UnknownComponent>()),
        ("config", py.get_type::<ConfigError>()),
        ("store", py.get_type::<StoreError>()),
        ("push", py.get_type::<PushError>()),
        ("backend", py.get_type::<BackendError>()),
        ("discovery", py.get_type::<DiscoveryError>()),
        ("not_supported", py.get_type::<NotSupported>()),
        ("shutdown", py.get_type::<ShutdownError>()),
        (UNAUTHORIZED, py.get_type::<Unauthorized>()),
        (TRANSPORT, py.get_type::<TransportError>()),
    ]
}

/// Builds the exception for an error `code` (unknown codes get the base class) and
/// sets its `code` and `message` attributes.
pub fn from_code(code: &str, message: String) -> PyErr {
    Python::attach(|py| {
        let class = table(py)
            .into_iter()
            .find(|(c, _)| *c == code)
            .map_or_else(|| py.get_type::<ClustermError>(), |(_, t)| t);
        match class.call1((message.clone(),)) {
            Ok(exc) => {
                // Attribute writes on a fresh exception instance cannot fail.
                let _ = exc.setattr("code", code);
                let _ = exc.setattr("message", message);
                PyErr::from_value(exc)
            }
            Err(e) => e,
        }
    })
}

/// The Python exception for a core error.
pub fn core(e: cluster_core::Error) -> PyErr {
    from_code(e.code(), e.to_string())
}

/// A transport failure talking to the daemon.
pub fn transport(message: impl std::fmt::Display) -> PyErr {
    from_code(TRANSPORT, message.to_string())
}

/// Adds the exception classes to the module and gives each class its `code`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    for (code, class) in table(m.py()) {
        if !code.is_empty() {
            class.setattr("code", code)?;
        }
        m.add(class.name()?, class)?;
    }
    Ok(())
}
