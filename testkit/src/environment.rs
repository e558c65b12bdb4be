//! The environment variables the tests need, and what happens when one is missing.

use std::path::PathBuf;

/// The value of environment variable `name`, which must name `what`: `None` (after
/// saying why on stderr, so the test can skip) when it is missing or empty outside
/// CI; a panic when it is missing under `CI=true`, where a test must never pass by
/// skipping.
pub fn required(name: &str, what: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "{name} is not set: it must name {what} (testenv/test.sh sets it)"
            );
            eprintln!("SKIPPED: {name} is not set ({what}); testenv/test.sh sets it");
            None
        }
    }
}

/// The job-runner binary named by `AURUM_JOB_RUNNER_BIN`, or `None` when it is unset
/// or empty.
pub fn job_runner_bin() -> Option<PathBuf> {
    std::env::var_os("AURUM_JOB_RUNNER_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}
