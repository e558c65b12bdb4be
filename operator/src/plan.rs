//! Which run is due now, if any: pure logic over spec, status and time.

use crate::crd::{RunPolicy, RunState};
use crate::job::RunIdentity;
use crate::schedule::Schedule;
use crate::status::{fmt_time, parse_time};
use chrono::{DateTime, Utc};

/// Snapshot facts of a Datamart's DataLake.
#[derive(Debug, Clone, Default)]
pub struct SnapshotFacts<'a> {
    /// The DataLake's current silver snapshot.
    pub lake_snapshot: Option<&'a str>,
    /// The snapshot the Datamart's last run was started for.
    pub attempted: Option<&'a str>,
    pub refresh_on_new_snapshot: bool,
}

pub struct PlanInput<'a> {
    pub policy: &'a RunPolicy,
    pub state: &'a RunState,
    pub generation: i64,
    pub run_now: Option<&'a str>,
    pub schedule: Option<&'a Schedule>,
    pub created: DateTime<Utc>,
    pub now: DateTime<Utc>,
    /// `Some` for Datamarts, which can only run once their DataLake has a snapshot.
    pub snapshot: Option<SnapshotFacts<'a>>,
}

/// A run to start, and what to record in status when it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct DueRun {
    pub id: RunIdentity,
    pub mark: Mark,
}

/// The status marker that consumes a trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum Mark {
    Generation(i64),
    RunNow(String),
    Snapshot,
    Schedule(DateTime<Utc>),
    Retry,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub due: Option<DueRun>,
    /// When to look again (next schedule time or retry time), if ever.
    pub wake_at: Option<DateTime<Utc>>,
    /// Why nothing runs, for the Progressing condition.
    pub waiting: Option<(&'static str, String)>,
    pub next_schedule: Option<DateTime<Utc>>,
}

fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Decides the run that is due, in priority order: spec change, run-now
/// request, new silver snapshot (Datamart), schedule, retry of a failed run.
/// A suspended resource gets no run; a Datamart whose DataLake has no snapshot
/// yet waits.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let st = input.state;
    let mut out = Plan::default();
    let last_sched = st
        .last_schedule_time
        .as_deref()
        .and_then(parse_time)
        .unwrap_or(input.created);
    if let Some(s) = input.schedule {
        out.next_schedule = s.next_after(input.now.max(last_sched));
    }
    let retry_at = st.next_retry_time.as_deref().and_then(parse_time);
    out.wake_at = [out.next_schedule, retry_at].into_iter().flatten().min();

    if input.policy.suspend {
        out.waiting = Some(("Suspended", "spec.suspend is true".into()));
        return out;
    }
    if let Some(snap) = &input.snapshot
        && snap.lake_snapshot.is_none()
    {
        out.waiting = Some((
            "WaitingForDataLake",
            "the DataLake has not published a silver snapshot yet".into(),
        ));
        return out;
    }

    let due = |trigger: &str, key: String, attempt: i32, mark: Mark| DueRun {
        id: RunIdentity {
            trigger: trigger.into(),
            key,
            attempt,
        },
        mark,
    };

    if input.policy.run_on_spec_change
        && st.last_run_generation.is_none_or(|g| g < input.generation)
    {
        out.due = Some(due(
            "SpecChange",
            format!("gen-{}", input.generation),
            0,
            Mark::Generation(input.generation),
        ));
        return out;
    }
    if let Some(v) = input.run_now
        && !v.is_empty()
        && st.last_run_now.as_deref() != Some(v)
    {
        out.due = Some(due(
            "RunNow",
            format!("now-{}", short_hash(v)),
            0,
            Mark::RunNow(v.to_string()),
        ));
        return out;
    }
    if let Some(snap) = &input.snapshot
        && snap.refresh_on_new_snapshot
        && let Some(lake) = snap.lake_snapshot
        && snap.attempted != Some(lake)
    {
        out.due = Some(due(
            "NewSnapshot",
            format!("snap-{}", short_hash(lake)),
            0,
            Mark::Snapshot,
        ));
        return out;
    }
    if let Some(s) = input.schedule
        && let Some(at) = s.due(last_sched, input.now)
    {
        out.due = Some(due(
            "Schedule",
            format!("cron-{}", at.timestamp()),
            0,
            Mark::Schedule(at),
        ));
        return out;
    }
    if let Some(at) = retry_at {
        if at <= input.now {
            let prev = st.runs.first().map(|r| r.job_name.as_str()).unwrap_or("");
            out.due = Some(due(
                "Retry",
                format!("retry-{}-{}", st.consecutive_failures, short_hash(prev)),
                st.consecutive_failures,
                Mark::Retry,
            ));
            return out;
        }
        out.waiting = Some(("WaitingForRetry", format!("next retry at {}", fmt_time(at))));
        return out;
    }
    out.waiting = Some(match out.next_schedule {
        Some(t) => ("WaitingForSchedule", format!("next run at {}", fmt_time(t))),
        None => ("Idle", "no run is due".into()),
    });
    out
}

