//! Builders for events, configurations and traffic shared by the specifications.

use crate::records::{CacheLayer, RequestCompleted, RequestStatus};
use crate::sla::{AlertChange, AlertTransition, SlaConfig, SlaMonitor, ThresholdRule};

/// 2026-01-01T00:00:00Z: a round start, so minute and ten-minute buckets align with it.
pub const T0: i64 = 1_767_225_600_000;
pub const SECOND: i64 = 1_000;
pub const MINUTE: i64 = 60 * SECOND;

/// How long after its event time an event is processed in these scenarios.
pub const PROCESSING_LAG: i64 = 500;

pub const SERVICE: &str = "analysis-worker";
pub const KIND: &str = "portfolio.risk";

/// One event of the default series.
pub fn event(id: &str, latency_ms: f64, status: RequestStatus, at_ms: i64) -> RequestCompleted {
    RequestCompleted {
        id: id.into(),
        service: SERVICE.into(),
        kind: KIND.into(),
        tenant: "acme".into(),
        latency_ms,
        status,
        cache_layer: CacheLayer::None,
        occurred_at: at_ms,
        instance: None,
        cache_key: None,
    }
}

/// A configuration with exactly these rules and no SLOs.
pub fn only_rules(rules: Vec<ThresholdRule>) -> SlaConfig {
    SlaConfig { rules, slos: Vec::new(), ..SlaConfig::default() }
}

/// What one generated event looks like.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub latency_ms: f64,
    pub status: RequestStatus,
    pub cache_layer: CacheLayer,
}

impl Shape {
    pub fn ok(latency_ms: f64) -> Self {
        Shape { latency_ms, status: RequestStatus::Ok, cache_layer: CacheLayer::None }
    }

    pub fn with_status(self, status: RequestStatus) -> Self {
        Shape { status, ..self }
    }

    pub fn with_cache(self, cache_layer: CacheLayer) -> Self {
        Shape { cache_layer, ..self }
    }
}

/// A monitor fed with steady synthetic traffic, evaluated as a consumer loop would.
pub struct Scenario {
    pub monitor: SlaMonitor,
    /// Every transition produced so far, in order.
    pub transitions: Vec<AlertTransition>,
    /// Event time reached.
    pub clock_ms: i64,
    /// Evaluate this often (event time).
    pub evaluate_every_ms: i64,
    next_id: u64,
}

impl Scenario {
    pub fn new(config: SlaConfig) -> Self {
        Scenario::with_monitor(SlaMonitor::new(config).unwrap())
    }

    pub fn with_monitor(monitor: SlaMonitor) -> Self {
        Scenario { monitor, transitions: Vec::new(), clock_ms: T0, evaluate_every_ms: SECOND, next_id: 0 }
    }

    /// Runs `duration_ms` of traffic at `per_second` events per second, event `i` of each
    /// second shaped by `shape(i)`, evaluating every `evaluate_every_ms`. Returns the
    /// transitions of this run.
    pub fn run(
        &mut self,
        duration_ms: i64,
        per_second: u32,
        mut shape: impl FnMut(u32) -> Shape,
    ) -> Vec<AlertTransition> {
        let first = self.transitions.len();
        let end = self.clock_ms + duration_ms;
        let mut next_evaluation = self.clock_ms + self.evaluate_every_ms;
        while self.clock_ms < end {
            for i in 0..per_second {
                let at = self.clock_ms + i64::from(i) * SECOND / i64::from(per_second.max(1));
                let shape = shape(i);
                self.next_id += 1;
                let mut event = event(&format!("req-{}", self.next_id), shape.latency_ms, shape.status, at);
                event.cache_layer = shape.cache_layer;
                self.monitor.observe(&event, at + PROCESSING_LAG);
            }
            self.clock_ms += SECOND;
            if self.clock_ms >= next_evaluation {
                let produced = self.monitor.evaluate(self.clock_ms + PROCESSING_LAG);
                self.transitions.extend(produced);
                next_evaluation += self.evaluate_every_ms;
            }
        }
        self.transitions[first..].to_vec()
    }
}

/// The transitions of one kind.
pub fn of(change: AlertChange, transitions: &[AlertTransition]) -> Vec<&AlertTransition> {
    transitions.iter().filter(|transition| transition.change == change).collect()
}

/// Deterministic pseudo-random numbers in [0, 1) (a 64-bit LCG), so tests need no RNG crate.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}
