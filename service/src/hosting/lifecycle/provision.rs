//! A create's saga in the background: a claimed warm spare, a clone of the golden snapshot, or
//! a cold boot (in a provisioning slot), then the hosting is running, or failed with the
//! reason and everything undone.
use std::time::Instant;

use vmw_types::CreateKind;

use crate::config::Plan;
use crate::hosting::cx::Cx;
use crate::hosting::saga::orders::order_of;
use crate::hosting::saga::runner::run_units;
use crate::hosting::saga::site::reroute_user_path;
use crate::store::Lease;
use vmw_types::{EventKind, EventStatus, HostingState};
use crate::Result;

/// A cold create, in the background once a provisioning slot is free; the lease lives as
/// long as the task.
pub(crate) fn spawn_create(cx: &Cx, lease: Lease) {
    let cx = cx.clone();
    tokio::spawn(async move {
        let permits = cx.permits.clone();
        let Ok(_permit) = permits.acquire_owned().await else { return };
        if let Err(err) = run_create(&cx, lease, CreateKind::Cold).await {
            tracing::error!(%err, "provisioning task failed");
        }
    });
}

/// A create that has no spare: a clone of the golden snapshot when there is one of the
/// plan's size, else a cold boot.
pub(crate) fn spawn_fresh(cx: &Cx, lease: Lease, plan: &str) {
    match cx.cfg.plan(plan) {
        Some(p) if can_clone(cx, p) => spawn_clone(cx, lease),
        _ => spawn_create(cx, lease),
    }
}

/// A clone of the golden snapshot: no boot, so no provisioning slot is needed.
fn spawn_clone(cx: &Cx, lease: Lease) {
    let cx = cx.clone();
    tokio::spawn(async move {
        if let Err(err) = run_create(&cx, lease, CreateKind::Clone).await {
            tracing::error!(%err, "provisioning a clone of the golden snapshot failed");
        }
    });
}

/// A claimed warm spare: no boot, so no provisioning slot is needed.
pub(crate) fn spawn_claimed(cx: &Cx, lease: Lease) {
    let cx = cx.clone();
    tokio::spawn(async move {
        if let Err(err) = run_create(&cx, lease, CreateKind::Warm).await {
            tracing::error!(%err, "provisioning a claimed warm VM failed");
        }
    });
}

/// Runs a create's units, then marks the hosting running, or undoes what was done and
/// marks it failed with the reason.
async fn run_create(cx: &Cx, lease: Lease, kind: CreateKind) -> Result<()> {
    let store = &cx.store;
    let order = order_of(kind);
    let restored = kind != CreateKind::Cold;
    let row = store.begin_provisioning(&lease, kind).await?;
    let how = match kind {
        CreateKind::Warm => "Provisioning from the warm pool (a VM made ahead of time)",
        CreateKind::Clone => "Provisioning a clone of the golden snapshot (no boot)",
        CreateKind::Cold => "Provisioning started (a full boot)",
    };
    cx.event(&row, EventKind::State, None, EventStatus::Provisioning, how.into(), None).await;
    let started = Instant::now();
    match run_units(cx, &row, &lease, order, true).await {
        Ok(()) => {
            crate::telemetry::record_create(kind, true, started.elapsed());
            let total = started.elapsed().as_millis() as i64;
            let row = store.finish(&lease, HostingState::Running, None).await?;
            let msg = format!("Site is live ({total} ms)");
            cx.event(&row, EventKind::State, None, EventStatus::Running, msg, Some(total)).await;
            if restored {
                cx.guest().sync_clock_later(&cx.vm, row.id);
            }
        }
        Err(failure) => {
            crate::telemetry::record_create(kind, false, started.elapsed());
            let reason = failure.reason();
            let row = store.finish(&lease, HostingState::Failed, Some(reason.clone())).await?;
            cx.event(&row, EventKind::State, None, EventStatus::Failed, reason, None).await;
            // A younger site of this user may have been routed without `/{user_id}/`
            // while this one came first.
            if let Some(user_id) = row.user_id {
                reroute_user_path(cx, user_id).await;
            }
        }
    }
    Ok(())
}

/// Whether a VM of `plan` can be a clone of the golden snapshot (there is one, of its size).
pub(crate) fn can_clone(cx: &Cx, plan: &Plan) -> bool {
    cx.cfg.golden
        && cx
            .vm
            .golden()
            .is_some_and(|g| (g.vcpus, g.memory_mib, g.disk_gib) == (plan.vcpus, plan.memory_mib, plan.disk_gib))
}
