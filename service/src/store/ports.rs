//! Loopback port leases for VM forwards. The (node_id, port) primary key of `port_leases`
//! makes a double allocation impossible, even with several app instances; so does the unique
//! (address, port) index across nodes that share an address (two session daemons on one host).
use std::collections::HashSet;
use std::net::{IpAddr, TcpListener};

use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::db::{entity::port_lease, now_ms};
use crate::{Error, Result};

pub struct PortRange {
    pub base: u16,
    pub len: u16,
}

/// Leases the lowest free port of `range` to `hosting_id`. A port the host already uses
/// (another program listening) is skipped, so `virsh start` cannot fail on it.
pub async fn lease(
    db: &impl ConnectionTrait,
    node_id: i32,
    hosting_id: i32,
    purpose: &str,
    range: &PortRange,
    bind: IpAddr,
) -> Result<u16> {
    let address = bind.to_string();
    let taken: HashSet<i32> = port_lease::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(port_lease::Column::NodeId.eq(node_id))
                .add(port_lease::Column::Address.eq(address.as_str())),
        )
        .all(db)
        .await?
        .into_iter()
        .map(|l| l.port)
        .collect();
    let end = range.base.saturating_add(range.len);
    for port in range.base..end {
        if taken.contains(&(port as i32)) || !bindable(bind, port) {
            continue;
        }
        let row = port_lease::ActiveModel {
            node_id: Set(node_id),
            port: Set(port as i32),
            hosting_id: Set(hosting_id),
            purpose: Set(purpose.to_owned()),
            created_at: Set(now_ms()),
            address: Set(Some(address.clone())),
        };
        match row.insert(db).await {
            Ok(_) => return Ok(port),
            // Someone else leased it between our read and our insert: try the next one.
            Err(e) if crate::db::is_unique_violation(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::QuotaExceeded(format!(
        "no free {purpose} port left in {}..{end} on this node",
        range.base
    )))
}

/// An HTTP and an SSH port for `hosting_id`, from the configured ranges.
pub async fn lease_pair(db: &impl ConnectionTrait, node_id: i32, hosting_id: i32, cfg: &crate::ServiceConfig) -> Result<(u16, u16)> {
    let http_range = PortRange { base: cfg.http_port_base, len: cfg.port_range_len };
    let ssh_range = PortRange { base: cfg.ssh_port_base, len: cfg.port_range_len };
    let http = lease(db, node_id, hosting_id, "http", &http_range, cfg.http_forward_bind).await?;
    let ssh = lease(db, node_id, hosting_id, "ssh", &ssh_range, cfg.forward_bind).await?;
    Ok((http, ssh))
}

/// Releases every port held by a hosting. Releasing nothing is fine.
pub async fn release_all(db: &impl ConnectionTrait, hosting_id: i32) -> Result<u64> {
    Ok(port_lease::Entity::delete_many()
        .filter(port_lease::Column::HostingId.eq(hosting_id))
        .exec(db)
        .await?
        .rows_affected)
}

/// Releases the ports `hosting_id` holds on one node (the golden VM's id is 0 on every node).
pub async fn release_on_node(db: &impl ConnectionTrait, node_id: i32, hosting_id: i32) -> Result<u64> {
    Ok(port_lease::Entity::delete_many()
        .filter(port_lease::Column::HostingId.eq(hosting_id))
        .filter(port_lease::Column::NodeId.eq(node_id))
        .exec(db)
        .await?
        .rows_affected)
}

pub async fn leased_by(db: &impl ConnectionTrait, hosting_id: i32) -> Result<Vec<port_lease::Model>> {
    Ok(port_lease::Entity::find().filter(port_lease::Column::HostingId.eq(hosting_id)).all(db).await?)
}

/// Hosting ids holding a port on the node (reconciliation looks for ones without a row).
pub async fn leased_on_node(db: &impl ConnectionTrait, node_id: i32) -> Result<Vec<i32>> {
    let mut ids: Vec<i32> = on_node(db, node_id).await?.into_iter().map(|l| l.hosting_id).collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Every lease on the node.
async fn on_node(db: &impl ConnectionTrait, node_id: i32) -> Result<Vec<port_lease::Model>> {
    Ok(port_lease::Entity::find().filter(port_lease::Column::NodeId.eq(node_id)).all(db).await?)
}

/// Whether a port is free on `ip`; always true for an address of another host (a remote node:
/// its QEMU reports a taken port when it starts).
fn bindable(ip: IpAddr, port: u16) -> bool {
    match TcpListener::bind((ip, port)) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::AddrNotAvailable,
    }
}
