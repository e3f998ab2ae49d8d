//! `CacheWarmer`: counts the serving workers' request-completed events into [`HotKeys`] and,
//! every scan interval, refreshes the hot keys about to expire, within a concurrency limit and
//! a refresh budget, in background tasks that stop with the shutdown token; it holds back
//! while a serving instance says it is busy with live requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::budget::RefreshBudget;
use super::hot::{DueKey, HotKeys};
use super::metric;
use super::settings::CacheWarmerSettings;
use crate::bus::{HandlerError, Inbound, Outbound, Worker};
use crate::cache::recipe::{self, RecipeError, computation};
use crate::cache::{CacheKey, CacheLayer, CachePolicy, TieredCache};
use crate::market::pool::NICE;
use crate::market::{Analysis, PriceStore};
use crate::records::{CacheHeat, RequestCompleted, RequestStatus};
use crate::workers::WorkerConfig;

/// How one refresh ended (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Refreshed,
    NoRecipe,
    Failed,
    Cancelled,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Refreshed => "refreshed",
            Outcome::NoRecipe => "no_recipe",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// What the refresh tasks share with the worker.
struct Shared {
    hot: Mutex<HotKeys>,
    cache: TieredCache,
    store: PriceStore,
    recipe_policy: CachePolicy,
    /// `refresh_nice`: what a refresh's analysis runs at.
    nice: i32,
    refreshed: std::sync::atomic::AtomicU64,
}

