//! Docker Swarm backend for clusterm (being written).
