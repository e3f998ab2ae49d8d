//! Specifications of the SLA monitor, one behaviour per test.

mod checkpoint;
mod config;
mod drops;
mod hot_path;
mod queries;
mod restore;
mod rules;
mod schema;
mod signals;
mod slo;
mod support;
mod windows;
