//! The sizing policy, rule by rule.

use std::time::Duration;

use super::health::PartitionHealth;
use super::policy::{Observation, PolicyMemory, PolicySettings, Sizing, decide};
use crate::records::ScaleAction;

/// Rate sizing without resource floors, cooldown or stabilization unless a test sets them.
fn settings() -> PolicySettings {
    PolicySettings {
        cpu_target: None,
        memory_target: None,
        cooldown: Duration::ZERO,
        scale_down_window: Duration::ZERO,
        ..PolicySettings::default()
    }
}

/// A group of `instances` on 12 partitions, keeping up with 1,000 msg/s at half busy.
fn seen(instances: u32) -> Observation {
    Observation {
        at_ms: 1_000_000,
        instances,
        partitions: 12,
        backlog: 0,
        arrival_rate: Some(1_000.0),
        commit_rate: Some(1_000.0),
        busy_share: Some(0.5),
        cpu: None,
        memory: None,
        health: PartitionHealth::Ok,
    }
}

#[test]
fn rate_sizing_reaches_the_needed_size_in_one_step() {
    // 4 instances, busy all the time, commit 400 msg/s: 100 msg/s each. 2,000 msg/s arrive
    // and 60,000 wait: (2,000 + 60,000 / 60 s) / (100 x 0.8) = 37.5 -> 38: capped at 20, or
    // all of it where 50 are allowed.
    let mut observation = seen(4);
    observation.partitions = 40;
    (observation.arrival_rate, observation.commit_rate, observation.busy_share) = (Some(2_000.0), Some(400.0), None);
    observation.backlog = 60_000;
    let verdict = decide(&settings(), &observation, &mut PolicyMemory::default());
    assert_eq!((verdict.action, verdict.desired), (ScaleAction::ScaleUp, 20), "{}", verdict.reason);
    assert_eq!(verdict.bounds, (2, 20));

    observation.partitions = 100;
    let mut wide = settings();
    wide.max_instances = 50;
    let verdict = decide(&wide, &observation, &mut PolicyMemory::default());
    assert_eq!(verdict.desired, 38, "{}", verdict.reason);
}

#[test]
fn a_half_busy_group_keeping_up_holds() {
    // 4 instances 70 % busy at 1,000 msg/s: 357 msg/s true rate each; 1,000 / (357 x 0.8) = 3.5 -> 4.
    let mut observation = seen(4);
    observation.busy_share = Some(0.7);
    let verdict = decide(&settings(), &observation, &mut PolicyMemory::default());
    assert_eq!((verdict.action, verdict.desired), (ScaleAction::Hold, 4), "{}", verdict.reason);
}

#[test]
fn never_more_consumers_than_partitions_unless_allowed() {
    let mut observation = seen(4);
    observation.backlog = 1_000_000;
    let verdict = decide(&settings(), &observation, &mut PolicyMemory::default());
    assert_eq!(verdict.desired, 12, "{}", verdict.reason);
    assert!(verdict.reason.contains("capped at max_instances 12"), "{}", verdict.reason);

    let mut idle_allowed = settings();
    idle_allowed.allow_idle_consumers = true;
    assert_eq!(decide(&idle_allowed, &observation, &mut PolicyMemory::default()).desired, 20);
}

#[test]
fn an_idle_group_shrinks_to_its_minimum_and_no_lower() {
    let mut observation = seen(6);
    (observation.arrival_rate, observation.commit_rate, observation.busy_share) = (Some(0.0), Some(0.0), Some(0.0));
    let mut memory = PolicyMemory::default();
    let verdict = decide(&settings(), &observation, &mut memory);
    // At most half the instances a step.
    assert_eq!((verdict.action, verdict.desired), (ScaleAction::ScaleDown, 3), "{}", verdict.reason);
    observation.instances = 3;
    observation.at_ms += 10_000;
    assert_eq!(decide(&settings(), &observation, &mut memory).desired, 2);
}

#[test]
fn a_scale_down_waits_for_the_highest_recommendation_of_its_window() {
    let mut stabilized = settings();
    stabilized.scale_down_window = Duration::from_secs(120);
    let mut memory = PolicyMemory::default();
    let mut busy = seen(8);
    // (1,000 + 48,000 / 60 s) / (1,000 / 0.5 / 8 x 0.8) = 9.
    busy.backlog = 48_000;
    let first = decide(&stabilized, &busy, &mut memory);
    assert_eq!(first.action, ScaleAction::ScaleUp, "{}", first.reason);

    // A lull a minute later recommends 3 (400 / (400 / 0.2 / 9 x 0.8) = 2.25), but the window
    // still holds the burst's 9.
    let mut lull = seen(9);
    (lull.arrival_rate, lull.commit_rate, lull.busy_share) = (Some(400.0), Some(400.0), Some(0.2));
    lull.at_ms = busy.at_ms + 60_000;
    let held = decide(&stabilized, &lull, &mut memory);
    assert_eq!((held.action, held.desired, held.recommended), (ScaleAction::Hold, 9, 3), "{}", held.reason);

    // Once the burst leaves the window, the group shrinks, half at a time.
    lull.at_ms = busy.at_ms + 121_000;
    let shrunk = decide(&stabilized, &lull, &mut memory);
    assert_eq!((shrunk.action, shrunk.desired), (ScaleAction::ScaleDown, 5), "{}", shrunk.reason);
}

