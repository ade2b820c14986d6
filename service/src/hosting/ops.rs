//! start / stop / restart / delete: one operation at a time per hosting, run in the
//! background; the call returns as soon as the operation is claimed.
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set, sea_query::Expr};

use super::provision::describe;
use super::{HostingService, HostingState, HostingView, Operation, ports};
use crate::accounts::Actor;
use crate::db::entity::hosting;
use crate::db::now_ms;
use crate::{Error, Result};

const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

impl HostingService {
    /// Starts `op` on a hosting the actor owns. Conflicts (another operation running, or a
    /// state the operation cannot start from) are refused with a specific message.
    pub async fn action(&self, actor: &Actor, id: i32, op: Operation) -> Result<HostingView> {
        if op == Operation::Create {
            return Err(Error::validation("action", "use create to make a new hosting"));
        }
        let row = self.owned(actor, id).await?;
        // An operation in flight: the claim refuses at once. Otherwise only a reconciliation
        // look can hold the hosting, for a moment: wait it out.
        let busy = if row.operation.is_some() {
            self.mark_inflight(id)
        } else {
            self.mark_inflight_patiently(id, Duration::from_secs(5)).await
        };
        self.claim(&row, op).await?;
        let claimed = self.load_row(id).await?;
        self.event(&claimed, "action", None, "started", format!("{} requested", capitalise(op.as_str())), None)
            .await;
        let this = self.clone();
        tokio::spawn(async move {
            let _busy = busy;
            let delay = this.inner.faults.op_delay();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let res = match op {
                Operation::Start => this.run_start(id).await,
                Operation::Stop => this.run_stop(id).await,
                Operation::Restart => this.run_restart(id).await,
                Operation::Delete => this.run_delete(id).await,
                Operation::Create => Ok(()),
            };
            if let Err(err) = res {
                tracing::error!(hosting_id = id, op = op.as_str(), %err, "operation failed");
            }
        });
        self.view(&claimed).await
    }