/// Applies a started run's marker to status.
pub fn consume(state: &mut RunState, mark: &Mark) {
    match mark {
        Mark::Generation(g) => state.last_run_generation = Some(*g),
        Mark::RunNow(v) => state.last_run_now = Some(v.clone()),
        Mark::Schedule(t) => state.last_schedule_time = Some(fmt_time(*t)),
        Mark::Snapshot | Mark::Retry => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::RunPolicy;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).expect("time")
    }

    fn input<'a>(policy: &'a RunPolicy, state: &'a RunState) -> PlanInput<'a> {
        PlanInput {
            policy,
            state,
            generation: 1,
            run_now: None,
            schedule: None,
            created: t("2026-11-25T10:00:00Z"),
            now: t("2026-11-25T10:00:30Z"),
            snapshot: None,
        }
    }

    #[test]
    fn creation_runs_once_per_generation() {
        let p = RunPolicy::default();
        let mut s = RunState::default();
        let d = plan(&input(&p, &s)).due.expect("due");
        assert_eq!(d.id.trigger, "SpecChange");
        assert_eq!(d.id.key, "gen-1");
        consume(&mut s, &d.mark);
        assert!(plan(&input(&p, &s)).due.is_none());
        let mut i = input(&p, &s);
        i.generation = 2;
        assert_eq!(plan(&i).due.expect("due").id.key, "gen-2");
    }

    #[test]
    fn suspend_blocks_everything() {
        let p = RunPolicy {
            suspend: true,
            ..Default::default()
        };
        let s = RunState::default();
        let out = plan(&input(&p, &s));
        assert!(out.due.is_none());
        assert_eq!(out.waiting.expect("waiting").0, "Suspended");
    }

    #[test]
    fn run_now_annotation_runs_once_per_value() {
        let p = RunPolicy::default();
        let mut s = RunState {
            last_run_generation: Some(1),
            ..Default::default()
        };
        let mut i = input(&p, &s);
        i.run_now = Some("2026-11-25T10:00:00Z");
        let d = plan(&i).due.expect("due");
        assert_eq!(d.id.trigger, "RunNow");
        consume(&mut s, &d.mark);
        let mut i = input(&p, &s);
        i.run_now = Some("2026-11-25T10:00:00Z");
        assert!(plan(&i).due.is_none());
    }

    #[test]
    fn datamart_waits_for_a_snapshot_then_follows_new_ones() {
        let p = RunPolicy::default();
        let s = RunState {
            last_run_generation: Some(1),
            ..Default::default()
        };
        let mut i = input(&p, &s);
        i.snapshot = Some(SnapshotFacts {
            lake_snapshot: None,
            attempted: None,
            refresh_on_new_snapshot: true,
        });
        let out = plan(&i);
        assert!(out.due.is_none());
        assert_eq!(out.waiting.expect("waiting").0, "WaitingForDataLake");
        i.snapshot = Some(SnapshotFacts {
            lake_snapshot: Some("s2"),
            attempted: Some("s1"),
            refresh_on_new_snapshot: true,
        });
        assert_eq!(plan(&i).due.expect("due").id.trigger, "NewSnapshot");
        i.snapshot = Some(SnapshotFacts {
            lake_snapshot: Some("s2"),
            attempted: Some("s2"),
            refresh_on_new_snapshot: true,
        });
        assert!(plan(&i).due.is_none());
        i.snapshot = Some(SnapshotFacts {
            lake_snapshot: Some("s3"),
            attempted: Some("s2"),
            refresh_on_new_snapshot: false,
        });
        assert!(plan(&i).due.is_none());
    }

    #[test]
    fn schedule_runs_when_due() {
        let p = RunPolicy {
            run_on_spec_change: false,
            ..Default::default()
        };
        let sched = Schedule::parse("*/5 * * * *", None).expect("cron");
        let mut s = RunState::default();
        let mut i = input(&p, &s);
        i.schedule = Some(&sched);
        let out = plan(&i);
        assert!(out.due.is_none());
        assert_eq!(out.next_schedule, Some(t("2026-11-25T10:05:00Z")));
        assert_eq!(out.wake_at, Some(t("2026-11-25T10:05:00Z")));
        i.now = t("2026-11-25T10:06:00Z");
        let d = plan(&i).due.expect("due");
        assert_eq!(d.id.trigger, "Schedule");
        consume(&mut s, &d.mark);
        assert_eq!(
            s.last_schedule_time.as_deref(),
            Some("2026-11-25T10:05:00Z")
        );
        let mut i = input(&p, &s);
        i.schedule = Some(&sched);
        i.now = t("2026-11-25T10:06:00Z");
        assert!(plan(&i).due.is_none());
    }

    #[test]
    fn retry_waits_for_its_time() {
        let p = RunPolicy::default();
        let s = RunState {
            last_run_generation: Some(1),
            consecutive_failures: 2,
            next_retry_time: Some("2026-11-25T10:01:00Z".into()),
            ..Default::default()
        };
        let out = plan(&input(&p, &s));
        assert!(out.due.is_none());
        assert_eq!(out.waiting.expect("waiting").0, "WaitingForRetry");
        assert_eq!(out.wake_at, Some(t("2026-11-25T10:01:00Z")));
        let mut i = input(&p, &s);
        i.now = t("2026-11-25T10:01:00Z");
        let d = plan(&i).due.expect("due");
        assert_eq!((d.id.trigger.as_str(), d.id.attempt), ("Retry", 2));
    }
}
