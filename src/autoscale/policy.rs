//! The sizing policy: how many instances a consumer group should run, from what the lag
//! sampler and the workers' status reports saw, and why. I/O-free: the controller feeds it
//! observations and a clock, so every rule is tested on its own.
//!
//! - **Rate sizing** (DS2, Kalavri et al., OSDI 2018): an instance's true rate is what it
//!   processed per second of busy time; the group needs enough of them to take the arrival
//!   rate plus the backlog drained within `catch_up`, at `target_utilization`. It reaches the
//!   right size in one step where a threshold scaler doubles its way there, a rebalance at
//!   every step.
//! - **Lag sizing** (KEDA's Kafka scaler, the baseline): `ceil(lag / lag_threshold)`, with
//!   HPA's scale-up limit (+100 % or +4 instances per step).
//! - CPU and memory targets are floors (HPA's `ceil(current x use / target)`), bounds hold,
//!   a scale-down takes the highest recommendation of `scale_down_window` (HPA's
//!   stabilization) and at most `max_scale_down_share` of the instances, nothing changes during
//!   a `cooldown` after a change, and a stuck group (STALL, STOP) is held and alerted on,
//!   never grown.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::health::PartitionHealth;
use crate::clock::duration_millis as millis;
use crate::config::InvalidSetting;
use crate::records::ScaleAction;

/// Which formula sizes a group.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum Sizing {
    /// DS2: (arrival rate + backlog / catch_up) / (true rate per instance x target utilization).
    Rate,
    /// KEDA's Kafka scaler: ceil(lag / lag_threshold), scaled up at most +100 % or +4 a step.
    Lag {
        /// Messages of lag one instance is expected to handle (KEDA's `lagThreshold`).
        lag_threshold: u64,
    },
}

/// How one group is sized. Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySettings {
    /// The formula.
    pub sizing: Sizing,
    /// Fewest instances the group runs.
    pub min_instances: u32,
    /// Most instances the group runs.
    pub max_instances: u32,
    /// Whether the group may run more consumers than its topics have partitions (the extra
    /// ones sit idle unless they stand by for a failover).
    pub allow_idle_consumers: bool,
    /// Rate sizing: how soon a backlog should be drained.
    #[serde(with = "humantime_serde")]
    pub catch_up: Duration,
    /// Rate sizing: the share of an instance's time it should be busy at the chosen size
    /// (headroom for bursts and for rebalances).
    pub target_utilization: f64,
    /// CPU use per instance (share of its cores) above which instances are added whatever
    /// the lag says; none for no CPU floor.
    pub cpu_target: Option<f64>,
    /// Memory use per instance (share of its limit) above which instances are added; none for
    /// no memory floor.
    pub memory_target: Option<f64>,
    /// A scale-down goes only as low as the highest recommendation over this window, so a lull
    /// does not remove instances the next burst needs.
    #[serde(with = "humantime_serde")]
    pub scale_down_window: Duration,
    /// The largest share of the instances one scale-down removes (at least one).
    pub max_scale_down_share: f64,
    /// After a change, how long the group is left to rebalance and show its new rates before
    /// the next one.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            sizing: Sizing::Rate,
            min_instances: 2,
            max_instances: 20,
            allow_idle_consumers: false,
            catch_up: Duration::from_secs(60),
            target_utilization: 0.8,
            cpu_target: Some(0.8),
            memory_target: Some(0.85),
            scale_down_window: Duration::from_secs(120),
            max_scale_down_share: 0.5,
            cooldown: Duration::from_secs(30),
        }
    }
}

impl PolicySettings {
    /// Checks the bounds and shares (keys relative to these settings; see
    /// [`InvalidSetting::within`]).
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let invalid = |field: &str, reason: &str| InvalidSetting::new(field, reason);
        if self.min_instances == 0 {
            return Err(invalid("min_instances", "must be at least 1 (a group of 0 consumes nothing)"));
        }
        if self.max_instances < self.min_instances {
            return Err(invalid("max_instances", "must be at least min_instances"));
        }
        if let Sizing::Lag { lag_threshold: 0 } = self.sizing {
            return Err(invalid("sizing.lag_threshold", "must be at least 1"));
        }
        if self.catch_up.is_zero() {
            return Err(invalid("catch_up", "must be longer than 0s"));
        }
        for (field, share) in [
            ("target_utilization", Some(self.target_utilization)),
            ("cpu_target", self.cpu_target),
            ("memory_target", self.memory_target),
            ("max_scale_down_share", Some(self.max_scale_down_share)),
        ] {
            if let Some(share) = share
                && !(share > 0.0 && share <= 1.0)
            {
                return Err(invalid(field, "must be a share in (0, 1]"));
            }
        }
        Ok(())
    }
}

