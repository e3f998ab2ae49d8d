//! The autoscaler: sizes the other workers' consumer groups from their lag and rates
//! ([`crate::autoscale`]'s policy). Built so far: its settings and `frontier autoscale plan`;
//! the controller loop and its actuators (local processes, Kubernetes) come next.

pub mod plan;
mod settings;

pub use plan::{Planned, plan};
pub use settings::AutoscalerSettings;
