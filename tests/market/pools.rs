//! Every PostgreSQL pool reports its use on `/metrics` under its name (`frontier::db`): the
//! page rendered here is what Prometheus scrapes from a worker.

use frontier::db::MeteredPool;
use frontier::queries::store::RecommendationStore;
use metrics_exporter_prometheus::PrometheusBuilder;
use sqlx::postgres::PgPoolOptions;

use super::*;

/// The metrics page after `work` ran with a recorder of its own (on this thread).
fn metrics_page_after(work: impl AsyncFnOnce()) -> String {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(work());
    });
    handle.render()
}

async fn pool_of(max_connections: u32) -> sqlx::PgPool {
    let url = settings().postgres.url;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .connect(&url)
        .await
        .unwrap_or_else(|error| panic!("PostgreSQL is not usable ({error}): {START_HINT}"))
}

#[test]
fn a_pool_counts_a_waiter_until_it_has_a_connection_or_gives_up() {
    let page = metrics_page_after(async || {
        let pool = MeteredPool::new("tests", pool_of(1).await);
        let held = pool.acquire().await.unwrap();
        // The only connection is taken: a second caller waits, and gives up.
        assert!(tokio::time::timeout(Duration::from_millis(200), pool.acquire()).await.is_err());
        drop(held);
        let _again = pool.acquire().await.unwrap();
    });

    for line in [
        r#"frontier_db_pool_waiting{pool="tests"} 0"#,
        r#"frontier_db_pool_acquire_duration_seconds_count{pool="tests"} 2"#,
        r#"frontier_db_pool_max_connections{pool="tests"} 1"#,
        r#"frontier_db_pool_connections{pool="tests"} 1"#,
        r#"frontier_db_pool_idle_connections{pool="tests"} 0"#,
    ] {
        assert!(page.lines().any(|shown| shown == line), "no `{line}` on the page:\n{page}");
    }
}

#[test]
fn the_recommendations_table_and_the_price_store_report_their_pools_by_name() {
    let page = metrics_page_after(async || {
        let recommendations = RecommendationStore::open(pool_of(2).await).await.unwrap();
        recommendations.all().await.unwrap();
        let (store, schema, _) = fresh_store().await;
        store.known_symbols().await.unwrap();
        drop_schema(&store, &schema).await;
    });

    for pool in ["recommendations", "prices"] {
        let count = format!(r#"frontier_db_pool_acquire_duration_seconds_count{{pool="{pool}"}}"#);
        assert!(page.lines().any(|line| line.starts_with(&count)), "no `{count}` on the page:\n{page}");
    }
}
