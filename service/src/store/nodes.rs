//! The node rows: one per hypervisor (the node of the app's settings, and the ones an
//! administrator added), with their limits, address, drain flag and domain prefix.
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait};

use super::Store;
use crate::db::entity::{node, port_lease};
use crate::db::now_ms;
use crate::{Error, Result};

pub use node::Model as NodeRow;

impl Store {
    /// The row of the node of the app's settings, by its name: made when missing (with the
    /// host's memory, `memory_mib()`), its libvirt URI updated when it changed. Returns its id.
    pub async fn ensure_node(db: &DatabaseConnection, name: &str, libvirt_uri: &str, memory_mib: impl FnOnce() -> i64) -> Result<i32> {
        if let Some(n) = node::Entity::find().filter(node::Column::Name.eq(name)).one(db).await? {
            if n.libvirt_uri != libvirt_uri {
                let mut am: node::ActiveModel = n.clone().into();
                am.libvirt_uri = Set(libvirt_uri.to_owned());
                am.update(db).await?;
            }
            return Ok(n.id);
        }
        let row = node::ActiveModel {
            name: Set(name.to_owned()),
            libvirt_uri: Set(libvirt_uri.to_owned()),
            memory_mib: Set(memory_mib()),
            created_at: Set(now_ms()),
            ..Default::default()
        };
        Ok(row.insert(db).await?.id)
    }

    pub async fn node(&self, id: i32) -> Result<Option<NodeRow>> {
        Ok(node::Entity::find_by_id(id).one(self.db()).await?)
    }

    /// Every node row (drained and added ones too).
    pub async fn all_nodes(&self) -> Result<Vec<NodeRow>> {
        Ok(node::Entity::find().all(self.db()).await?)
    }

    /// The nodes an administrator added, oldest first.
    pub async fn added_nodes(&self) -> Result<Vec<NodeRow>> {
        Ok(node::Entity::find().filter(node::Column::Added.eq(true)).order_by_asc(node::Column::Id).all(self.db()).await?)
    }

    /// A node that has this name or this libvirt URI.
    pub async fn node_named_or_at(&self, name: &str, libvirt_uri: &str) -> Result<Option<NodeRow>> {
        Ok(node::Entity::find()
            .filter(sea_orm::Condition::any().add(node::Column::Name.eq(name)).add(node::Column::LibvirtUri.eq(libvirt_uri)))
            .one(self.db())
            .await?)
    }

    /// Stores an added node (`new`: its id, creation time and domain prefix are the store's),
    /// with its domain prefix `{prefix}n{id}-` (its own), in one transaction.
    pub async fn insert_node(&self, new: NodeRow, prefix: &str) -> Result<NodeRow> {
        let txn = self.db().begin().await?;
        let row = node::ActiveModel {
            name: Set(new.name),
            libvirt_uri: Set(new.libvirt_uri),
            memory_mib: Set(new.memory_mib),
            disk_gib: Set(new.disk_gib),
            address: Set(new.address),
            drained: Set(new.drained),
            added: Set(new.added),
            created_at: Set(now_ms()),
            identity: Set(new.identity),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map_err(|e| if crate::db::is_unique_violation(&e) { Error::conflict(Some("name"), "a node of this name exists") } else { e.into() })?;
        let prefix = format!("{prefix}n{}-", row.id);
        let mut am: node::ActiveModel = row.into();
        am.domain_prefix = Set(Some(prefix));
        let row = am.update(&txn).await?;
        txn.commit().await?;
        Ok(row)
    }

    /// Drains node `id` (no new sites or spares go there) or takes it back.
    pub async fn set_node_drained(&self, id: i32, drained: bool) -> Result<()> {
        let n = node::Entity::find_by_id(id).one(self.db()).await?.ok_or(Error::NotFound("node"))?;
        let mut am: node::ActiveModel = n.into();
        am.drained = Set(drained);
        am.update(self.db()).await?;
        Ok(())
    }

    /// Removes node `id`'s row and the port leases left on it (its hostings are gone).
    pub async fn delete_node(&self, id: i32) -> Result<()> {
        port_lease::Entity::delete_many().filter(port_lease::Column::NodeId.eq(id)).exec(self.db()).await?;
        node::Entity::delete_by_id(id).exec(self.db()).await?;
        Ok(())
    }
}
