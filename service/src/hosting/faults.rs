//! Failure injection for rollback tests (omicron's `action_failure_can_unwind` idea): tell a
//! provisioning step to fail, or to hang, and watch everything before it be undone.
//! Off unless a test or the `--fault-inject` developer flag turns it on.
//!
//! This is the one seam between tests and production code: the knobs below are set through
//! `HostingService::faults()`, and production code reads them only through the hooks at the
//! end of this file (`guest`, `before_step`, `undo_runs`, `before_act`, `take_snapshot_fault`,
//! `node_down`), each of which does nothing while no knob is set.
use std::sync::Mutex;

use vmw_types::Step;

use super::guest::{Agent, Guest, TestDriver};
use crate::{Error, Result};

#[derive(Default)]
pub struct Faults {
    fail: Mutex<Option<Step>>,
    /// Test hook for libvirt's in-memory `test:///default` driver, whose domains run nothing:
    /// treat "the domain is running" as ready instead of probing HTTP and SSH, and do not ask
    /// a guest agent for anything (personalisation, the clock).
    skip_ready_probe: Mutex<bool>,
    /// Keeps start/stop/restart/delete in flight this long before they act (tests of the
    /// one-operation-at-a-time rule need an operation that is still running).
    op_delay: Mutex<std::time::Duration>,
    /// Every undo of a rollback runs twice (undos must be idempotent).
    undo_twice: Mutex<bool>,
    /// Every provisioning step waits this long before it acts (a create still in flight, for
    /// tests that kill the process doing it).
    step_delay: Mutex<std::time::Duration>,
    /// The next snapshot or snapshot restore fails once its VM is down (after the save, or
    /// after the disk swap): what is left must be the site as it was.
    fail_snapshot: Mutex<bool>,
    /// Nodes whose health check fails as if they were down (tests of unreachable nodes).
    nodes_down: Mutex<std::collections::HashSet<i32>>,
}

impl Faults {
    /// The next provisioning that reaches `step` fails there (once).
    pub fn fail_at(&self, step: Option<Step>) {
        *self.fail.lock().unwrap() = step;
    }

    pub fn set_skip_ready_probe(&self, on: bool) {
        *self.skip_ready_probe.lock().unwrap() = on;
    }

    pub fn set_op_delay(&self, d: std::time::Duration) {
        *self.op_delay.lock().unwrap() = d;
    }

    /// Node `id`'s health checks fail from now on (`down`) or pass again.
    pub fn set_node_down(&self, id: i32, down: bool) {
        let mut set = self.nodes_down.lock().unwrap();
        if down { set.insert(id) } else { set.remove(&id) };
    }

    pub(crate) fn node_down(&self, id: i32) -> bool {
        self.nodes_down.lock().unwrap().contains(&id)
    }

    pub fn set_undo_twice(&self, on: bool) {
        *self.undo_twice.lock().unwrap() = on;
    }

    pub fn set_step_delay(&self, d: std::time::Duration) {
        *self.step_delay.lock().unwrap() = d;
    }

    pub fn set_fail_snapshot(&self, on: bool) {
        *self.fail_snapshot.lock().unwrap() = on;
    }

    /// Consumes the injected snapshot failure, if one is set.
    pub(crate) fn take_snapshot_fault(&self) -> bool {
        std::mem::take(&mut *self.fail_snapshot.lock().unwrap())
    }

    pub fn skip_ready_probe(&self) -> bool {
        *self.skip_ready_probe.lock().unwrap()
    }

    /// Consumes the injected failure if it is for `step`.
    fn take(&self, step: Step) -> bool {
        let mut f = self.fail.lock().unwrap();
        if *f == Some(step) {
            *f = None;
            true
        } else {
            false
        }
    }
}

/// The hooks production code calls (each a no-op while no knob is set).
impl Faults {
    /// The guest the steps and operations talk to: the real one, or libvirt's test driver's.
    pub(crate) fn guest(&self) -> &'static dyn Guest {
        if self.skip_ready_probe() { &TestDriver } else { &Agent }
    }

    /// Before a provisioning step acts: it may wait (`set_step_delay`) or fail (`fail_at`).
    pub(crate) async fn before_step(&self, step: Step) -> Result<()> {
        let delay = *self.step_delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if self.take(step) {
            return Err(Error::Internal(format!("injected failure at step {step}")));
        }
        Ok(())
    }

    /// How many times each undo of a rollback runs (`set_undo_twice`: undos are idempotent).
    pub(crate) fn undo_runs(&self) -> usize {
        if *self.undo_twice.lock().unwrap() { 2 } else { 1 }
    }

    /// Before an operation begun by a user acts (`set_op_delay`: it stays in flight a while).
    pub(crate) async fn before_act(&self) {
        let delay = *self.op_delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}
