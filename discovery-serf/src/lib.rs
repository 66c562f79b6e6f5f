//! HashiCorp Serf discovery for clusterm (being written).
