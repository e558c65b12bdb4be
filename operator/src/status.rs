//! Status transitions: conditions in the Kubernetes style, phase, run history.

use crate::crd::{RunOutcome, RunPolicy, RunRecord, RunState};
use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const SUSPENDED: &str = "Suspended";
/// DataLake only, with `spec.catalog`: whether the last ingest registered
/// silver in the Hive Metastore. Independent of Degraded: a failed
/// registration does not fail the run.
pub const CATALOG_REGISTERED: &str = "CatalogRegistered";

pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A Kubernetes `Time` (jiff) for a chrono time.
pub fn to_time(t: DateTime<Utc>) -> Time {
    Time(
        k8s_openapi::jiff::Timestamp::from_millisecond(t.timestamp_millis())
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}

/// The chrono time of a Kubernetes `Time`.
pub fn from_time(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.0.as_millisecond()).unwrap_or_default()
}

pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Sets a condition; `lastTransitionTime` changes only when the status does.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: DateTime<Utc>,
) {
    let status_s = if status { "True" } else { "False" };
    let message: String = message.chars().take(1024).collect();
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status_s {
            c.last_transition_time = to_time(now);
        }
        c.status = status_s.into();
        c.reason = reason.into();
        c.message = message;
        c.observed_generation = generation;
    } else {
        conditions.push(Condition {
            type_: type_.into(),
            status: status_s.into(),
            reason: reason.into(),
            message,
            observed_generation: generation,
            last_transition_time: to_time(now),
        });
    }
}

pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Records the start of a run: it becomes the active run, and the previous
/// attempt's error is cleared from Degraded.
pub fn start_run(
    state: &mut RunState,
    run: RunRecord,
    generation: Option<i64>,
    now: DateTime<Utc>,
) {
    state.last_run_time = run.start_time.clone();
    state.next_retry_time = None;
    let msg = format!("run {} started ({})", run.job_name, run.trigger);
    state.active_run = Some(run);
    set_condition(
        &mut state.conditions,
        PROGRESSING,
        true,
        "RunStarted",
        &msg,
        generation,
        now,
    );
    set_condition(
        &mut state.conditions,
        DEGRADED,
        false,
        "RunStarted",
        "",
        generation,
        now,
    );
}

/// Records the end of the active run: history, failure count, retry time.
pub fn finish_run(
    state: &mut RunState,
    mut run: RunRecord,
    policy: &RunPolicy,
    generation: Option<i64>,
    now: DateTime<Utc>,
) {
    run.completion_time.get_or_insert_with(|| fmt_time(now));
    state.active_run = None;
    match run.outcome {
        Some(RunOutcome::Succeeded) => {
            state.consecutive_failures = 0;
            state.next_retry_time = None;
            state.last_successful_time = run.completion_time.clone();
            let msg = format!("run {} succeeded", run.job_name);
            set_condition(
                &mut state.conditions,
                AVAILABLE,
                true,
                "RunSucceeded",
                &msg,
                generation,
                now,
            );
            set_condition(
                &mut state.conditions,
                DEGRADED,
                false,
                "RunSucceeded",
                "",
                generation,
                now,
            );
            set_condition(
                &mut state.conditions,
                PROGRESSING,
                false,
                "RunFinished",
                &msg,
                generation,
                now,
            );
        }
        Some(RunOutcome::Replaced) => {
            let msg = format!("run {} was replaced by a newer run", run.job_name);
            set_condition(
                &mut state.conditions,
                PROGRESSING,
                false,
                "RunReplaced",
                &msg,
                generation,
                now,
            );
        }
        Some(RunOutcome::Failed) | None => {
            run.outcome = Some(RunOutcome::Failed);
            state.consecutive_failures += 1;
            let message = run.message.clone().unwrap_or_else(|| "run failed".into());
            let reason = "RunFailed";
            let retry = if state.consecutive_failures <= policy.max_retries {
                let at = now
                    + crate::schedule::backoff(
                        state.consecutive_failures,
                        policy.backoff_initial_seconds,
                        policy.backoff_max_seconds,
                    );
                state.next_retry_time = Some(fmt_time(at));
                format!("; retry {} at {}", state.consecutive_failures, fmt_time(at))
            } else {
                state.next_retry_time = None;
                format!("; gave up after {} retries", policy.max_retries)
            };
            let full = format!("run {} failed: {message}{retry}", run.job_name);
            set_condition(
                &mut state.conditions,
                DEGRADED,
                true,
                reason,
                &full,
                generation,
                now,
            );
            set_condition(
                &mut state.conditions,
                PROGRESSING,
                false,
                "RunFailed",
                &full,
                generation,
                now,
            );
            if condition(&state.conditions, AVAILABLE).is_none() {
                set_condition(
                    &mut state.conditions,
                    AVAILABLE,
                    false,
                    "NeverSucceeded",
                    &full,
                    generation,
                    now,
                );
            }
        }
    }
    state.runs.insert(0, run);
    trim_history(&mut state.runs, policy);
}