#[test]
fn nothing_changes_during_a_cooldown() {
    let mut cooled = settings();
    cooled.cooldown = Duration::from_secs(30);
    let mut memory = PolicyMemory::default();
    let mut burst = seen(2);
    burst.backlog = 100_000;
    assert_eq!(decide(&cooled, &burst, &mut memory).action, ScaleAction::ScaleUp);
    burst.at_ms += 10_000;
    let verdict = decide(&cooled, &burst, &mut memory);
    assert_eq!((verdict.action, verdict.desired), (ScaleAction::Hold, 2), "{}", verdict.reason);
    assert!(verdict.reason.contains("cooldown"), "{}", verdict.reason);
    burst.at_ms += 21_000;
    assert_eq!(decide(&cooled, &burst, &mut memory).action, ScaleAction::ScaleUp);
}

#[test]
fn a_stalled_or_stopped_group_is_held_not_grown() {
    for health in [PartitionHealth::Stall, PartitionHealth::Stop] {
        let mut stuck = seen(2);
        (stuck.backlog, stuck.commit_rate, stuck.health) = (50_000, Some(0.0), health);
        let verdict = decide(&settings(), &stuck, &mut PolicyMemory::default());
        assert_eq!((verdict.action, verdict.desired), (ScaleAction::Hold, 2), "{}", verdict.reason);
        assert!(verdict.reason.contains(health.as_str()), "{}", verdict.reason);
    }
}

#[test]
fn a_stopped_group_below_its_minimum_still_gets_its_minimum() {
    let mut not_started = seen(0);
    (not_started.backlog, not_started.health) = (600, PartitionHealth::Stop);
    let verdict = decide(&settings(), &not_started, &mut PolicyMemory::default());
    assert_eq!((verdict.action, verdict.desired), (ScaleAction::ScaleUp, 2), "{}", verdict.reason);
}

#[test]
fn cpu_over_its_target_is_a_floor_under_the_rate() {
    let mut hot = settings();
    hot.cpu_target = Some(0.6);
    let mut observation = seen(3);
    observation.cpu = Some(0.9);
    let verdict = decide(&hot, &observation, &mut PolicyMemory::default());
    // ceil(3 x 0.9 / 0.6) = 5, above the rate's 3.
    assert_eq!((verdict.action, verdict.desired), (ScaleAction::ScaleUp, 5), "{}", verdict.reason);
    assert!(verdict.reason.contains("cpu at 90 %"), "{}", verdict.reason);
}

#[test]
fn lag_sizing_is_keda_s_formula_with_hpa_s_step_limit() {
    let mut keda = settings();
    keda.sizing = Sizing::Lag { lag_threshold: 1_000 };
    let mut observation = seen(2);
    observation.backlog = 9_500;
    let verdict = decide(&keda, &observation, &mut PolicyMemory::default());
    // ceil(9,500 / 1,000) = 10, but one step goes to max(2 x 2, 2 + 4) = 6.
    assert_eq!((verdict.recommended, verdict.desired), (10, 6), "{}", verdict.reason);
}

#[test]
fn without_two_samples_rate_sizing_only_enforces_the_bounds() {
    let mut first = seen(1);
    first.arrival_rate = None;
    let verdict = decide(&settings(), &first, &mut PolicyMemory::default());
    assert_eq!((verdict.action, verdict.desired), (ScaleAction::ScaleUp, 2), "{}", verdict.reason);
    first.instances = 2;
    let verdict = decide(&settings(), &first, &mut PolicyMemory::default());
    assert_eq!(verdict.action, ScaleAction::Hold);
    assert!(verdict.reason.starts_with("measuring"), "{}", verdict.reason);
}

#[test]
fn settings_refuse_inverted_bounds_and_shares_out_of_range() {
    let inverted = PolicySettings { max_instances: 1, ..PolicySettings::default() };
    assert!(inverted.validate().is_err());
    let share = PolicySettings { target_utilization: 1.5, ..PolicySettings::default() };
    assert!(share.validate().is_err());
    assert!(PolicySettings::default().validate().is_ok());
}
