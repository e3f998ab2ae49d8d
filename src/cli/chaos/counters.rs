//! The workers' counters a scenario reports as `measured` (disk and Redis errors, rewinds,
//! resent periodic outputs),
//! read from every member's /metrics before the fault and after the heal.

use std::time::Duration;

use super::fleet::{Fleet, metric_sum};
use crate::bus::metrics as bus_metric;
use crate::cache::metric as cache_metric;

/// The counters [`scrape`] reads.
const COUNTED: [&str; 4] =
    [cache_metric::DISK_ERRORS, cache_metric::REDIS_ERRORS, bus_metric::REWINDS, bus_metric::RESENT];

/// One counter of one member: its name, the counter's and its value (summed over labels).
pub(super) type Sample = (String, &'static str, f64);

/// Every member's counters. A member that does not answer is asked again: a busy debug build
/// can miss one 3 s deadline, and a missing page would read as a counter that did not grow.
pub(super) async fn scrape(fleet: &Fleet) -> Vec<Sample> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().unwrap_or_default();
    let mut values = Vec::new();
    for (member, address) in fleet.addresses() {
        for _ in 0..3 {
            let page = match http.get(format!("http://{address}/metrics")).send().await {
                Ok(response) => response.text().await.ok(),
                Err(_) => None,
            };
            if let Some(page) = page {
                values.extend(COUNTED.map(|metric| (member.clone(), metric, metric_sum(&page, metric))));
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    values
}

/// How much counter `name` grew over the fleet between two scrapes. A member whose counter
/// went down was restarted meanwhile, and counts from zero.
pub(super) fn grown(before: &[Sample], after: &[Sample], name: &str) -> f64 {
    after
        .iter()
        .filter(|(_, metric, _)| *metric == name)
        .map(|(member, _, now)| {
            let then = before.iter().find(|(m, metric, _)| m == member && *metric == name).map_or(0.0, |b| b.2);
            if *now >= then { now - then } else { *now }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(member: &str, value: f64) -> Sample {
        (member.to_string(), bus_metric::REWINDS, value)
    }

    #[test]
    fn a_counter_grows_by_the_sum_of_each_members_growth() {
        let before = [sample("serve-1", 2.0), sample("serve-2", 0.0)];
        let after = [sample("serve-1", 5.0), sample("serve-2", 1.0)];
        assert_eq!(grown(&before, &after, bus_metric::REWINDS), 4.0);
    }

    #[test]
    fn a_member_restarted_between_the_scrapes_counts_from_zero() {
        let before = [sample("serve-1", 7.0)];
        let after = [sample("serve-1", 2.0)];
        assert_eq!(grown(&before, &after, bus_metric::REWINDS), 2.0);
    }

    #[test]
    fn a_member_missing_from_the_first_scrape_counts_all_it_shows() {
        let after = [sample("sla-1", 3.0)];
        assert_eq!(grown(&[], &after, bus_metric::REWINDS), 3.0);
    }
}
