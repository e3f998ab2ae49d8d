//! `frontier bench sla --live`: the shipped rules against live traffic. Series of their own, stamped
//! with the current time as they are published, at 10 to 2,000 events a second: healthy for a
//! warm-up (so every window is full, as in production), then per default threshold rule a
//! sustained breach (timed from the first breaching event published to its alert read back from
//! the alerts topic, then from recovery to the resolution), a 5-second blip inside healthy
//! traffic, and a healthy series that stays noisy just inside the threshold. The last two must
//! fire nothing.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use tokio_util::sync::CancellationToken;

use super::create_topics;
use super::sla::alert_arrivals;
use crate::bus::{ConsumerLoop, LoopOptions, SchemaCatalog, kafka};
use crate::clock::now_millis;
use crate::records::{CacheLayer, RequestCompleted, RequestStatus};
use crate::settings::Settings;
use crate::workers::sla_monitor::{SlaMonitorSettings, SlaMonitorWorker};

/// The default rules a live breach is timed for, with what their breach looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Rule {
    /// Every request 900 ms.
    Latency,
    /// 5 % of requests fail (five times the threshold).
    Errors,
    /// The cache stops answering: no hits.
    CacheHits,
}

impl Rule {
    const ALL: [Rule; 3] = [Rule::Latency, Rule::Errors, Rule::CacheHits];

    fn alert_name(self) -> &'static str {
        match self {
            Rule::Latency => "LatencyP95High",
            Rule::Errors => "ErrorRateHigh",
            Rule::CacheHits => "CacheHitRatioLow",
        }
    }
}

/// What a series is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Healthy, a sustained breach from its onset until its alert, healthy again until resolved.
    Breach,
    /// Healthy with 5 s of breach at the onset.
    Blip,
    /// Just inside the threshold all along, with the noise of real traffic.
    Noise,
}

/// Where a series is in its life.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Healthy,
    Breaching,
    Recovered,
}

struct Series {
    service: String,
    rule: Rule,
    role: Role,
    rate: u32,
    onset: Instant,
    phase: Phase,
    /// When its first breaching event was published, and when its first recovered one was.
    breach_published: Option<Instant>,
    recovery_published: Option<Instant>,
    alerted_after: Option<Duration>,
    resolved_after: Option<Duration>,
    /// Events owed by the rate since the start, minus those sent.
    sent: u64,
    /// Alerts of any rule on this series (false ones for blip and noise series).
    alerts: Vec<&'static str>,
}

impl Series {
    /// One event of this series now.
    fn event(&self, rng: &mut StdRng, index: u64, now: Instant) -> RequestCompleted {
        let breaching = match self.role {
            Role::Breach => self.phase == Phase::Breaching,
            Role::Blip => now >= self.onset && now < self.onset + Duration::from_secs(5),
            Role::Noise => false,
        };
        let noisy = self.role == Role::Noise;
        let (mut latency_ms, mut failed, mut hit) =
            (rng.random_range(20.0..140.0), rng.random_bool(0.001), rng.random_bool(0.95));
        match self.rule {
            // Noise: 96 % between 20 and 180 ms, 4 % between 200 and 400: p95 about 178 ms.
            Rule::Latency if noisy => {
                latency_ms =
                    if rng.random_bool(0.96) { rng.random_range(20.0..180.0) } else { rng.random_range(200.0..400.0) }
            }
            Rule::Latency if breaching => latency_ms = 900.0,
            Rule::Errors if noisy => failed = rng.random_bool(0.006),
            Rule::Errors if breaching => failed = rng.random_bool(0.05),
            Rule::CacheHits if noisy => hit = rng.random_bool(0.86),
            Rule::CacheHits if breaching => hit = false,
            _ => {}
        }
        RequestCompleted {
            id: format!("{}-{index}", self.service),
            service: self.service.clone(),
            kind: "live".into(),
            tenant: "acme".into(),
            latency_ms,
            status: if failed { RequestStatus::Error } else { RequestStatus::Ok },
            cache_layer: if hit { CacheLayer::Memory } else { CacheLayer::None },
            occurred_at: now_millis(),
            instance: None,
            cache_key: None,
        }
    }
}

/// `frontier bench sla --live` options.
pub(super) struct LiveOptions {
    pub warmup: Duration,
    pub rates: Vec<u32>,
    pub replicas: u32,
}

