//! Decoding cost of every schema: the bus's codec (schema names resolved once per schema)
//! against apache-avro's `from_avro_datum` (names resolved on every call), in the same run.
//!
//! `cargo bench --bench codec` prints per-schema medians and ratios. Run by `cargo test`
//! (no `--bench` argument), it only checks that both decoders agree on every schema.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use apache_avro::from_avro_datum;
use frontier::bus::SchemaCatalog;
use frontier::bus::codec::HEADER_LEN;
use frontier::bus::json::{example, json_to_avro};

/// Median nanoseconds per call over `rounds` rounds of `iterations` calls.
fn median_ns(rounds: usize, iterations: usize, mut f: impl FnMut()) -> f64 {
    let mut per_call: Vec<f64> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..iterations {
                f();
            }
            started.elapsed().as_nanos() as f64 / iterations as f64
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    per_call[per_call.len() / 2]
}

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let catalog =
        SchemaCatalog::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")).expect("schemas load");
    let (rounds, iterations) = if benchmarking { (7, 20_000) } else { (1, 1) };
    if benchmarking {
        println!("{:<26} {:>14} {:>18} {:>7}", "schema", "bus codec ns", "from_avro_datum ns", "ratio");
    }
    let mut ratios = Vec::new();
    for known in catalog.current() {
        let value = json_to_avro(&example(&known.schema), &known.schema).expect("example fits");
        let bytes = SchemaCatalog::encode_value(&known, value).expect("sample encodes");
        let baseline = from_avro_datum(&known.schema, &mut &bytes[HEADER_LEN..], None).expect("baseline decodes");
        assert_eq!(catalog.decode(&bytes).expect("bus decodes").value, baseline, "{}", known.file);

        let ours = median_ns(rounds, iterations, || {
            black_box(catalog.decode(black_box(&bytes)).ok());
        });
        let theirs = median_ns(rounds, iterations, || {
            black_box(from_avro_datum(&known.schema, &mut &black_box(&bytes)[HEADER_LEN..], None).ok());
        });
        ratios.push(theirs / ours);
        if benchmarking {
            println!("{:<26} {ours:>14.0} {theirs:>18.0} {:>6.2}x", known.file, theirs / ours);
        }
    }
    ratios.sort_by(f64::total_cmp);
    if benchmarking {
        println!("median speed-up of the bus codec over from_avro_datum: {:.2}x", ratios[ratios.len() / 2]);
    } else {
        println!(
            "codec bench smoke check: both decoders agree on {} schemas (run `cargo bench --bench codec` for figures)",
            ratios.len()
        );
    }
}
