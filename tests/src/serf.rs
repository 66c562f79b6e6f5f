//! Real serf agents for tests.