/// What the controller saw of a group at one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// Instances running now.
    pub instances: u32,
    /// Partitions of the group's topics.
    pub partitions: u32,
    /// Messages waiting, over every partition.
    pub backlog: u64,
    /// Messages per second arriving (log ends), over the sampler's window; `None` until two
    /// samples exist.
    pub arrival_rate: Option<f64>,
    /// Messages per second the group committed over the same window.
    pub commit_rate: Option<f64>,
    /// Mean share of their time the instances spent handling messages (the workers' status
    /// reports); `None` when none reported it.
    pub busy_share: Option<f64>,
    /// Highest CPU use of an instance, as a share of its cores.
    pub cpu: Option<f64>,
    /// Highest memory use of an instance, as a share of its limit.
    pub memory: Option<f64>,
    /// The worst partition status.
    pub health: PartitionHealth,
}

/// What the policy decided, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Up, down or hold.
    pub action: ScaleAction,
    /// Instances the group should run (the current count for a hold).
    pub desired: u32,
    /// What the formula asked for before stabilization and cooldown, within the bounds.
    pub recommended: u32,
    /// The bounds applied: (min, max).
    pub bounds: (u32, u32),
    /// Why, in words, with the figures.
    pub reason: String,
}

/// What the policy remembers of a group between evaluations.
#[derive(Debug, Default, Clone)]
pub struct PolicyMemory {
    /// Recommendations over the scale-down window: (at_ms, instances).
    recommendations: VecDeque<(i64, u32)>,
    /// When the last change was decided.
    last_change_ms: Option<i64>,
}

/// Decides the size of a group from `seen`, remembering what stabilization needs in `memory`.
pub fn decide(settings: &PolicySettings, seen: &Observation, memory: &mut PolicyMemory) -> Verdict {
    let max = if settings.allow_idle_consumers {
        settings.max_instances
    } else {
        settings.max_instances.min(seen.partitions.max(1))
    };
    let min = settings.min_instances.min(max);
    let current = seen.instances;
    let hold = |recommended: u32, reason: String| Verdict {
        action: ScaleAction::Hold,
        desired: current,
        recommended,
        bounds: (min, max),
        reason,
    };
    if seen.health.is_stuck() {
        // More instances would not move a stuck group; only its bounds are kept (a group the
        // controller has not started yet has no member either, and needs its minimum).
        let bounded = current.clamp(min, max);
        let reason = format!(
            "partitions are {} with {} message(s) waiting: more instances would not move them; alerting, not scaling",
            seen.health.as_str(),
            seen.backlog
        );
        if bounded == current {
            return hold(current, reason);
        }
        let action = if bounded > current { ScaleAction::ScaleUp } else { ScaleAction::ScaleDown };
        memory.last_change_ms = Some(seen.at_ms);
        let reason = format!("{reason}; brought within bounds {min}..{max}");
        return Verdict { action, desired: bounded, recommended: bounded, bounds: (min, max), reason };
    }
    let (formula, why) = match recommend(settings, seen) {
        Ok(recommended) => recommended,
        Err(reason) => {
            // Nothing to size from yet; still bring the group inside its bounds.
            let bounded = current.clamp(min, max);
            if bounded == current {
                return hold(current, reason);
            }
            (bounded, reason)
        }
    };
    let (floor, floor_why) = resource_floor(settings, seen);
    let mut recommended = formula.max(floor);
    let mut why = if floor > formula { floor_why } else { why };
    if recommended > max {
        why = format!("{why}; capped at max_instances {max}");
    } else if recommended < min {
        why = format!("{why}; raised to min_instances {min}");
    }
    recommended = recommended.clamp(min, max);

    memory.recommendations.push_back((seen.at_ms, recommended));
    let window_ms = millis(settings.scale_down_window);
    while memory.recommendations.front().is_some_and(|&(at, _)| at < seen.at_ms - window_ms) {
        memory.recommendations.pop_front();
    }
    let mut desired = recommended;
    if recommended < current {
        // HPA's stabilization: no lower than the highest recommendation of the window.
        let highest = memory.recommendations.iter().map(|&(_, n)| n).max().unwrap_or(recommended);
        let step = ((f64::from(current) * settings.max_scale_down_share).floor() as u32).max(1);
        desired = highest.max(current.saturating_sub(step)).max(recommended).min(current);
        if desired > recommended {
            why = format!(
                "{why}; stabilized at {desired} (highest of the last {}, at most -{step} a step)",
                humantime::format_duration(settings.scale_down_window)
            );
        }
    } else if let Sizing::Lag { .. } = settings.sizing {
        // HPA's scale-up limit: +100 % or +4 instances, whichever is more.
        let limit = (current * 2).max(current + 4);
        if desired > limit {
            desired = limit;
            why = format!("{why}; stepped to {limit} (at most +100 % or +4 a step)");
        }
    }
    if desired == current {
        return hold(recommended, why);
    }
    if let Some(last) = memory.last_change_ms
        && seen.at_ms - last < millis(settings.cooldown)
    {
        return hold(
            recommended,
            format!(
                "{why}; in cooldown ({} since the last change)",
                humantime::format_duration(Duration::from_millis(u64::try_from(seen.at_ms - last).unwrap_or_default()))
            ),
        );
    }
    memory.last_change_ms = Some(seen.at_ms);
    let action = if desired > current { ScaleAction::ScaleUp } else { ScaleAction::ScaleDown };
    Verdict { action, desired, recommended, bounds: (min, max), reason: why }
}

