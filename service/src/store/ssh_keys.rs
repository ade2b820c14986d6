//! The `ssh_keys` table: the public keys a user keeps for their hostings.
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use vmw_types::SshKeyView;

use crate::db::entity::ssh_key;
use crate::db::{is_unique_violation, now_ms};
use crate::Result;

pub use ssh_key::Model as SshKeyRow;

impl From<SshKeyRow> for SshKeyView {
    fn from(k: SshKeyRow) -> Self {
        Self { id: k.id, name: k.name, fingerprint: k.fingerprint, public_key: k.public_key, created_at: k.created_at }
    }
}

/// A key to store (already parsed: `public_key` is its one-line form).
pub struct NewSshKey {
    pub user_id: i32,
    pub name: String,
    pub public_key: String,
    pub fingerprint: String,
}

/// Every key of the user, in no particular order.
pub async fn for_user(conn: &impl ConnectionTrait, user_id: i32) -> Result<Vec<SshKeyRow>> {
    Ok(ssh_key::Entity::find().filter(ssh_key::Column::UserId.eq(user_id)).all(conn).await?)
}

/// Inserts the key; `None` if the user already has it (a unique violation).
pub async fn insert(conn: &impl ConnectionTrait, new: NewSshKey) -> Result<Option<SshKeyView>> {
    let row = ssh_key::ActiveModel {
        user_id: Set(new.user_id),
        name: Set(new.name),
        public_key: Set(new.public_key),
        fingerprint: Set(new.fingerprint),
        created_at: Set(now_ms()),
        ..Default::default()
    };
    match row.insert(conn).await {
        Ok(k) => Ok(Some(k.into())),
        Err(e) if is_unique_violation(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The user's keys, oldest first.
pub async fn list(conn: &impl ConnectionTrait, user_id: i32) -> Result<Vec<SshKeyView>> {
    Ok(ssh_key::Entity::find()
        .filter(ssh_key::Column::UserId.eq(user_id))
        .order_by_asc(ssh_key::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(SshKeyView::from)
        .collect())
}

/// The user's keys among `ids` (others' ids are left out).
pub async fn by_ids(conn: &impl ConnectionTrait, user_id: i32, ids: &[i32]) -> Result<Vec<SshKeyView>> {
    Ok(ssh_key::Entity::find()
        .filter(ssh_key::Column::UserId.eq(user_id))
        .filter(ssh_key::Column::Id.is_in(ids.iter().copied()))
        .all(conn)
        .await?
        .into_iter()
        .map(SshKeyView::from)
        .collect())
}

/// Deletes the user's key `key_id`; how many rows went (0 or 1).
pub async fn delete(conn: &impl ConnectionTrait, user_id: i32, key_id: i32) -> Result<u64> {
    Ok(ssh_key::Entity::delete_many()
        .filter(ssh_key::Column::Id.eq(key_id))
        .filter(ssh_key::Column::UserId.eq(user_id))
        .exec(conn)
        .await?
        .rows_affected)
}

/// Deletes every key of the user.
pub async fn delete_for_user(conn: &impl ConnectionTrait, user_id: i32) -> Result<()> {
    ssh_key::Entity::delete_many().filter(ssh_key::Column::UserId.eq(user_id)).exec(conn).await?;
    Ok(())
}
