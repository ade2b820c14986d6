//! The saga's runner: the units of an order run one by one, each recorded as an event with its
//! duration; a failing unit undoes the finished ones in reverse order. Every undo is
//! idempotent and keyed on the hosting id, so reconciliation can also run them on a hosting
//! whose progress is unknown (after a crash): [`scrub`].
use std::time::Instant;

use super::orders::EVERYTHING;
use super::site::describe;
use super::units::Unit;
use crate::hosting::cx::Cx;
use crate::hosting::fanout::Note;
use crate::hosting::foreground::MAX_WAIT;
use crate::store::{HostingRow, Lease};
use vmw_types::{EventKind, EventStatus};
use crate::Error;

/// Where an order stopped: the step, its error, and the undos that failed (empty = clean).
pub(crate) struct Failure {
    pub unit: &'static dyn Unit,
    pub error: Error,
    pub undo_errors: Vec<String>,
}

impl Failure {
    /// What the owner is told.
    pub fn reason(&self) -> String {
        let mut reason = format!("{} failed: {}", self.unit.step().label(), describe(&self.error));
        if self.undo_errors.is_empty() {
            reason.push_str(". Everything created so far was removed.");
        } else {
            reason.push_str(&format!(
                ". Cleanup is incomplete ({}); it will be retried automatically.",
                self.undo_errors.join("; ")
            ));
        }
        reason
    }
}

/// Runs `order` on the leased hosting (with a step event each when `events`). On failure,
/// undoes the finished units in reverse and says where it stopped.
pub(crate) async fn run_units(
    cx: &Cx,
    row: &HostingRow,
    lease: &Lease,
    order: &'static [&'static dyn Unit],
    events: bool,
) -> std::result::Result<(), Failure> {
    let mut done: Vec<&'static dyn Unit> = Vec::new();
    // A user's create counts as users' work; a spare (no user yet) waits for it before each step.
    let spare = row.user_id.is_none();
    let _users_first = (!spare).then(|| cx.foreground.enter());
    for (i, &unit) in order.iter().enumerate() {
        let step = unit.step();
        if spare {
            let waited = cx.foreground.wait_idle(MAX_WAIT).await;
            if waited >= std::time::Duration::from_millis(50) {
                tracing::debug!(hosting_id = row.id, step = step.as_str(), ms = waited.as_millis() as u64, "a spare's step waited for users' work");
            }
        }
        if lease.is_lost() {
            // Someone else holds the hosting now: no further step, and no rollback of ours.
            return Err(Failure { unit, error: Error::LeaseLost { hosting_id: lease.hosting_id() }, undo_errors: vec![] });
        }
        if events {
            cx.event(row, EventKind::Step, Some(step), EventStatus::Started, step.label().into(), None).await;
        }
        let before = cx.faults().before_step(step).await;
        let t = Instant::now();
        let result = match before {
            Ok(()) => unit.run(cx, lease).await,
            Err(injected) => Err(injected),
        };
        let took = t.elapsed();
        crate::telemetry::record_step(step, result.is_ok(), took);
        let ms = Some(took.as_millis() as i64);
        match result {
            Ok(()) => {
                if events {
                    cx.event(row, EventKind::Step, Some(step), EventStatus::Succeeded, step.label().into(), ms).await;
                }
                done.push(unit);
            }
            Err(error) if matches!(error, Error::LeaseLost { .. }) || lease.is_lost() => {
                return Err(Failure { unit, error, undo_errors: vec![] });
            }
            Err(error) => {
                if events {
                    cx.event(row, EventKind::Step, Some(step), EventStatus::Failed, describe(&error), ms).await;
                }
                // The failed unit may have made part of its thing: undo that too (it
                // is no finished step, so no event), then the finished ones.
                // Inherited units after this one were done too (with the spare).
                let first = unwind(cx, row, lease, &[unit], false, Vec::new()).await;
                done.extend(order[i + 1..].iter().filter(|u| u.inherited()));
                let undo_errors = unwind(cx, row, lease, &done, events, first).await;
                return Err(Failure { unit, error, undo_errors });
            }
        }
    }
    Ok(())
}

/// Undoes `done` in reverse order, after the undo errors `errors` so far. Returns all the
/// undo errors (empty = clean slate).
async fn unwind(
    cx: &Cx,
    row: &HostingRow,
    lease: &Lease,
    done: &[&'static dyn Unit],
    events: bool,
    mut errors: Vec<String>,
) -> Vec<String> {
    let times = cx.faults().undo_runs();
    for unit in done.iter().rev() {
        let step = unit.step();
        if lease.is_lost() {
            errors.push("the hosting's lease passed to another process, which cleans up".to_owned());
            break;
        }
        if step == vmw_types::Step::AllocatePorts && !errors.is_empty() {
            // Something that uses the ports (a route, a VM) may still be there: keep them
            // leased until a later, clean scrub, so no one else is given them meanwhile.
            errors.push("the ports stay reserved until the rest is removed".to_owned());
            continue;
        }
        let t = Instant::now();
        let mut result = Ok(());
        for _ in 0..times {
            result = unit.undo(cx, lease).await;
            if result.is_err() {
                break;
            }
        }
        match result {
            Ok(()) if events => {
                let ms = Some(t.elapsed().as_millis() as i64);
                let msg = format!("Undid: {}", step.label());
                cx.event(row, EventKind::Undo, Some(step), EventStatus::Undone, msg, ms).await;
            }
            Ok(()) => {}
            Err(err) => {
                let msg = format!("could not undo {step}: {}", describe(&err));
                if events {
                    cx.event(row, EventKind::Undo, Some(step), EventStatus::Failed, msg.clone(), None).await;
                }
                errors.push(msg);
            }
        }
    }
    errors
}

/// Removes whatever a hosting may hold, whatever its progress: every undo, in reverse.
pub(crate) async fn scrub(cx: &Cx, lease: &Lease) -> Vec<String> {
    let mut errors = Vec::new();
    // A sleeping site's SSH port is the app's own listener: it goes first.
    cx.shared.ssh_wakers.release(lease.hosting_id()).await;
    if cx.events().fanout().enabled() {
        // The leader's listener, if it has one (the port may go to another site next).
        cx.events().fanout().send(Note::ReleaseSshWaker { hosting_id: lease.hosting_id() }).await;
    }
    for unit in EVERYTHING.iter().rev() {
        if lease.is_lost() {
            errors.push("the hosting's lease passed to another process".to_owned());
            break;
        }
        if unit.step() == vmw_types::Step::AllocatePorts && !errors.is_empty() {
            continue; // the ports stay reserved while something may still use them
        }
        if let Err(err) = unit.undo(cx, lease).await {
            errors.push(format!("{}: {}", unit.step(), describe(&err)));
        }
    }
    errors
}

