//! The faults: what each one breaks, and how it is healed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Timing;

/// One fault scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// SIGKILL the broker leading most of the request partitions (not the quorum leader);
    /// restart it after the hold.
    BrokerKill,
    /// SIGKILL the active controller (the KRaft quorum leader, with its broker): the quorum
    /// goes on with two voters; restart it after the hold.
    ControllerLoss,
    /// SIGKILL one of the two serving instances; a replacement starts after the hold.
    WorkerKill,
    /// SIGSTOP one serving instance (a zombie holding its partitions until its session times
    /// out); SIGCONT after the hold plus the session timeout.
    WorkerZombie,
    /// SIGKILL Redis: serving goes on from memory and computation; Redis restarts (empty)
    /// after the hold and is used again.
    RedisKill,
    /// A fast restart of PostgreSQL under the serving instances' cold reads.
    PostgresRestart,
    /// 250 ms more each way between every worker and every broker.
    NetworkLatency,
    /// Every byte between the workers and the brokers dropped (connections held open, nothing
    /// arrives) for the hold.
    NetworkPartition,
    /// The serving instances' disk-cache filesystem filled up for the hold.
    DiskFull,
    /// One message in ten on the requests topic is garbage or crafted to hurt, for the hold.
    PoisonFlood,
}

impl Scenario {
    /// Every scenario, in the order `--long` runs them.
    pub const ALL: [Scenario; 10] = [
        Scenario::BrokerKill,
        Scenario::ControllerLoss,
        Scenario::WorkerKill,
        Scenario::WorkerZombie,
        Scenario::RedisKill,
        Scenario::PostgresRestart,
        Scenario::NetworkLatency,
        Scenario::NetworkPartition,
        Scenario::DiskFull,
        Scenario::PoisonFlood,
    ];

    /// CI's suite: one fault of each family (a broker, a worker, a store, the network, the
    /// input) within CI's time.
    pub const SHORT: [Scenario; 5] = [
        Scenario::BrokerKill,
        Scenario::WorkerZombie,
        Scenario::RedisKill,
        Scenario::NetworkPartition,
        Scenario::PoisonFlood,
    ];

    /// The name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::BrokerKill => "broker-kill",
            Scenario::ControllerLoss => "controller-loss",
            Scenario::WorkerKill => "worker-kill",
            Scenario::WorkerZombie => "worker-zombie",
            Scenario::RedisKill => "redis-kill",
            Scenario::PostgresRestart => "postgres-restart",
            Scenario::NetworkLatency => "network-latency",
            Scenario::NetworkPartition => "network-partition",
            Scenario::DiskFull => "disk-full",
            Scenario::PoisonFlood => "poison-flood",
        }
    }

    /// One line on what it does.
    pub fn describe(self) -> &'static str {
        match self {
            Scenario::BrokerKill => "SIGKILL the request partitions' leading broker, restart it after the hold",
            Scenario::ControllerLoss => {
                "SIGKILL the active KRaft controller (and its broker), restart it after the hold"
            }
            Scenario::WorkerKill => "SIGKILL a serving instance, start a replacement after the hold",
            Scenario::WorkerZombie => "SIGSTOP a serving instance past its session timeout, then SIGCONT",
            Scenario::RedisKill => "SIGKILL Redis, restart it empty after the hold",
            Scenario::PostgresRestart => "restart PostgreSQL (fast shutdown) under cold reads",
            Scenario::NetworkLatency => "add 250 ms each way between the workers and the brokers for the hold",
            Scenario::NetworkPartition => "drop all traffic between the workers and the brokers for the hold",
            Scenario::DiskFull => "fill the serving instances' disk-cache filesystem for the hold",
            Scenario::PoisonFlood => "make 10 % of the request stream garbage or hostile for the hold",
        }
    }

    /// How long the fault is held before its heal.
    pub fn hold(self, timing: &Timing, session_timeout: Duration) -> Duration {
        match self {
            // The restart is the fault; its own downtime is the hold.
            Scenario::PostgresRestart => Duration::ZERO,
            // Long enough for the group to expire the zombie and move its partitions.
            Scenario::WorkerZombie => timing.hold.max(session_timeout + Duration::from_secs(10)),
            _ => timing.hold,
        }
    }

    /// Whether the SLA monitor is expected to alert: the fault degrades answers for long
    /// enough that the default rules (p95 over 200 ms, errors over 1 %, hits under 80 %, each
    /// judged over 30 s or more) must see it. A fault the pipeline absorbs within a few
    /// seconds (a broker kill, a dead instance while its partner serves) is a blip the rules
    /// are built to ignore. Poison costs clients nothing, but every dead letter is news
    /// (`MessagesDeadLettered`, from the workers' own status reports).
    pub fn should_alert(self) -> bool {
        matches!(
            self,
            Scenario::WorkerZombie | Scenario::NetworkLatency | Scenario::NetworkPartition | Scenario::PoisonFlood
        )
    }
}