impl Shared {
    fn hot(&self) -> MutexGuard<'_, HotKeys> {
        // Plain counters: whatever a panicking holder left is still usable.
        self.hot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The cache warmer worker.
pub struct CacheWarmer {
    shared: Arc<Shared>,
    settings: CacheWarmerSettings,
    budget: Mutex<RefreshBudget>,
    /// When the hot set was last published (none yet: at the first tick).
    hot_set_published: Mutex<Option<Instant>>,
    permits: Arc<Semaphore>,
    /// Refreshes started and waiting for a permit (see [`CacheWarmer::max_waiting`]).
    waiting: Arc<AtomicUsize>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl CacheWarmer {
    /// A warmer refreshing into `cache` over `store`; recipes live `recipe_ttl`
    /// (`cache.recipe_ttl`). Its refresh tasks stop when `shutdown` is cancelled; await
    /// [`CacheWarmer::finish`] after the consumer loop stopped.
    pub fn new(
        settings: &CacheWarmerSettings,
        cache: TieredCache,
        store: PriceStore,
        recipe_ttl: Duration,
        shutdown: CancellationToken,
    ) -> CacheWarmer {
        metric::describe();
        CacheWarmer {
            shared: Arc::new(Shared {
                hot: Mutex::new(HotKeys::new(settings.tracked_keys, settings.half_life, crate::clock::now_millis())),
                cache,
                store,
                recipe_policy: CachePolicy { ttl: recipe_ttl, grace: Duration::ZERO },
                nice: settings.refresh_nice,
                refreshed: Default::default(),
            }),
            settings: settings.clone(),
            budget: Mutex::new(RefreshBudget::new(settings.max_refreshes_per_second, Instant::now())),
            hot_set_published: Mutex::new(None),
            permits: Arc::new(Semaphore::new(settings.max_concurrent_refreshes)),
            waiting: Arc::default(),
            tracker: TaskTracker::new(),
            shutdown,
        }
    }

    /// The cache it refreshes.
    pub fn cache(&self) -> &TieredCache {
        &self.shared.cache
    }

    /// Keys refreshed so far.
    pub fn refreshed(&self) -> u64 {
        self.shared.refreshed.load(Ordering::Relaxed)
    }

    /// The decayed request count of `key` now.
    pub fn score(&self, key: &CacheKey) -> f64 {
        self.shared.hot().score(key, crate::clock::now_millis())
    }

    /// Waits for the refreshes still running (they stop early once the token is cancelled).
    pub async fn finish(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// How many started refreshes may wait for a permit: a scan interval's budget (at least
    /// the permits), so the permits do not idle until the next scan. When a scan started only
    /// what found a free permit, two permits and a scan every 250 ms made at most 8 refreshes
    /// a second against a budget of 50 (5-6 measured in `frontier bench serve`).
    fn max_waiting(&self) -> usize {
        let settings = &self.settings;
        let per_scan = (settings.max_refreshes_per_second * settings.scan_interval.as_secs_f64()).ceil();
        // A float to an integer saturates; the settings bound both factors anyway.
        (per_scan as usize).max(settings.max_concurrent_refreshes)
    }

    /// Starts refreshes of the due hot keys, as many as the budget and the queue allow, each
    /// running once it has a permit, unless a serving instance says it is busy (asked only
    /// when a key is due: one Redis round trip, bounded by the cache's Redis timeout).
    async fn start_due_refreshes(&self, now_ms: i64) {
        let settings = &self.settings;
        let cache = &self.shared.cache;
        let due = {
            let hot = self.shared.hot();
            ::metrics::gauge!(metric::TRACKED_KEYS).set(hot.len() as f64);
            ::metrics::gauge!(metric::HOT_KEYS).set(hot.hot_count(now_ms, settings.min_score) as f64);
            hot.due(now_ms, settings.min_score, settings.max_hot_keys, settings.refresh_ahead, |kind| {
                cache.policy_for(kind).ttl
            })
        };
        if due.is_empty() {
            return;
        }
        if settings.yield_to_busy_serving && cache.serving_is_busy().await {
            ::metrics::counter!(metric::HELD_BACK).increment(1);
            debug!(due = due.len(), "a serving instance is busy with live requests; refreshes held back");
            return;
        }
        let max_waiting = self.max_waiting();
        for due_key in due {
            if self.shutdown.is_cancelled() || self.waiting.load(Ordering::SeqCst) >= max_waiting {
                // A full queue: the next scan finds the keys still due.
                return;
            }
            let allowed = self.budget.lock().unwrap_or_else(PoisonError::into_inner).try_take(Instant::now());
            if !allowed {
                ::metrics::counter!(metric::DEFERRED).increment(1);
                return;
            }
            self.shared.hot().start_refresh(&due_key.key);
            let waiting = Waiting::new(&self.waiting);
            let (shared, permits, shutdown) = (self.shared.clone(), self.permits.clone(), self.shutdown.clone());
            self.tracker.spawn(async move {
                let outcome = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => Outcome::Cancelled,
                    outcome = refresh_with_permit(&shared, &permits, waiting, &due_key) => outcome,
                };
                shared.hot().finish_refresh(&due_key.key, crate::clock::now_millis());
                ::metrics::counter!(metric::REFRESHES, "outcome" => outcome.label()).increment(1);
                if outcome == Outcome::Refreshed {
                    shared.refreshed.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    }
}

/// Counts one refresh waiting for a permit while it lives.
struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    fn new(count: &Arc<AtomicUsize>) -> Waiting {
        count.fetch_add(1, Ordering::SeqCst);
        Waiting(count.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits for a permit, then refreshes `due` (timed from the permit on).
async fn refresh_with_permit(shared: &Shared, permits: &Arc<Semaphore>, waiting: Waiting, due: &DueKey) -> Outcome {
    // The warmer never closes its semaphore; were it closed, nothing more may run.
    let Ok(_permit) = permits.clone().acquire_owned().await else { return Outcome::Cancelled };
    drop(waiting);
    let started = Instant::now();
    let outcome = refresh(shared, due).await;
    ::metrics::histogram!(metric::REFRESH_SECONDS).record(started.elapsed().as_secs_f64());
    outcome
}

impl CacheWarmer {
    /// Publishes the hot set to Redis if `hot_set_interval` has passed since the last time, in
    /// a background task (the consumer loop never waits on Redis for it). Nothing is published
    /// while no key is hot: an empty table after a restart must not wipe the set its
    /// predecessor left.
    fn publish_hot_set_when_due(&self, now_ms: i64) {
        let settings = &self.settings;
        if settings.hot_set_keys == 0 {
            return;
        }
        {
            let mut last = self.hot_set_published.lock().unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < settings.hot_set_interval) {
                return;
            }
            *last = Some(Instant::now());
        }
        let hottest = self.shared.hot().hottest(now_ms, settings.min_score, settings.hot_set_keys);
        if hottest.is_empty() {
            return;
        }
        let (shared, shutdown, ttl) = (self.shared.clone(), self.shutdown.clone(), settings.hot_set_ttl());
        self.tracker.spawn(async move {
            let published = tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                published = shared.cache.publish_hot_set(&hottest, ttl) => published,
            };
            let outcome = if published { "published" } else { "failed" };
            ::metrics::counter!(metric::HOT_SET_PUBLISHES, "outcome" => outcome).increment(1);
            debug!(keys = hottest.len(), outcome, "hot set");
        });
    }
}

/// Recomputes one key from its recipe and writes it through (Redis included); renews the
/// recipe when it is past half its life. Logs what went wrong where it happened.
async fn refresh(shared: &Shared, due: &DueKey) -> Outcome {
    let cache = &shared.cache;
    let (recipe, recipe_age) = match recipe::load(cache, &due.key, shared.recipe_policy).await {
        Ok(found) => found,
        Err(RecipeError::Missing(key)) => {
            debug!(%key, "hot key without a recipe; not warmed");
            return Outcome::NoRecipe;
        }
        Err(error) => {
            warn!(key = %due.key, %error, "hot key not warmed");
            return Outcome::NoRecipe;
        }
    };
    let analysis = match Analysis::parse(&recipe.kind, &recipe.params) {
        Ok(analysis) => analysis,
        Err(error) => {
            warn!(key = %due.key, %error, "the recipe of a hot key does not parse");
            return Outcome::Failed;
        }
    };
    let tags = analysis.tags();
    let policy = cache.policy_for(&recipe.kind);
    // Niced, the analysis leaves the cores and the live turns to the requests somebody waits
    // for; at nice 0 a warmer beside a serving instance computed like one of its live misses.
    let compute = NICE.scope(shared.nice, computation(analysis, shared.store.clone()));
    if let Err(error) = cache.refresh(&due.key, &tags, policy, compute).await {
        warn!(key = %due.key, %error, "refreshing a hot key failed");
        return Outcome::Failed;
    }
    if recipe_age > shared.recipe_policy.ttl / 2
        && let Err(error) = recipe::renew(cache, &due.key, &recipe, shared.recipe_policy).await
    {
        warn!(key = %due.key, %error, "renewing the recipe of a hot key failed");
    }
    Outcome::Refreshed
}

impl CacheWarmer {
    /// Counts every key of an instance's window at the window's end; a window from another
    /// service, or a key that does not parse, is skipped.
    fn count_heat(&self, heat: CacheHeat) {
        if heat.service != self.settings.service {
            return;
        }
        let now_ms = crate::clock::now_millis();
        // Event time, but never ahead of this clock (a skewed sender must not heat a key up
        // for the future).
        let at_ms = heat.window_end.min(now_ms);
        let mut hot = self.shared.hot();
        let mut counted = 0;
        for count in &heat.keys {
            let Some(key) = CacheKey::parse(&count.cache_key) else { continue };
            hot.observe_many(&key, &count.kind, at_ms, count.requests, count.last_computed_at.map(|t| t.min(now_ms)));
            // Crafted counts near i64::MAX must not overflow the sum (a panic in a debug build).
            counted = count.requests.max(0).saturating_add(counted);
        }
        drop(hot);
        ::metrics::counter!(metric::EVENTS).increment(u64::try_from(counted).unwrap_or(0));
    }

    /// Counts one answer's key, when it is an ok answer of the service.
    fn count_completed(&self, event: RequestCompleted) {
        if event.service != self.settings.service || event.status != RequestStatus::Ok {
            return;
        }
        let Some(key) = event.cache_key.as_deref().and_then(CacheKey::parse) else { return };
        let at_ms = event.occurred_at.min(crate::clock::now_millis());
        self.shared.hot().observe(&key, &event.kind, at_ms, event.cache_layer == CacheLayer::None);
        ::metrics::counter!(metric::EVENTS).increment(1);
    }
}

impl Worker for CacheWarmer {
    fn name(&self) -> &'static str {
        CacheWarmerSettings::NAME
    }

    /// Counts a serving instance's `CacheHeat` (its answers per key over a window), or one
    /// `RequestCompleted` event (what other services that answer from the cache write).
    async fn handle(&self, message: &Inbound) -> Result<Vec<Outbound>, HandlerError> {
        if message.is::<CacheHeat>() {
            self.count_heat(message.record()?);
        } else {
            self.count_completed(message.record()?);
        }
        Ok(Vec::new())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.settings.scan_interval)
    }

    async fn tick(&self, now: SystemTime) -> Result<Vec<Outbound>, HandlerError> {
        let now_ms = crate::clock::epoch_millis(now);
        self.start_due_refreshes(now_ms).await;
        self.publish_hot_set_when_due(now_ms);
        Ok(Vec::new())
    }
}