    /// Deletes every hosting of the actor and waits until they are gone (account deletion).
    pub async fn delete_all_for_user(&self, actor: &Actor, timeout: Duration) -> Result<()> {
        let rows = hosting::Entity::find()
            .filter(hosting::Column::UserId.eq(actor.user_id))
            .all(&self.inner.db)
            .await?;
        for row in &rows {
            let busy = row.operation.is_some();
            if busy {
                self.wait_settled(actor, row.id, timeout).await?;
            }
            match self.action(actor, row.id, Operation::Delete).await {
                Ok(_) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        for row in &rows {
            if self.wait_settled(actor, row.id, timeout).await?.is_some() {
                return Err(Error::Busy(format!("hosting '{}' could not be deleted", row.slug)));
            }
        }
        Ok(())
    }

    /// Atomically sets `operation` when none runs and the state allows it.
    async fn claim(&self, row: &hosting::Model, op: Operation) -> Result<()> {
        let allowed: Vec<&str> = op.allowed_from().iter().map(|s| s.as_str()).collect();
        let mut upd = hosting::Entity::update_many()
            .col_expr(hosting::Column::Operation, Expr::value(op.as_str()))
            .col_expr(hosting::Column::UpdatedAt, Expr::value(now_ms()))
            .filter(hosting::Column::Id.eq(row.id))
            .filter(hosting::Column::Operation.is_null())
            .filter(hosting::Column::State.is_in(allowed.clone()));
        if op == Operation::Delete {
            upd = upd.col_expr(hosting::Column::State, Expr::value(HostingState::Deleting.as_str()));
        }
        let res = upd.exec(&self.inner.db).await?;
        if res.rows_affected == 1 {
            return Ok(());
        }
        let now = self.load_row(row.id).await?;
        if let Some(running) = now.operation {
            return Err(Error::Busy(format!(
                "'{}' is busy: {running} is in progress; try again when it finishes",
                now.slug
            )));
        }
        Err(Error::conflict(
            Some("state"),
            format!("cannot {} '{}' while it is {}", op.as_str(), now.slug, now.state),
        ))
    }

    async fn load_row(&self, id: i32) -> Result<hosting::Model> {
        hosting::Entity::find_by_id(id)
            .one(&self.inner.db)
            .await?
            .ok_or(Error::NotFound("hosting"))
    }

    async fn finish(&self, id: i32, state: HostingState, reason: Option<String>, message: String, ms: i64) -> Result<()> {
        let running = state == HostingState::Running;
        if let Some(row) = self
            .update_row(id, |am| {
                am.state = Set(state.as_str().into());
                am.state_reason = Set(reason);
                am.operation = Set(None);
                am.running_since = Set(running.then(now_ms));
            })
            .await?
        {
            self.event(&row, "state", None, state.as_str(), message, Some(ms)).await;
        }
        Ok(())
    }

    async fn run_start(&self, id: i32) -> Result<()> {
        let t = Instant::now();
        let row = self.load_row(id).await?;
        match self.boot(&row).await {
            Ok(()) => self.finish(id, HostingState::Running, None, "Started".into(), t.elapsed().as_millis() as i64).await,
            Err(err) => {
                let _ = self.inner.vm.destroy(id).await;
                let reason = format!("Start failed: {}", describe(&err));
                self.finish(id, HostingState::Stopped, Some(reason.clone()), reason, t.elapsed().as_millis() as i64)
                    .await
            }
        }
    }

    /// Defines (if the domain went missing), starts and waits for readiness.
    async fn boot(&self, row: &hosting::Model) -> Result<()> {
        let spec = self.vm_spec(row)?;
        self.inner.vm.define(&spec).await?;
        self.inner.vm.start(row.id).await?;
        self.wait_ready(row).await?;
        // The route may have been dropped by a failed reload; make sure it is there.
        if !self.inner.proxy.site_file(row.id).exists() {
            let route = self.site_route(row).await?;
            self.inner.proxy.add_route(&route).await?;
        }
        Ok(())
    }

    async fn run_stop(&self, id: i32) -> Result<()> {
        let t = Instant::now();
        match self.inner.vm.shutdown(id, SHUTDOWN_TIMEOUT).await.map_err(Error::from) {
            Ok(()) => self.finish(id, HostingState::Stopped, None, "Stopped".into(), t.elapsed().as_millis() as i64).await,
            Err(err) => {
                let reason = format!("Stop failed: {}", describe(&err));
                self.finish(id, HostingState::Running, Some(reason.clone()), reason, t.elapsed().as_millis() as i64)
                    .await
            }
        }
    }

    async fn run_restart(&self, id: i32) -> Result<()> {
        let t = Instant::now();
        let row = self.load_row(id).await?;
        let res = async {
            self.inner.vm.shutdown(id, SHUTDOWN_TIMEOUT).await?;
            self.boot(&row).await
        }
        .await;
        match res {
            Ok(()) => self.finish(id, HostingState::Running, None, "Restarted".into(), t.elapsed().as_millis() as i64).await,
            Err(err) => {
                let _ = self.inner.vm.destroy(id).await;
                let reason = format!("Restart failed: {}", describe(&err));
                self.finish(id, HostingState::Stopped, Some(reason.clone()), reason, t.elapsed().as_millis() as i64)
                    .await
            }
        }
    }

    pub(super) async fn run_delete(&self, id: i32) -> Result<()> {
        let t = Instant::now();
        let row = self.load_row(id).await?;
        let errors = self.scrub(&row).await;
        if !errors.is_empty() {
            let reason = format!("Delete incomplete: {}. Press delete again to retry.", errors.join("; "));
            return self
                .finish(id, HostingState::Failed, Some(reason.clone()), reason, t.elapsed().as_millis() as i64)
                .await;
        }
        let txn_db = &self.inner.db;
        ports::release_all(txn_db, id).await?;
        hosting::Entity::delete_by_id(id).exec(txn_db).await?;
        self.event(&row, "state", None, "deleted", format!("Hosting '{}' deleted", row.slug), Some(t.elapsed().as_millis() as i64))
            .await;
        self.inner.metrics.forget(id);
        self.reroute_user_path(row.user_id).await;
        Ok(())
    }

    /// After a user's first site is gone (deleted, or its create failed), `/{user_id}/` moves
    /// to their next live one.
    pub(super) async fn reroute_user_path(&self, user_id: i32) {
        let next = hosting::Entity::find()
            .filter(hosting::Column::UserId.eq(user_id))
            .filter(hosting::Column::State.is_in([HostingState::Running.as_str(), HostingState::Stopped.as_str()]))
            .order_by_asc(hosting::Column::Id)
            .one(&self.inner.db)
            .await;
        if let Ok(Some(next)) = next {
            if let Ok(route) = self.site_route(&next).await {
                if let Err(err) = self.inner.proxy.add_route(&route).await {
                    tracing::warn!(hosting_id = next.id, %err, "could not move the user path route");
                }
            }
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

