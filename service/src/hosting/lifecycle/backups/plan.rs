//! When a site's scheduled backups run: pure functions of the schedule, the site's id and a
//! clock (unix milliseconds, UTC: no daylight saving time to trip on), unit tested with fixed
//! clocks.
//!
//! A schedule's slots are the owner's time (daily, or weekly on a weekday) plus the site's
//! spread offset, a stable value in `[0, SPREAD_WINDOW)` derived from its id: 1,000 sites that
//! all chose 02:00 start over half an hour, not at once. A slot is due when it is after the
//! schedule's anchor (the last slot handled, or when the schedule was set): a service that was
//! down for three nights runs one backup when it comes back, not three.
use crate::backup::KeepPolicy;
use crate::{Error, Result};
use vmw_types::{BackupFrequency, BackupSchedule};

/// The window sites' start times are spread over.
pub(crate) const SPREAD_WINDOW_MS: i64 = 30 * 60 * 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;
/// A site is listed as stale when its last success is older than its period plus this.
pub(crate) const STALE_MARGIN_MS: i64 = 6 * 3600 * 1000;

/// How far after the owner's time site `id`'s backups start: a stable mix of its id (the same
/// in every process and release), within the window.
pub(crate) fn spread_ms(id: i32) -> i64 {
    // splitmix64's finaliser: neighbouring ids land far apart.
    let mut z = (id as u32 as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // Whole seconds: the pages show it as minutes and seconds.
    ((z % (SPREAD_WINDOW_MS as u64 / 1000)) * 1000) as i64
}

/// The time between two slots; None when off.
pub(crate) fn period_ms(s: &BackupSchedule) -> Option<i64> {
    match s.frequency {
        BackupFrequency::Off => None,
        BackupFrequency::Daily => Some(DAY_MS),
        BackupFrequency::Weekly => Some(7 * DAY_MS),
    }
}

/// One slot (any): the first at or after the epoch (a Thursday).
fn origin_ms(s: &BackupSchedule, id: i32) -> i64 {
    let time = (i64::from(s.hour) * 3600 + i64::from(s.minute) * 60) * 1000;
    let day = match (s.frequency, s.weekday) {
        (BackupFrequency::Weekly, Some(w)) => (i64::from(w.days_from_monday()) - 3).rem_euclid(7),
        _ => 0,
    };
    day * DAY_MS + time + spread_ms(id)
}

/// The newest slot at or before `now`; None when off.
pub(crate) fn last_slot(s: &BackupSchedule, id: i32, now: i64) -> Option<i64> {
    let period = period_ms(s)?;
    let origin = origin_ms(s, id);
    Some(origin + (now - origin).div_euclid(period) * period)
}

/// The slot due now: the newest slot at or before `now`, if it is after `anchor` (the last
/// slot handled, or when the schedule was set). However many slots were missed, one is due.
pub(crate) fn due_slot(s: &BackupSchedule, id: i32, anchor: i64, now: i64) -> Option<i64> {
    last_slot(s, id, now).filter(|&slot| slot > anchor)
}

/// When the next scheduled backup starts: the slot due now if one is, else the first after
/// both `now` and `anchor` (the slot handled last). None when off.
pub(crate) fn next_run(s: &BackupSchedule, id: i32, anchor: i64, now: i64) -> Option<i64> {
    let last = last_slot(s, id, now)?;
    if last > anchor { Some(last) } else { Some(last_slot(s, id, now.max(anchor))? + period_ms(s)?) }
}

/// Whether a site on schedule `s` (set at `set_at`) has gone too long without a successful
/// backup: its last success (or, never backed up, the time its schedule was set) is older than
/// its period plus the spread window plus [`STALE_MARGIN_MS`].
pub(crate) fn is_stale(s: &BackupSchedule, last_success: Option<i64>, set_at: i64, now: i64) -> bool {
    let Some(period) = period_ms(s) else { return false };
    let since = last_success.unwrap_or(set_at);
    now - since > period + SPREAD_WINDOW_MS + STALE_MARGIN_MS
}

/// The delay before retry `attempt` (1, 2, ...) of a failed scheduled backup: 5, 10, 20 min.
pub(crate) fn retry_delay_ms(attempt: i32) -> i64 {
    5 * 60 * 1000 * (1i64 << (attempt - 1).clamp(0, 4))
}

/// A failed scheduled backup is tried this many times in all before the slot is given up.
pub(crate) const MAX_ATTEMPTS: i32 = 3;

/// A busy site's scheduled backup is tried again this much later.
pub(crate) const BUSY_RETRY_MS: i64 = 3 * 60 * 1000;

/// Checks what an owner sent; the retention as restic's keep policy. Field errors (422).
pub(crate) fn validate(s: &BackupSchedule) -> Result<KeepPolicy> {
    if s.hour > 23 {
        return Err(Error::validation("hour", "the hour is 0 to 23 (UTC)"));
    }
    if s.minute > 59 {
        return Err(Error::validation("minute", "the minute is 0 to 59"));
    }
    if s.frequency == BackupFrequency::Weekly && s.weekday.is_none() {
        return Err(Error::validation("weekday", "a weekly schedule needs its day"));
    }
    let fields = [("keep_daily", s.keep_daily, KeepPolicy::MAX_DAILY), ("keep_weekly", s.keep_weekly, KeepPolicy::MAX_WEEKLY), ("keep_monthly", s.keep_monthly, KeepPolicy::MAX_MONTHLY)];
    for (field, n, max) in fields {
        if n > max {
            return Err(Error::validation(field, format!("at most {max}")));
        }
    }
    KeepPolicy::new(s.keep_daily, s.keep_weekly, s.keep_monthly)
        .map_err(|_| Error::validation("keep_daily", "keep at least one backup: one of daily, weekly, monthly must be above 0"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmw_types::Weekday;

    /// 2026-12-08 (a Tuesday) at `h:m` UTC, unix ms.
    fn dec8(h: i64, m: i64) -> i64 {
        let midnight = time::macros::datetime!(2026-12-08 00:00 UTC).unix_timestamp() * 1000;
        midnight + (h * 3600 + m * 60) * 1000
    }

    fn daily(h: u8, m: u8) -> BackupSchedule {
        BackupSchedule { frequency: BackupFrequency::Daily, hour: h, minute: m, ..BackupSchedule::default() }
    }

    #[test]
    fn a_daily_schedule_runs_at_the_owners_time_plus_the_sites_offset() {
        let (id, s) = (42, daily(2, 30));
        let off = spread_ms(id);
        assert_eq!(next_run(&s, id, dec8(1, 0), dec8(1, 0)), Some(dec8(2, 30) + off));
        // Just after today's slot: tomorrow's.
        assert_eq!(next_run(&s, id, dec8(2, 30) + off, dec8(2, 30) + off + 1), Some(dec8(2, 30) + off + DAY_MS));
        assert_eq!(due_slot(&s, id, dec8(1, 0), dec8(2, 30) + off - 1), None, "not before its time");
        assert_eq!(due_slot(&s, id, dec8(1, 0), dec8(2, 30) + off), Some(dec8(2, 30) + off));
        assert_eq!(due_slot(&s, id, dec8(2, 30) + off, dec8(3, 30) + off), None, "handled once");
    }

    #[test]
    fn a_weekly_schedule_runs_on_its_day() {
        let id = 7;
        let s = BackupSchedule { frequency: BackupFrequency::Weekly, weekday: Some(Weekday::Thursday), hour: 4, minute: 0, ..BackupSchedule::default() };
        let thursday = dec8(4, 0) + 2 * DAY_MS + spread_ms(id);
        assert_eq!(next_run(&s, id, dec8(0, 0), dec8(0, 0)), Some(thursday));
        assert_eq!(next_run(&s, id, thursday, thursday + 1), Some(thursday + 7 * DAY_MS));
        let monday = BackupSchedule { weekday: Some(Weekday::Monday), ..s.clone() };
        assert_eq!(next_run(&monday, id, dec8(0, 0), dec8(0, 0)), Some(dec8(4, 0) + 6 * DAY_MS + spread_ms(id)));
        let tuesday = BackupSchedule { weekday: Some(Weekday::Tuesday), ..s };
        assert_eq!(last_slot(&tuesday, id, dec8(5, 0)), Some(dec8(4, 0) + spread_ms(id)));
    }

    #[test]
    fn missed_slots_run_once_when_the_service_comes_back() {
        let (id, s) = (3, daily(1, 0));
        // Down from the 8th 00:00 until the 11th 12:00: three slots missed, one due (the newest).
        let back = dec8(12, 0) + 3 * DAY_MS;
        let due = due_slot(&s, id, dec8(0, 0), back).unwrap();
        assert_eq!(due, dec8(1, 0) + 3 * DAY_MS + spread_ms(id));
        assert_eq!(due_slot(&s, id, due, back), None, "and no other once it is handled");
        assert_eq!(next_run(&s, id, due, back), Some(due + DAY_MS));
    }

    #[test]
    fn an_off_schedule_never_runs() {
        let s = BackupSchedule::default();
        assert_eq!(next_run(&s, 1, 0, dec8(0, 0)), None);
        assert_eq!(due_slot(&s, 1, 0, dec8(0, 0)), None);
        assert!(!is_stale(&s, None, 0, dec8(0, 0)));
    }

    #[test]
    fn the_spread_is_stable_inside_the_window_and_spreads_sites() {
        let offsets: Vec<i64> = (1..=1000).map(spread_ms).collect();
        assert!(offsets.iter().all(|&o| (0..SPREAD_WINDOW_MS).contains(&o)));
        assert_eq!(spread_ms(17), spread_ms(17));
        // 1,000 sites over 30 one-minute buckets: none holds more than a tenth of them.
        let mut buckets = [0u32; 30];
        for o in &offsets {
            buckets[(o / 60_000) as usize] += 1;
        }
        assert!(buckets.iter().all(|&n| n > 0 && n < 100), "{buckets:?}");
    }

    #[test]
    fn a_site_is_stale_after_its_period_and_a_margin() {
        let s = daily(2, 0);
        let last = dec8(2, 10);
        assert!(!is_stale(&s, Some(last), 0, last + DAY_MS + STALE_MARGIN_MS));
        assert!(is_stale(&s, Some(last), 0, last + DAY_MS + SPREAD_WINDOW_MS + STALE_MARGIN_MS + 1));
        assert!(is_stale(&s, None, last, last + 2 * DAY_MS), "never backed up since it was set");
    }

    #[test]
    fn retries_back_off() {
        assert_eq!((1..=3).map(retry_delay_ms).collect::<Vec<_>>(), [300_000, 600_000, 1_200_000]);
    }

    #[test]
    fn schedules_are_validated_field_by_field() {
        let field = |s: BackupSchedule| match validate(&s) {
            Err(Error::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert!(validate(&daily(23, 59)).is_ok());
        assert_eq!(field(daily(24, 0)), "hour");
        assert_eq!(field(daily(1, 60)), "minute");
        assert_eq!(field(BackupSchedule { frequency: BackupFrequency::Weekly, ..daily(1, 0) }), "weekday");
        assert_eq!(field(BackupSchedule { keep_daily: 0, keep_weekly: 0, keep_monthly: 0, ..daily(1, 0) }), "keep_daily");
        assert_eq!(field(BackupSchedule { keep_monthly: 10_000, ..daily(1, 0) }), "keep_monthly");
    }
}
