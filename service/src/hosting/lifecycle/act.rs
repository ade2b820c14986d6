//! start / stop / power off / restart / sleep / wake / delete as a user asks for them: the
//! lease is taken (or the operation refused) at once, the operation runs in the background.
use super::{begin, delete, start_stop, visit, wake};
use crate::hosting::cx::Cx;
use crate::store::HostingRow;
use vmw_types::{EventKind, EventStatus, Operation};
use crate::Result;

/// Begins `op` on hosting `id` of this node and runs it in the background; returns the row
/// as it was when the operation began.
pub(crate) async fn act(cx: &Cx, id: i32, op: Operation) -> Result<HostingRow> {
    let lease = if op == Operation::Wake { visit::begin_wake(cx, id).await? } else { begin(cx, id, op).await? };
    let row = cx.store.require(id).await?;
    let msg = format!("{} requested", op.label());
    cx.event(&row, EventKind::Action, None, EventStatus::Started, msg, None).await;
    let cx = cx.clone();
    tokio::spawn(async move {
        cx.faults().before_act().await;
        let res = match op {
            Operation::Start => start_stop::run_start(&cx, lease).await,
            Operation::Stop => start_stop::run_stop(&cx, lease).await,
            Operation::PowerOff => start_stop::run_power_off(&cx, lease).await,
            Operation::Restart => start_stop::run_restart(&cx, lease).await,
            Operation::Delete => delete::run_delete(&cx, lease).await,
            Operation::Sleep => visit::sleep_site(&cx, lease, "Asleep: put to sleep by hand; the next visit wakes it".into()).await,
            Operation::Wake => wake::run_wake(&cx, lease, "woken by hand").await,
            Operation::Create | Operation::Snapshot | Operation::RestoreSnapshot | Operation::Backup | Operation::RestoreBackup => Ok(()),
        };
        if let Err(err) = res {
            tracing::error!(hosting_id = id, op = %op, %err, "operation failed");
        }
    });
    Ok(row)
}
