//! Specifications of the SLA monitor, one behaviour per test.

mod config;
mod drops;
mod hot_path;
mod restore;
mod rules;
mod schema;
mod slo;
mod support;
mod windows;
