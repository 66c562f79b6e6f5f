//! Apache Mesos `ClusterBackend` for clusterm; it will drive a Mesos master through its operator HTTP API.
