//! The custom domain rows of users' sites (issue #30), with the per-user limit checked under
//! the user's row lock, and the owner's HSTS switch of a site. The background checker (DNS,
//! certificates) reads its work from [`Store::domains_due`] and writes back with
//! [`Store::update_domain_state`] and [`Store::set_domain_cert`].
use std::time::Duration;

use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set, TransactionTrait};

use super::Store;
use super::users::lock_user;
use crate::db::entity::{domain, hosting};
use crate::db::{is_unique_violation, now_ms};
use crate::domain_name::{DomainError, DomainName};
use crate::store::HostingRow;
use crate::{Error, Result};
use vmw_types::{DomainMethod, DomainState};

pub use domain::Model as DomainRow;

/// The states the checker looks at when their `next_check_at` has come: a name waiting for its
/// DNS record or after a failure, one verified that needs its certificate, an issuance or a
/// renewal to take up again (a crash in the middle leaves it so).
pub const CHECKED_STATES: &[DomainState] = &[
    DomainState::WaitingDns,
    DomainState::Failed,
    DomainState::Verified,
    DomainState::Issuing,
    DomainState::Renewing,
    // At its certificate's renewal time.
    DomainState::Active,
];

impl Store {
    /// Adds `name` to hosting `hosting_id` of `user_id`, `waiting_dns`, first checked at
    /// `next_check_at` (ms). Refused when the user has `limit` domains already (over all their
    /// sites; counted under the user's row lock, so two adds at once cannot both pass), or when
    /// anyone has added the name (the unique index decides, across replicas).
    pub async fn insert_domain(&self, hosting_id: i32, user_id: i32, name: &DomainName, limit: u32, next_check_at: i64) -> Result<DomainRow> {
        let txn = self.db().begin().await?;
        lock_user(&txn, user_id).await?;
        let mine = domain::Entity::find().filter(domain::Column::UserId.eq(user_id)).count(&txn).await?;
        if mine >= u64::from(limit) {
            return Err(DomainError::Limit(limit).into());
        }
        let now = now_ms();
        let row = domain::ActiveModel {
            hosting_id: Set(hosting_id),
            user_id: Set(user_id),
            name: Set(name.as_str().to_owned()),
            state: Set(DomainState::WaitingDns),
            method: Set(None),
            last_error: Set(None),
            attempts: Set(0),
            next_check_at: Set(Some(next_check_at)),
            verified_at: Set(None),
            cert_not_after: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map_err(|e| if is_unique_violation(&e) { Error::from(DomainError::Taken(name.display())) } else { e.into() })?;
        txn.commit().await?;
        Ok(row)
    }

    /// Hosting `hosting_id`'s domains, oldest first.
    pub async fn domains_of_hosting(&self, hosting_id: i32) -> Result<Vec<DomainRow>> {
        Ok(domain::Entity::find()
            .filter(domain::Column::HostingId.eq(hosting_id))
            .order_by_asc(domain::Column::Id)
            .all(self.db())
            .await?)
    }

    /// Hosting `hosting_id`'s domains that nginx routes (ownership proven), oldest first.
    pub async fn routed_domains_of_hosting(&self, hosting_id: i32) -> Result<Vec<DomainRow>> {
        Ok(domain::Entity::find()
            .filter(domain::Column::HostingId.eq(hosting_id))
            // A failed issuance of a verified name keeps its HTTP route (and the CA reaches it).
            .filter(
                Condition::any()
                    .add(domain::Column::State.is_in(DomainState::ROUTED.iter().copied()))
                    .add(Condition::all().add(domain::Column::State.eq(DomainState::Failed)).add(domain::Column::VerifiedAt.is_not_null())),
            )
            .order_by_asc(domain::Column::Id)
            .all(self.db())
            .await?)
    }

    pub async fn domain(&self, id: i32) -> Result<Option<DomainRow>> {
        Ok(domain::Entity::find_by_id(id).one(self.db()).await?)
    }

    /// A domain by its ASCII name (the HTTP-01 responder and the checker look names up).
    pub async fn domain_by_name(&self, ascii_name: &str) -> Result<Option<DomainRow>> {
        Ok(domain::Entity::find().filter(domain::Column::Name.eq(ascii_name)).one(self.db()).await?)
    }

    /// How many domains a user has over all their sites.
    pub async fn domain_count_for_user(&self, user_id: i32) -> Result<u64> {
        Ok(domain::Entity::find().filter(domain::Column::UserId.eq(user_id)).count(self.db()).await?)
    }

    /// The checker's verdict on domain `id`: its state, how ownership was proven, why it failed
    /// (None clears it), when to look again, and the failures in a row. The first time it
    /// reaches a routed state, `verified_at` is set. false when the row is gone (removed
    /// meanwhile: the caller drops its work).
    pub async fn update_domain_state(
        &self,
        id: i32,
        state: DomainState,
        method: Option<DomainMethod>,
        last_error: Option<String>,
        next_check_at: Option<i64>,
        attempts: i32,
    ) -> Result<bool> {
        let now = now_ms();
        let mut q = domain::Entity::update_many()
            .col_expr(domain::Column::State, Expr::value(state))
            .col_expr(domain::Column::Method, Expr::value(method))
            .col_expr(domain::Column::LastError, Expr::value(last_error))
            .col_expr(domain::Column::NextCheckAt, Expr::value(next_check_at))
            .col_expr(domain::Column::Attempts, Expr::value(attempts))
            .col_expr(domain::Column::UpdatedAt, Expr::value(now));
        if state.is_routed() {
            q = q.col_expr(
                domain::Column::VerifiedAt,
                Expr::expr(sea_orm::sea_query::Func::coalesce([Expr::col(domain::Column::VerifiedAt), Expr::value(now)])),
            );
        }
        let res = q.filter(domain::Column::Id.eq(id)).exec(self.db()).await?;
        Ok(res.rows_affected > 0)
    }

    /// Domain `id`'s certificate expiry (ms; None: it has none).
    pub async fn set_domain_cert(&self, id: i32, not_after: Option<i64>) -> Result<bool> {
        let res = domain::Entity::update_many()
            .col_expr(domain::Column::CertNotAfter, Expr::value(not_after))
            .col_expr(domain::Column::UpdatedAt, Expr::value(now_ms()))
            .filter(domain::Column::Id.eq(id))
            .exec(self.db())
            .await?;
        Ok(res.rows_affected > 0)
    }

    /// Look at domain `id` at `at` (ms): the owner's "Check now".
    pub async fn set_domain_next_check(&self, id: i32, at: i64) -> Result<bool> {
        let res = domain::Entity::update_many()
            .col_expr(domain::Column::NextCheckAt, Expr::value(Some(at)))
            .col_expr(domain::Column::UpdatedAt, Expr::value(now_ms()))
            .filter(domain::Column::Id.eq(id))
            .exec(self.db())
            .await?;
        Ok(res.rows_affected > 0)
    }

    pub async fn delete_domain(&self, id: i32) -> Result<()> {
        domain::Entity::delete_by_id(id).exec(self.db()).await?;
        Ok(())
    }

    /// Every domain row of hosting `hosting_id` (the hosting is being deleted).
    pub async fn delete_domains_of_hosting(&self, hosting_id: i32) -> Result<()> {
        domain::Entity::delete_many().filter(domain::Column::HostingId.eq(hosting_id)).exec(self.db()).await?;
        Ok(())
    }

    /// The checker's work at `now` (ms), soonest first:
    /// - a domain in one of [`CHECKED_STATES`] whose `next_check_at` has come (NULL: never);
    /// - an `active` one whose certificate expires within `renew_before` of `now`, or that has
    ///   no expiry recorded (it needs one).
    pub async fn domains_due(&self, now: i64, renew_before: Duration) -> Result<Vec<DomainRow>> {
        let renew_at = now.saturating_add(renew_before.as_millis() as i64);
        let checked = Condition::all()
            .add(domain::Column::State.is_in(CHECKED_STATES.iter().copied()))
            .add(domain::Column::NextCheckAt.lte(now));
        let renewal = Condition::all().add(domain::Column::State.eq(DomainState::Active)).add(
            Condition::any().add(domain::Column::CertNotAfter.is_null()).add(domain::Column::CertNotAfter.lte(renew_at)),
        );
        Ok(domain::Entity::find()
            .filter(Condition::any().add(checked).add(renewal))
            .order_by_asc(domain::Column::NextCheckAt)
            .order_by_asc(domain::Column::Id)
            .all(self.db())
            .await?)
    }

    /// The owner's HSTS switch of hosting `id`.
    pub async fn set_hsts(&self, id: i32, on: bool) -> Result<HostingRow> {
        hosting::Entity::update_many()
            .col_expr(hosting::Column::Hsts, Expr::value(on))
            .col_expr(hosting::Column::UpdatedAt, Expr::value(now_ms()))
            .filter(hosting::Column::Id.eq(id))
            .exec(self.db())
            .await?;
        self.require(id).await
    }
}
