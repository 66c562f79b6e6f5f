//! Python bindings for clusterm (`import clusterm`); they will wrap the REST client and the embedded manager with pyo3.