pub(super) async fn bench_sla_live(settings: &Settings, options: LiveOptions) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!options.rates.is_empty() && options.replicas > 0, "need a rate and a replica");
    let catalog = Arc::new(SchemaCatalog::load_dir(&settings.paths.schemas)?);
    let schema = catalog.by_file("request_completed.avsc")?;
    let run_id = now_millis();
    let (metrics_topic, alerts_topic) =
        (format!("bench.sla-live.{run_id}.metrics"), format!("bench.sla-live.{run_id}.alerts"));
    create_topics(settings, &[metrics_topic.clone(), alerts_topic.clone()], 6).await?;
    // The rules as configured (the shipped ones unless a config file replaced them).
    let config = SlaMonitorSettings {
        input_topic: metrics_topic.clone(),
        alerts_topic: alerts_topic.clone(),
        query_events_topic: None,
        worker_status_topic: None,
        autoscale_topic: None,
        slow_queries_topic: None,
        webhook: None,
        alertmanager: None,
        // Checkpoints would go to the shared topic, not the benchmark's own.
        slo_counters_topic: None,
        ..settings.workers.sla.clone()
    };
    let worker = Arc::new(SlaMonitorWorker::new(&config, &catalog, Default::default())?);
    let loop_options = LoopOptions::new(&settings.bus, format!("bench.sla-live.{run_id}"), vec![metrics_topic.clone()]);
    let token = CancellationToken::new();
    let task =
        tokio::spawn(ConsumerLoop::new(&settings.kafka, loop_options, worker, catalog.clone())?.run(token.clone()));
    let mut arrivals = alert_arrivals(settings, &alerts_topic, &catalog, token.clone())?;

    let start = Instant::now();
    let mut series = Vec::new();
    for rule in Rule::ALL {
        for &rate in &options.rates {
            for replica in 0..options.replicas {
                for role in [Role::Breach, Role::Blip, Role::Noise] {
                    // Onsets spread over a minute, so breaches meet the minute buckets at every phase.
                    let stagger = Duration::from_secs(u64::from(replica) * 17 % 60);
                    series.push(Series {
                        service: format!("{:?}-{role:?}-{rate}-{replica}", rule).to_lowercase(),
                        rule,
                        role,
                        rate,
                        onset: start + options.warmup + stagger,
                        phase: Phase::Healthy,
                        breach_published: None,
                        recovery_published: None,
                        alerted_after: None,
                        resolved_after: None,
                        sent: 0,
                        alerts: Vec::new(),
                    });
                }
            }
        }
    }
    let total_rate: u32 = series.iter().map(|s| s.rate).sum();
    eprintln!(
        "[bench] {} series ({total_rate} events/s in all), warm-up {:?}, then breaches, blips and noise; \
         this takes about {} minutes",
        series.len(),
        options.warmup,
        (options.warmup.as_secs() + 600) / 60
    );

    let producer: ThreadedProducer<DefaultProducerContext> =
        kafka::producer_config(&settings.kafka).set("linger.ms", "5").create().context("creating the producer")?;
    let mut rng = StdRng::seed_from_u64(7);
    let index: HashMap<String, usize> = series.iter().enumerate().map(|(i, s)| (s.service.clone(), i)).collect();
    // A breach lasts until its alert (at most two minutes); a recovery until its resolution (at
    // most eight: a 5m window takes five to forget the breach).
    let (breach_limit, resolve_limit) = (Duration::from_secs(120), Duration::from_secs(480));
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    loop {
        tick.tick().await;
        let now = Instant::now();
        while let Ok((alert, at)) = arrivals.try_recv() {
            let (name, firing) = (known_name(alert["name"].as_str().unwrap_or_default()), alert["status"] == "firing");
            let Some(&i) = alert["labels"]["service"].as_str().and_then(|service| index.get(service)) else { continue };
            let s = &mut series[i];
            if !firing {
                if s.phase == Phase::Recovered && name == s.rule.alert_name() && s.resolved_after.is_none() {
                    s.resolved_after = s.recovery_published.map(|from| at.duration_since(from));
                }
                continue;
            }
            s.alerts.push(name);
            if s.role == Role::Breach && name == s.rule.alert_name() && s.alerted_after.is_none() {
                s.alerted_after = s.breach_published.map(|from| at.duration_since(from));
            }
        }
        for s in series.iter_mut().filter(|s| s.role == Role::Breach) {
            match s.phase {
                Phase::Healthy if now >= s.onset && s.alerted_after.is_none() => s.phase = Phase::Breaching,
                Phase::Breaching if s.alerted_after.is_some() || now >= s.onset + breach_limit => {
                    s.phase = Phase::Recovered
                }
                _ => {}
            }
        }
        let elapsed = now.duration_since(start).as_secs_f64();
        for s in &mut series {
            let owed = (elapsed * f64::from(s.rate)) as u64;
            while s.sent < owed {
                let event = s.event(&mut rng, s.sent, now);
                let payload = SchemaCatalog::encode(&schema, &event)?;
                let record = BaseRecord::to(&metrics_topic).key(s.service.as_bytes()).payload(&payload);
                if producer.send(record).is_err() {
                    break; // The queue is full: the rest goes out on the next tick.
                }
                s.sent += 1;
                match s.phase {
                    Phase::Breaching if s.breach_published.is_none() => s.breach_published = Some(Instant::now()),
                    Phase::Recovered if s.recovery_published.is_none() => s.recovery_published = Some(Instant::now()),
                    _ => {}
                }
            }
        }
        let breaches_done = series
            .iter()
            .filter(|s| s.role == Role::Breach)
            .all(|s| s.resolved_after.is_some() || s.recovery_published.is_some_and(|at| now >= at + resolve_limit));
        // Blip and noise series keep running as long as the breaches do, at least two minutes
        // past the last onset.
        let last_onset = series.iter().map(|s| s.onset).max().unwrap_or(start);
        if breaches_done && now >= last_onset + Duration::from_secs(120) {
            break;
        }
    }
    producer.flush(Duration::from_secs(10))?;
    token.cancel();
    task.await.context("monitor loop panicked")??;
    report(&series, &options);
    Ok(ExitCode::SUCCESS)
}

