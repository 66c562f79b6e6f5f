//! The manager engine (being written).

/// Manager settings.
#[derive(Debug, Clone, Default)]
pub struct ManagerConfig;
/// The engine.
#[derive(Debug)]
pub struct Manager;
