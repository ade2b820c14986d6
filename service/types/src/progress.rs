//! How far a long operation on a site (a backup, a restore) has come, read from the events it
//! writes: each step's message starts with `Step N of M: ` and may end with `P %` (an upload's
//! percent). The page draws a progress bar from it; the History shows the same messages.
use crate::{EventKind, EventStatus, EventView};

/// The fraction (0..=1) an event of a step says: the steps before it, and within its own step
/// its percent (or all of it once it succeeded). None: not a step message.
pub fn step_fraction(message: &str, status: EventStatus) -> Option<f32> {
    let rest = message.strip_prefix("Step ")?;
    let (n, rest) = rest.split_once(" of ")?;
    let (m, text) = rest.split_once(':')?;
    let (n, m): (u32, u32) = (n.parse().ok()?, m.trim().parse().ok()?);
    if n == 0 || m == 0 || n > m {
        return None;
    }
    let within = if status == EventStatus::Succeeded {
        1.0
    } else {
        text.trim_end()
            .strip_suffix('%')
            .and_then(|t| t.trim_end().rsplit(' ').next())
            .and_then(|p| p.parse::<f32>().ok())
            .map_or(0.0, |p| (p / 100.0).clamp(0.0, 1.0))
    };
    Some(((n - 1) as f32 + within) / m as f32)
}

/// The running operation's progress (percent) and latest step message, from the hosting's
/// events: those after its latest state change (an operation ends with one). None: no step
/// written yet.
pub fn operation_progress(events: &[EventView]) -> Option<(u8, String)> {
    let start = events.iter().rposition(|e| e.kind == EventKind::State).map_or(0, |i| i + 1);
    let mut best: Option<(f32, String)> = None;
    for e in &events[start..] {
        if let Some(f) = step_fraction(&e.message, e.status) {
            let f = best.as_ref().map_or(f, |(b, _)| b.max(f));
            best = Some((f, e.message.clone()));
        }
    }
    best.map(|(f, msg)| ((f * 100.0).round() as u8, msg))
}

/// Why the latest backup or restore failed, when the hosting's latest state change says it did
/// (that message names the backup and the reason). None once anything else happened since.
pub fn last_backup_failure(events: &[EventView]) -> Option<String> {
    let last = events.iter().rev().find(|e| e.kind == EventKind::State)?;
    let m = &last.message;
    ((m.starts_with("Restoring backup ") || m.starts_with("Backup failed")) && m.contains("failed")).then(|| m.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_messages_say_how_far_an_operation_is() {
        assert_eq!(step_fraction("Step 1 of 2: Capturing the site's files", EventStatus::Started), Some(0.0));
        assert_eq!(step_fraction("Step 1 of 2: Captured 3.1 MiB", EventStatus::Succeeded), Some(0.5));
        assert_eq!(step_fraction("Step 2 of 2: Uploading to the backup repository: 40 %", EventStatus::Info), Some(0.7));
        assert_eq!(step_fraction("Step 3 of 4: Swapping in the backup's disk", EventStatus::Started), Some(0.5));
        for not in ["Backed up", "Step x of 2: a", "Step 3 of 2: a", "Step 0 of 2: a", "Step 1 of 2 no colon"] {
            assert_eq!(step_fraction(not, EventStatus::Info), None, "{not}");
        }
    }

    #[test]
    fn only_the_events_since_the_last_state_change_count() {
        let ev = |kind, status, message: &str| EventView {
            id: 0,
            hosting_id: 1,
            user_id: 1,
            kind,
            step: None,
            status,
            message: message.into(),
            duration_ms: None,
            created_at: 0,
        };
        let old = ev(EventKind::Action, EventStatus::Info, "Step 2 of 2: Uploading to the backup repository: 90 %");
        let state = ev(EventKind::State, EventStatus::Succeeded, "Backed up");
        let now = ev(EventKind::Action, EventStatus::Info, "Step 2 of 2: Uploading to the backup repository: 20 %");
        assert_eq!(operation_progress(&[old.clone(), state.clone()]), None);
        assert_eq!(operation_progress(&[old, state.clone(), now]).map(|p| p.0), Some(60));
        let failed = ev(EventKind::State, EventStatus::Succeeded, "Restoring backup 4 failed: no room; the site is as it was");
        assert_eq!(last_backup_failure(&[failed.clone()]).as_deref(), Some("Restoring backup 4 failed: no room; the site is as it was"));
        assert_eq!(last_backup_failure(&[failed, state]), None, "something happened since");
    }
}
