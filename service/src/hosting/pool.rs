//! The warm pool: spare VMs booted ahead of time and saved to disk (they hold no RAM while
//! they wait). A create claims one, restores it (~0.4 s), personalises it through the guest
//! agent (hostname, the user's SSH keys, the welcome page) and publishes its route, so the site
//! is live in about a second instead of a 20-40 s cold boot. Each spare booted on its own, so
//! host keys and machine-id are its own (FACTS.md: clones of one save would share them).
use std::time::{Duration, Instant};

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set, sea_query::Expr};

use super::{HostingService, HostingState, Operation, Step};
use crate::accounts::Actor;
use crate::db::entity::{hosting, user};
use crate::db::now_ms;
use crate::{Error, Result};

/// Owner of the spares until they are claimed (not a login: its password hash is unusable).
const POOL_USERNAME: &str = "_warm_pool";

/// A warm create: the first three were done when the spare was made.
pub(super) const WARM_ORDER: [Step; 7] = [
    Step::AllocatePorts,
    Step::CreateDisk,
    Step::DefineDomain,
    Step::StartVm,
    Step::WriteSeed,
    Step::WaitReady,
    Step::AddRoute,
];

impl HostingService {
    async fn pool_user(&self) -> Result<i32> {
        let db = &self.inner.db;
        if let Some(u) = user::Entity::find().filter(user::Column::Username.eq(POOL_USERNAME)).one(db).await? {
            return Ok(u.id);
        }
        let now = now_ms();
        let row = user::ActiveModel {
            email: Set("warm-pool@vm-webhoster.invalid".into()),
            username: Set(POOL_USERNAME.into()),
            password_hash: Set("!".into()),
            is_admin: Set(false),
            auth_version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        Ok(row.insert(db).await?.id)
    }

    /// Keeps `pool_size` spares ready, in the background. Users come first: no spare is made
    /// while a user's hosting waits for a provisioning slot.
    pub(super) fn spawn_pool_filler(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                match this.fill_pool_once().await {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(err) => tracing::warn!(%err, "could not make a warm spare"),
                }
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        })
    }

    /// Spares ready to be claimed on this node.
    pub async fn spares_ready(&self) -> Result<u64> {
        Ok(hosting::Entity::find()
            .filter(hosting::Column::NodeId.eq(self.inner.node_id))
            .filter(hosting::Column::State.eq(HostingState::Spare.as_str()))
            .filter(hosting::Column::Operation.is_null())
            .count(&self.inner.db)
            .await?)
    }

    /// Makes one spare when the pool is short. Returns whether it made one.
    pub async fn fill_pool_once(&self) -> Result<bool> {
        let want = self.inner.cfg.pool_size as u64;
        if want == 0 {
            return Ok(false);
        }
        let db = &self.inner.db;
        let spares = hosting::Entity::find()
            .filter(hosting::Column::NodeId.eq(self.inner.node_id))
            .filter(hosting::Column::State.eq(HostingState::Spare.as_str()))
            .count(db)
            .await?;
        if spares >= want {
            return Ok(false);
        }
        let waiting = hosting::Entity::find()
            .filter(hosting::Column::NodeId.eq(self.inner.node_id))
            .filter(hosting::Column::State.is_in([HostingState::Queued.as_str(), HostingState::Provisioning.as_str()]))
            .count(db)
            .await?;
        if waiting > 0 {
            return Ok(false);
        }
        let Ok(_permit) = self.inner.permits.clone().try_acquire_owned() else {
            return Ok(false);
        };
        self.make_spare().await?;
        Ok(true)
    }

    async fn make_spare(&self) -> Result<()> {
        let cfg = &self.inner.cfg;
        let plan = cfg.plans.first().ok_or_else(|| Error::internal("no plans configured"))?;
        let owner = self.pool_user().await?;
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..10];
        let now = now_ms();
        let row = hosting::ActiveModel {
            user_id: Set(owner),
            node_id: Set(self.inner.node_id),
            slug: Set(format!("spare-{suffix}")),
            plan: Set(plan.name.clone()),
            state: Set(HostingState::Spare.as_str().into()),
            state_reason: Set(None),
            operation: Set(Some(Operation::Create.as_str().into())),
            http_port: Set(None),
            ssh_port: Set(None),
            ssh_keys: Set("[]".into()),
            created_at: Set(now),
            updated_at: Set(now),
            running_since: Set(None),
            ..Default::default()
        }
        .insert(&self.inner.db)
        .await?;
        let _inflight = self.mark_inflight(row.id);
        let t = Instant::now();
        let built = async {
            for step in [Step::AllocatePorts, Step::CreateDisk, Step::WriteSeed, Step::DefineDomain, Step::StartVm, Step::WaitReady] {
                self.do_step(step, row.id).await?;
            }
            self.inner.vm.managed_save(row.id).await?;
            Ok::<(), Error>(())
        }
        .await;
        match built {
            Ok(()) => {
                self.update_row(row.id, |am| am.operation = Set(None)).await?;
                tracing::info!(hosting_id = row.id, ms = t.elapsed().as_millis() as u64, "warm spare ready");
                Ok(())
            }
            Err(err) => {
                let errors = self.scrub(&row).await;
                if errors.is_empty() {
                    hosting::Entity::delete_by_id(row.id).exec(&self.inner.db).await?;
                }
                Err(err)
            }
        }
    }

    /// Hands a ready spare of `plan` to the actor (atomically: two creates never get the same
    /// one). Returns the claimed row.
    pub(super) async fn claim_spare(
        &self,
        actor: &Actor,
        slug: &str,
        plan: &str,
        keys_json: &str,
    ) -> Result<Option<(hosting::Model, super::InflightGuard)>> {
        if self.inner.cfg.pool_size == 0 {
            return Ok(None);
        }
        let db = &self.inner.db;
        for _ in 0..5 {
            let Some(cand) = hosting::Entity::find()
                .filter(hosting::Column::NodeId.eq(self.inner.node_id))
                .filter(hosting::Column::State.eq(HostingState::Spare.as_str()))
                .filter(hosting::Column::Operation.is_null())
                .filter(hosting::Column::Plan.eq(plan))
                .order_by_asc(hosting::Column::Id)
                .one(db)
                .await?
            else {
                return Ok(None);
            };
            // Busy before the claim is written (reconciliation must never see a claimed spare
            // unguarded); a spare reconciliation is looking at is skipped.
            let Some(busy) = self.try_mark_inflight(cand.id) else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let now = now_ms();
            let res = hosting::Entity::update_many()
                .col_expr(hosting::Column::UserId, Expr::value(actor.user_id))
                .col_expr(hosting::Column::Slug, Expr::value(slug))
                .col_expr(hosting::Column::SshKeys, Expr::value(keys_json))
                .col_expr(hosting::Column::State, Expr::value(HostingState::Queued.as_str()))
                .col_expr(hosting::Column::Operation, Expr::value(Operation::Create.as_str()))
                .col_expr(hosting::Column::CreatedAt, Expr::value(now))
                .col_expr(hosting::Column::UpdatedAt, Expr::value(now))
                .filter(hosting::Column::Id.eq(cand.id))
                .filter(hosting::Column::State.eq(HostingState::Spare.as_str()))
                .filter(hosting::Column::Operation.is_null())
                .exec(db)
                .await?;
            if res.rows_affected == 1 {
                return Ok(hosting::Entity::find_by_id(cand.id).one(db).await?.map(|row| (row, busy)));
            }
        }
        Ok(None)
    }

    /// The warm path of each step (see `WARM_ORDER`).
    pub(super) async fn do_warm_step(&self, step: Step, id: i32) -> Result<()> {
        match step {
            // Made with the spare: nothing to do but say so.
            Step::AllocatePorts | Step::CreateDisk | Step::DefineDomain => Ok(()),
            // Restores the saved VM.
            Step::StartVm => Ok(self.inner.vm.start(id).await?),
            // Rewrites the spare's SSH keys, welcome page and hostname through the guest agent.
            Step::WriteSeed => {
                let row = self.load(id).await?;
                let seed = self.seed(&row)?;
                Ok(self.inner.vm.personalise(id, &seed, Duration::from_secs(60)).await?)
            }
            Step::WaitReady | Step::AddRoute => self.do_step(step, id).await,
        }
    }
}