/// Keeps at most `successfulRunHistoryLimit` successful and
/// `failedRunHistoryLimit` failed (or replaced) runs, newest first.
pub fn trim_history(runs: &mut Vec<RunRecord>, policy: &RunPolicy) {
    let (mut ok, mut bad) = (0, 0);
    runs.retain(|r| {
        if r.outcome == Some(RunOutcome::Succeeded) {
            ok += 1;
            ok <= policy.successful_run_history_limit
        } else {
            bad += 1;
            bad <= policy.failed_run_history_limit
        }
    });
}

/// Fills in the conditions that do not depend on a run event, and the phase.
pub fn settle(
    state: &mut RunState,
    suspended: bool,
    invalid: Option<&str>,
    waiting: Option<(&str, &str)>,
    generation: Option<i64>,
    now: DateTime<Utc>,
) {
    state.observed_generation = generation;
    let c = &mut state.conditions;
    if suspended {
        set_condition(
            c,
            SUSPENDED,
            true,
            "Suspended",
            "spec.suspend is true: no new runs start",
            generation,
            now,
        );
    } else {
        set_condition(c, SUSPENDED, false, "NotSuspended", "", generation, now);
    }
    if let Some(msg) = invalid {
        set_condition(c, DEGRADED, true, "InvalidSpec", msg, generation, now);
    } else if condition(c, DEGRADED).is_some_and(|d| d.reason == "InvalidSpec") {
        set_condition(c, DEGRADED, false, "SpecValid", "", generation, now);
    }
    if condition(c, AVAILABLE).is_none() {
        set_condition(
            c,
            AVAILABLE,
            false,
            "NeverSucceeded",
            "no run has succeeded yet",
            generation,
            now,
        );
    }
    if state.active_run.is_none() {
        match waiting {
            Some((reason, msg)) => {
                set_condition(c, PROGRESSING, false, reason, msg, generation, now)
            }
            None if condition(c, PROGRESSING).is_none() => set_condition(
                c,
                PROGRESSING,
                false,
                "Idle",
                "no run is due",
                generation,
                now,
            ),
            None => {}
        }
    }
    if condition(c, DEGRADED).is_none() {
        set_condition(c, DEGRADED, false, "NoFailures", "", generation, now);
    }
    let degraded = condition(c, DEGRADED).is_some_and(|d| d.status == "True");
    let available = condition(c, AVAILABLE).is_some_and(|d| d.status == "True");
    state.phase = Some(
        if invalid.is_some() {
            "Invalid"
        } else if state.active_run.is_some() {
            "Running"
        } else if suspended {
            "Suspended"
        } else if degraded {
            "Failed"
        } else if available {
            "Ready"
        } else {
            "Pending"
        }
        .to_string(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).expect("time")
    }

    fn run(name: &str, outcome: Option<RunOutcome>) -> RunRecord {
        RunRecord {
            job_name: name.into(),
            trigger: "SpecChange".into(),
            start_time: Some("2026-11-25T10:00:00Z".into()),
            outcome,
            message: Some("boom".into()),
            ..Default::default()
        }
    }

    #[test]
    fn transition_time_changes_only_with_status() {
        let mut c = Vec::new();
        set_condition(
            &mut c,
            DEGRADED,
            true,
            "RunFailed",
            "a",
            None,
            t("2026-11-25T10:00:00Z"),
        );
        set_condition(
            &mut c,
            DEGRADED,
            true,
            "RunFailed",
            "b",
            None,
            t("2026-11-25T11:00:00Z"),
        );
        assert_eq!(
            from_time(&c[0].last_transition_time),
            t("2026-11-25T10:00:00Z")
        );
        assert_eq!(c[0].message, "b");
        set_condition(
            &mut c,
            DEGRADED,
            false,
            "RunSucceeded",
            "",
            None,
            t("2026-11-25T12:00:00Z"),
        );
        assert_eq!(
            from_time(&c[0].last_transition_time),
            t("2026-11-25T12:00:00Z")
        );
    }

    #[test]
    fn failure_schedules_a_retry_and_start_clears_degraded() {
        let policy = RunPolicy::default();
        let mut s = RunState::default();
        let now = t("2026-11-25T10:00:00Z");
        start_run(&mut s, run("j1", None), Some(1), now);
        assert_eq!(
            s.active_run.as_ref().map(|r| r.job_name.as_str()),
            Some("j1")
        );
        finish_run(
            &mut s,
            run("j1", Some(RunOutcome::Failed)),
            &policy,
            Some(1),
            now,
        );
        assert!(s.active_run.is_none());
        assert_eq!(s.consecutive_failures, 1);
        assert_eq!(s.next_retry_time.as_deref(), Some("2026-11-25T10:00:10Z"));
        let d = condition(&s.conditions, DEGRADED).expect("degraded");
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", "RunFailed")
        );
        assert!(d.message.contains("boom"), "{}", d.message);
        start_run(&mut s, run("j2", None), Some(1), now);
        let d = condition(&s.conditions, DEGRADED).expect("degraded");
        assert_eq!(d.status, "False");
        assert!(s.next_retry_time.is_none());
        finish_run(
            &mut s,
            run("j2", Some(RunOutcome::Failed)),
            &policy,
            Some(1),
            now,
        );
        assert_eq!(s.next_retry_time.as_deref(), Some("2026-11-25T10:00:20Z"));
    }

    #[test]
    fn retries_stop_at_max_and_success_resets() {
        let policy = RunPolicy {
            max_retries: 1,
            ..Default::default()
        };
        let mut s = RunState::default();
        let now = t("2026-11-25T10:00:00Z");
        finish_run(
            &mut s,
            run("a", Some(RunOutcome::Failed)),
            &policy,
            None,
            now,
        );
        assert!(s.next_retry_time.is_some());
        finish_run(
            &mut s,
            run("b", Some(RunOutcome::Failed)),
            &policy,
            None,
            now,
        );
        assert!(s.next_retry_time.is_none());
        finish_run(
            &mut s,
            run("c", Some(RunOutcome::Succeeded)),
            &policy,
            None,
            now,
        );
        assert_eq!(s.consecutive_failures, 0);
        assert_eq!(
            condition(&s.conditions, AVAILABLE).map(|c| c.status.as_str()),
            Some("True")
        );
        settle(&mut s, false, None, None, Some(1), now);
        assert_eq!(s.phase.as_deref(), Some("Ready"));
    }

    #[test]
    fn history_is_bounded_per_outcome() {
        let policy = RunPolicy {
            successful_run_history_limit: 2,
            failed_run_history_limit: 1,
            ..Default::default()
        };
        let mut runs = vec![
            run("ok1", Some(RunOutcome::Succeeded)),
            run("bad1", Some(RunOutcome::Failed)),
            run("ok2", Some(RunOutcome::Succeeded)),
            run("bad2", Some(RunOutcome::Failed)),
            run("ok3", Some(RunOutcome::Succeeded)),
        ];
        trim_history(&mut runs, &policy);
        let names: Vec<_> = runs.iter().map(|r| r.job_name.as_str()).collect();
        assert_eq!(names, ["ok1", "bad1", "ok2"]);
    }

    #[test]
    fn phase_reflects_state() {
        let now = t("2026-11-25T10:00:00Z");
        let mut s = RunState::default();
        settle(&mut s, false, None, None, Some(1), now);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(s.observed_generation, Some(1));
        settle(&mut s, true, None, None, Some(2), now);
        assert_eq!(s.phase.as_deref(), Some("Suspended"));
        assert_eq!(
            condition(&s.conditions, SUSPENDED).map(|c| c.status.as_str()),
            Some("True")
        );
        settle(&mut s, false, Some("bad cron"), None, Some(3), now);
        assert_eq!(s.phase.as_deref(), Some("Invalid"));
        let d = condition(&s.conditions, DEGRADED).expect("degraded");
        assert_eq!(d.reason, "InvalidSpec");
        settle(&mut s, false, None, None, Some(4), now);
        let d = condition(&s.conditions, DEGRADED).expect("degraded");
        assert_eq!(d.status, "False");
    }
}
