//! How many deliveries a relay's store takes per second when many arrive
//! at once: each stored in a synced commit of its own (the baseline,
//! `Store::outbox_put`) against a commit per batch of whatever arrived
//! meanwhile (`Store::outbox_put_passing_on`). Run by `bench/relay-store`.
//!
//! ```text
//! cargo run --release -p mig-node --example relay-store -- [THREADS] [DELIVERIES]
//! ```

// A benchmark fails loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use mig_node::store::{Journal, Store};

/// About one sealed result of the seed example, as a relay stores it.
const PARCEL_BYTES: usize = 700;

fn main() {
    let mut arguments = std::env::args().skip(1);
    let threads: usize = arguments
        .next()
        .map_or(64, |text| text.parse().expect("THREADS"));
    let deliveries: usize = arguments
        .next()
        .map_or(4000, |text| text.parse().expect("DELIVERIES"));
    if threads == 0 || deliveries < threads {
        eprintln!("relay-store: need at least one thread and one delivery per thread");
        std::process::exit(2);
    }
    let per_thread = deliveries / threads;
    let run = |grouped: bool| -> f64 {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let started = Instant::now();
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for delivery in 0..per_thread {
                        let mut parcel = vec![0u8; PARCEL_BYTES];
                        parcel[..8].copy_from_slice(
                            &((thread * per_thread + delivery) as u64).to_be_bytes(),
                        );
                        if grouped {
                            store.outbox_put_passing_on(vec![parcel]).unwrap();
                        } else {
                            store.outbox_put(&[parcel], Journal::Unchanged).unwrap();
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(store.outbox_all().unwrap().len(), threads * per_thread);
        (threads * per_thread) as f64 / seconds
    };
    // Taking turns, so both meet the same machine load.
    let mut baseline = Vec::new();
    let mut grouped = Vec::new();
    for _ in 0..3 {
        baseline.push(run(false));
        grouped.push(run(true));
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (baseline, grouped) = (median(&mut baseline), median(&mut grouped));
    println!(
        "{} deliveries of one {PARCEL_BYTES}-byte parcel from {threads} threads, median of 3",
        threads * per_thread
    );
    println!("a commit each (baseline):  {baseline:>8.0} deliveries/s");
    println!("a commit per batch:        {grouped:>8.0} deliveries/s");
    println!("ratio: {:.2}", grouped / baseline);
}
