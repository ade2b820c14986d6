//! Failure injection for rollback tests (omicron's `action_failure_can_unwind` idea): tell a
//! provisioning step to fail, or to hang, and watch everything before it be undone.
//! Off unless a test or the `--fault-inject` developer flag turns it on.
use std::sync::Mutex;

use vmw_types::Step;

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

    pub(crate) fn step_delay(&self) -> std::time::Duration {
        *self.step_delay.lock().unwrap()
    }

    pub fn set_fail_snapshot(&self, on: bool) {
        *self.fail_snapshot.lock().unwrap() = on;
    }

    /// Consumes the injected snapshot failure, if one is set.
    pub(crate) fn take_snapshot_fault(&self) -> bool {
        std::mem::take(&mut *self.fail_snapshot.lock().unwrap())
    }

    pub(crate) fn undo_twice(&self) -> bool {
        *self.undo_twice.lock().unwrap()
    }

    pub(crate) fn op_delay(&self) -> std::time::Duration {
        *self.op_delay.lock().unwrap()
    }

    pub fn skip_ready_probe(&self) -> bool {
        *self.skip_ready_probe.lock().unwrap()
    }

    /// Consumes the injected failure if it is for `step`.
    pub(crate) fn take(&self, step: Step) -> bool {
        let mut f = self.fail.lock().unwrap();
        if *f == Some(step) {
            *f = None;
            true
        } else {
            false
        }
    }
}
