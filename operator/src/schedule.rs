//! Schedule math: cron occurrences in a time zone, retry backoff.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use croner::Cron;
use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScheduleError {
    #[error("invalid schedule {schedule:?}: {reason}")]
    BadCron { schedule: String, reason: String },
    #[error("unknown timeZone {0:?} (use an IANA name such as Europe/Paris)")]
    BadTimeZone(String),
}

/// A parsed cron schedule with its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
}

impl Schedule {
    pub fn parse(schedule: &str, time_zone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let tz = match time_zone {
            None => Tz::UTC,
            Some(name) => {
                Tz::from_str(name).map_err(|_| ScheduleError::BadTimeZone(name.into()))?
            }
        };
        let fields = schedule.split_whitespace().count();
        if !schedule.trim_start().starts_with('@') && fields != 5 {
            return Err(ScheduleError::BadCron {
                schedule: schedule.into(),
                reason: format!("expected 5 fields (minute hour day month weekday), got {fields}"),
            });
        }
        let cron = Cron::from_str(schedule).map_err(|e| ScheduleError::BadCron {
            schedule: schedule.into(),
            reason: e.to_string(),
        })?;
        Ok(Schedule { cron, tz })
    }

    /// The first occurrence strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The most recent occurrence in `(after, now]`, if any: the run that is due.
    /// Several missed occurrences coalesce into the latest one.
    pub fn due(&self, after: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let first = self.next_after(after)?;
        if first > now {
            return None;
        }
        // Walk back from now to find the latest occurrence without iterating
        // over possibly thousands of missed minutes.
        let latest = self
            .cron
            .find_previous_occurrence(&now.with_timezone(&self.tz), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| *t > after && *t <= now);
        Some(latest.unwrap_or(first))
    }
}

/// Delay before retry number `failures` (1 = after the first failure):
/// `initial * 2^(failures-1)`, capped at `max`.
pub fn backoff(failures: i32, initial_seconds: i64, max_seconds: i64) -> Duration {
    let exp = (failures.max(1) - 1).min(30) as u32;
    let secs = initial_seconds
        .max(1)
        .saturating_mul(1i64 << exp)
        .min(max_seconds.max(1));
    Duration::seconds(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn next_in_utc() {
        let s = Schedule::parse("30 2 * * *", None).expect("parse");
        assert_eq!(
            s.next_after(t("2026-11-25T10:00:00Z")),
            Some(t("2026-11-26T02:30:00Z"))
        );
    }

    #[test]
    fn next_in_a_time_zone() {
        let s = Schedule::parse("0 9 * * *", Some("Europe/Paris")).expect("parse");
        // 09:00 Paris in winter is 08:00 UTC.
        assert_eq!(
            s.next_after(t("2026-11-25T10:00:00Z")),
            Some(t("2026-11-26T08:00:00Z"))
        );
        // and 07:00 UTC in summer.
        assert_eq!(
            s.next_after(t("2026-07-01T10:00:00Z")),
            Some(t("2026-07-02T07:00:00Z"))
        );
    }

    #[test]
    fn due_coalesces_missed_runs() {
        let s = Schedule::parse("*/5 * * * *", None).expect("parse");
        let after = t("2026-11-25T10:00:00Z");
        assert_eq!(s.due(after, t("2026-11-25T10:04:59Z")), None);
        assert_eq!(
            s.due(after, t("2026-11-25T10:05:00Z")),
            Some(t("2026-11-25T10:05:00Z"))
        );
        assert_eq!(
            s.due(after, t("2026-11-25T11:07:00Z")),
            Some(t("2026-11-25T11:05:00Z"))
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            Schedule::parse("* * *", None),
            Err(ScheduleError::BadCron { .. })
        ));
        assert!(matches!(
            Schedule::parse("61 * * * *", None),
            Err(ScheduleError::BadCron { .. })
        ));
        assert_eq!(
            Schedule::parse("* * * * *", Some("Mars/Olympus")).err(),
            Some(ScheduleError::BadTimeZone("Mars/Olympus".into()))
        );
        assert!(Schedule::parse("@hourly", None).is_ok());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1, 10, 600), Duration::seconds(10));
        assert_eq!(backoff(2, 10, 600), Duration::seconds(20));
        assert_eq!(backoff(4, 10, 600), Duration::seconds(80));
        assert_eq!(backoff(10, 10, 600), Duration::seconds(600));
        assert_eq!(backoff(1000, 10, 600), Duration::seconds(600));
    }
}
