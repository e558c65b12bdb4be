//! Datamart runs racing `preprocess` publishes on one lake (local or HDFS).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{DATAMARTS, GOLD_TABLES, reference};

/// The reference rows of the `index`th gold table (in [`GOLD_TABLES`] order).
pub fn expected(gold: &reference::Gold, index: usize) -> &Vec<Vec<String>> {
    [
        &gold.sales_country_year,
        &gold.top_products,
        &gold.monthly_sales,
        &gold.customer_lifetime_value,
    ][index]
}

/// Outcomes of the datamart runs of one stress round.
#[derive(Default, Debug)]
pub struct Outcomes {
    /// Datamart runs that exited 0 (and published the reference table).
    pub succeeded: usize,
    /// Datamart runs that exited 1 (and kept the previous table).
    pub failed_cleanly: usize,
    /// Snapshots published meanwhile.
    pub publishes: usize,
}

/// Runs the four datamarts over and over while `preprocess` (with
/// `preprocess_args`) publishes `publishes` new snapshots of the same data, for
/// at most `limit`. After every datamart run its table must equal the
/// reference: a run that succeeded published the right table, one that failed
/// (exit 1) kept the previous, right one.
pub async fn race(
    lake: &str,
    url: &str,
    gold: &reference::Gold,
    preprocess_args: &'static [&'static str],
    publishes: usize,
    limit: Duration,
) -> Outcomes {
    let done = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicUsize::new(0));
    let publisher = {
        let (lake, done, published) = (lake.to_owned(), done.clone(), published.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            while published.load(Ordering::SeqCst) < publishes && started.elapsed() < limit {
                super::job_runner_ok(
                    &[&["preprocess", "--lake", &lake][..], preprocess_args].concat(),
                );
                published.fetch_add(1, Ordering::SeqCst);
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let client = super::connect(url).await;
    let mut outcomes = Outcomes::default();
    let mut round = 0;
    // At least one full round, and on until the publisher is done.
    while round == 0 || !done.load(Ordering::SeqCst) {
        for (index, datamart) in DATAMARTS.iter().enumerate() {
            let args = ["datamart", datamart, "--lake", lake, "--database-url", url];
            // Blocking is fine here: the publisher is a thread of its own.
            let output = super::job_runner(&args, &[]);
            let table = super::table_as_text(&client, GOLD_TABLES[index]).await;
            let line = super::last_error_line(&output);
            match output.status.code() {
                Some(0) => outcomes.succeeded += 1,
                Some(1) => {
                    outcomes.failed_cleanly += 1;
                    eprintln!("{datamart} failed cleanly: {line}");
                }
                other => panic!("{datamart}: exit {other:?}: {line}"),
            }
            assert!(
                &table == expected(gold, index),
                "{datamart} (exit {:?}) left {} with {} rows, the reference has {}: {line}",
                output.status.code(),
                GOLD_TABLES[index],
                table.len(),
                expected(gold, index).len()
            );
        }
        round += 1;
    }
    publisher.join().unwrap();
    outcomes.publishes = published.load(Ordering::SeqCst);
    outcomes
}