/// The formula's instance count and why, or why there is nothing to size from yet.
fn recommend(settings: &PolicySettings, seen: &Observation) -> Result<(u32, String), String> {
    match settings.sizing {
        Sizing::Lag { lag_threshold } => {
            let needed = seen.backlog.div_ceil(lag_threshold);
            Ok((saturate(needed as f64), format!("lag {} / threshold {lag_threshold} = {needed}", seen.backlog)))
        }
        Sizing::Rate => {
            let (Some(arrival), Some(committed)) = (seen.arrival_rate, seen.commit_rate) else {
                return Err("measuring: rates need two samples".to_owned());
            };
            // A group with a backlog is busy all the time, whatever it reports.
            let busy = match seen.busy_share {
                Some(busy) if busy > 0.0 => busy.min(1.0),
                _ if seen.backlog > 0 => 1.0,
                _ if arrival <= 0.0 => {
                    return Ok((0, "idle: nothing arrives and nothing waits".to_owned()));
                }
                _ => return Err("measuring: no busy share reported yet".to_owned()),
            };
            if committed <= 0.0 || seen.instances == 0 {
                return Err(format!("measuring: nothing committed yet with {} message(s) waiting", seen.backlog));
            }
            let per_instance = committed / busy / f64::from(seen.instances);
            let demand = arrival + seen.backlog as f64 / settings.catch_up.as_secs_f64();
            let needed = demand / (per_instance * settings.target_utilization);
            Ok((
                saturate(needed.ceil()),
                format!(
                    "{arrival:.0} msg/s arriving + {} waiting over {} = {demand:.0} msg/s; {per_instance:.0} msg/s per busy instance at {:.0} % = {needed:.1}",
                    seen.backlog,
                    humantime::format_duration(settings.catch_up),
                    settings.target_utilization * 100.0
                ),
            ))
        }
    }
}

/// The fewest instances that keep CPU and memory use under their targets, and why.
fn resource_floor(settings: &PolicySettings, seen: &Observation) -> (u32, String) {
    let mut floor = (0, String::new());
    for (name, used, target) in
        [("cpu", seen.cpu, settings.cpu_target), ("memory", seen.memory, settings.memory_target)]
    {
        if let (Some(used), Some(target)) = (used, target)
            && used > target
        {
            let needed = saturate((f64::from(seen.instances) * used / target).ceil());
            if needed > floor.0 {
                floor = (needed, format!("{name} at {:.0} % over its {:.0} % target", used * 100.0, target * 100.0));
            }
        }
    }
    floor
}

fn saturate(value: f64) -> u32 {
    if value.is_finite() && value > 0.0 { value.min(f64::from(u32::MAX)) as u32 } else { 0 }
}
