//! Gold tables loaded by the real pipeline.

use std::path::Path;
use std::process::Command;

/// Generates `transactions` source transactions (seed 42) with the job-runner
/// `job_runner` and runs the whole pipeline on them into the database at
/// `database_url`. The source files and the lake live in a temporary folder that is
/// removed afterwards. Panics when the job-runner fails, with its stderr.
pub fn load_with_job_runner(job_runner: &Path, database_url: &str, transactions: u32) {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    let lake = work.path().join("lake");
    run(
        job_runner,
        &[
            "generate",
            "--out",
            source.to_str().unwrap(),
            "--transactions",
            &transactions.to_string(),
            "--seed",
            "42",
        ],
    );
    run(
        job_runner,
        &[
            "run",
            "--source",
            source.to_str().unwrap(),
            "--lake",
            lake.to_str().unwrap(),
            "--database-url",
            database_url,
        ],
    );
}

fn run(bin: &Path, args: &[&str]) {
    let out = Command::new(bin)
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "{} {:?} failed: {}",
        bin.display(),
        args,
        String::from_utf8_lossy(&out.stderr)
    );
}
