//! Shared pieces of the clusterm example programs.
