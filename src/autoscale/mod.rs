//! Lag-based autoscaling: how many instances each consumer group should run.
//!
//! - [`health`]: Burrow's partition statuses (OK, WARN, STALL, STOP, REWIND) from recent
//!   committed offsets and log ends.
//! - [`lag`]: `LagSampler`, a group's committed offsets, log ends, members and lag in time,
//!   read from the brokers without joining the group.
//! - [`observe`]: a group's samples turned into what the policy reads (rates, backlog, health).
//! - [`policy`]: the sizing policy (DS2's rate sizing, KEDA's lag formula as the baseline,
//!   CPU and memory floors, bounds, stabilization, cooldown, stuck groups held), I/O-free.

pub mod health;
pub mod lag;
pub mod observe;
pub mod policy;
#[cfg(test)]
mod tests;

pub use health::{OffsetSample, PartitionHealth, partition_health};
pub use lag::{GroupSample, LagSampler, PartitionSample, SampleError};
pub use observe::{InstanceUse, observe};
pub use policy::{Observation, PolicyMemory, PolicySettings, Sizing, Verdict, decide};
