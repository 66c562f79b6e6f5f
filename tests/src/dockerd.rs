//! Real dockerd daemons for tests.
