//! Kubernetes `ClusterBackend` for clusterm; it will drive the API server through kube-rs.