/// Alert names as static strings (anything else is `other`).
fn known_name(name: &str) -> &'static str {
    const NAMES: [&str; 5] = ["LatencyP95High", "ErrorRateHigh", "CacheHitRatioLow", "LatencySLO", "AvailabilitySLO"];
    NAMES.into_iter().find(|known| *known == name).unwrap_or("other")
}

fn report(series: &[Series], options: &LiveOptions) {
    println!(
        "live breaches under the configured rules ({} replicas x rates {:?} events/s, warm-up {:?})",
        options.replicas, options.rates, options.warmup
    );
    println!(
        "rule               alert p50   alert p99   missed   resolve p50  resolve p99  unresolved  false(blip)  false(noise)"
    );
    for rule in Rule::ALL {
        let of_rule = |role| series.iter().filter(move |s| s.rule == rule && s.role == role);
        let mut alerted: Vec<f64> =
            of_rule(Role::Breach).filter_map(|s| s.alerted_after).map(|d| d.as_secs_f64()).collect();
        let missed = of_rule(Role::Breach).filter(|s| s.alerted_after.is_none()).count();
        let mut resolved: Vec<f64> =
            of_rule(Role::Breach).filter_map(|s| s.resolved_after).map(|d| d.as_secs_f64()).collect();
        let unresolved =
            of_rule(Role::Breach).filter(|s| s.alerted_after.is_some() && s.resolved_after.is_none()).count();
        alerted.sort_by(f64::total_cmp);
        resolved.sort_by(f64::total_cmp);
        let figure = |values: &[f64], q| {
            if values.is_empty() {
                "-".to_string()
            } else {
                format!("{:.1} s", crate::cli::percentile(values, q * 100.0))
            }
        };
        let false_alerts = |role| {
            let names: Vec<&str> = of_rule(role).flat_map(|s| s.alerts.iter().copied()).collect();
            if names.is_empty() { "0".to_string() } else { format!("{} {names:?}", names.len()) }
        };
        println!(
            "{:<18} {:>9}   {:>9}   {:>6}   {:>11}  {:>11}  {:>10}  {:>11}  {}",
            rule.alert_name(),
            figure(&alerted, 0.5),
            figure(&alerted, 0.99),
            missed,
            figure(&resolved, 0.5),
            figure(&resolved, 0.99),
            unresolved,
            false_alerts(Role::Blip),
            false_alerts(Role::Noise),
        );
    }
    println!("goal: alert p99 <= 30 s for every rule, 0 false alerts; resolve within 60 s of recovery");
    for s in series.iter().filter(|s| s.role == Role::Breach) {
        println!(
            "  {:<28} {:>5}/s  alert {:>8}  resolve {:>8}",
            s.service,
            s.rate,
            s.alerted_after.map_or("-".into(), |d| format!("{:.1} s", d.as_secs_f64())),
            s.resolved_after.map_or("-".into(), |d| format!("{:.1} s", d.as_secs_f64())),
        );
    }
}
