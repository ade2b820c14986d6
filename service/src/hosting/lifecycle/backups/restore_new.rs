//! Restoring a backup as a new site of the same owner (issue 31): a create whose disk is the
//! backup's instead of a clone of the golden.
//!
//! - Checked like a create: the owner's site quota (`max_hostings_per_user`), the slug (given:
//!   the name rule and the same conflicts; default `{old slug}-restored`, or the next free
//!   `-restored-{n}`), the source site's plan and SSH keys; placed by the placement rules
//!   (the node with the most room first), its own ports.
//! - Provisioning: the backup materialised on the chosen node as the new VM's disk (its base
//!   restored there from the repository if the node lacks it), a seed without the `cidata`
//!   label (nothing of the tenant's web root or keys is overwritten by a welcome page: the site
//!   serves the backup's content), then the saga's units: ports, the VM (`restore_warm`: from
//!   the backup's memory, renamed as this site's, in about a second, when the backup has
//!   memory that can be restored on this node; else a cold boot of its disk, the reason told),
//!   new identity at once (machine-id, SSH host keys: `Reidentify`), answers, route, hostname.
//!   The memory window: a site restored from memory offers the backed-up site's SSH host key
//!   (the same owner's) between its restore and `Reidentify`, about a second.
//! - A failure undoes everything made (the units' undos, then the row): the source site is
//!   never touched; the reason is told on the source site's events.
use std::time::Instant;

use super::materialize::materialize;
use super::restore::restore_dir;
use crate::accounts::Actor;
use crate::domain::Slug;
use crate::hosting::cx::Cx;
use crate::hosting::lifecycle::create::slug_conflict;
use crate::hosting::saga::runner::{run_units, scrub};
use crate::hosting::saga::site::{describe, reroute_user_path};
use super::restore_warm::{MEMORY_FILE, RestoreOrBoot};
use crate::hosting::saga::units::{AddRoute, AllocatePorts, CreateDisk, Inherited, Reidentify, SetHostname, Unit, WaitReady};
use crate::store::{BackupRow, HostingRow, Lease, NewHosting};
use crate::vm::move_file;
use crate::{Error, Result};
use vmw_types::{CreateKind, EventKind, EventStatus, HostingState};

/// A restored site's units: its disk and seed are in place before they run (CreateDisk's undo
/// removes them). Restored from memory or booted cold; the identity is made new before anything
/// answers for it.
const RESTORED: &[&dyn Unit] = &[&AllocatePorts, &Inherited(&CreateDisk), &RestoreOrBoot, &Reidentify, &WaitReady, &AddRoute, &SetHostname];

/// The new site's name: `slug` checked like a create's, or the default.
pub(crate) async fn new_slug(cx: &Cx, owner: &Actor, source: &str, slug: Option<&str>) -> Result<String> {
    if let Some(s) = slug.map(str::trim).filter(|s| !s.is_empty()) {
        let slug = Slug::parse(s)?;
        if let Some(why) = slug_conflict(cx, owner, slug.as_ref()).await? {
            return Err(Error::conflict(Some("slug"), why));
        }
        return Ok(slug.as_ref().to_owned());
    }
    let stem = format!("{source}-restored");
    for n in 1..100 {
        let candidate = if n == 1 { stem.clone() } else { format!("{stem}-{n}") };
        if Slug::parse(&candidate).is_ok() && slug_conflict(cx, owner, &candidate).await?.is_none() {
            return Ok(candidate);
        }
    }
    Err(Error::validation("slug", "choose a name for the restored site: the default one is taken"))
}

/// Makes the new site's row on the first of `nodes` (the placement's order) with room, and
/// starts its provisioning there. `source` is the site backed up (`b` one of its backups).
pub(crate) async fn place_restored(nodes: Vec<Cx>, refusal: Option<String>, home: &Cx, source: &HostingRow, b: BackupRow, slug: Option<&str>) -> Result<HostingRow> {
    let owner_id = source.user_id.ok_or(Error::NotFound("hosting"))?;
    let owner = Actor { user_id: owner_id, is_admin: false };
    let slug = new_slug(home, &owner, &source.slug, slug).await?;
    if nodes.is_empty() {
        let why = refusal.unwrap_or_else(|| "no server takes new sites now (every node is drained or unreachable); try again later".to_owned());
        return Err(Error::NodeFull(why));
    }
    let mut last = None;
    for node in nodes {
        let new = NewHosting {
            user_id: owner_id,
            slug: &slug,
            plan: &source.plan,
            keys_json: &source.ssh_keys,
            max_per_user: node.cfg.max_hostings_per_user,
            fresh: CreateKind::Cold,
            capacity: &node.capacity,
        };
        let (row, lease, _) = match node.store.insert_for_user(new, false).await {
            Ok(r) => r,
            Err(Error::NodeFull(why)) => {
                last = Some(why);
                continue;
            }
            Err(e) => return Err(e),
        };
        let msg = format!("Hosting '{slug}' queued: restoring backup {} of '{}'", b.id, source.slug);
        node.event(&row, EventKind::State, None, EventStatus::Queued, msg, None).await;
        home.event(source, EventKind::Action, None, EventStatus::Started, format!("Restoring backup {} as the new site '{slug}'", b.id), None).await;
        tracing::info!(hosting_id = row.id, source = source.id, backup_id = b.id, node = %node.cfg.node_name, "placed a site restored from a backup");
        let (home, source) = (home.clone(), source.clone());
        tokio::spawn(async move {
            if let Err(err) = run_restore_new(&node, &home, lease, &source, b).await {
                tracing::error!(%err, "restoring a backup as a new site failed");
            }
        });
        return Ok(row);
    }
    Err(Error::NodeFull(last.unwrap_or_default()))
}

async fn run_restore_new(cx: &Cx, home: &Cx, lease: Lease, source: &HostingRow, b: BackupRow) -> Result<()> {
    let t = Instant::now();
    let id = lease.hosting_id();
    let row = cx.store.begin_provisioning(&lease, CreateKind::Cold).await?;
    let msg = format!("Provisioning from backup {} of '{}'", b.id, source.slug);
    cx.event(&row, EventKind::State, None, EventStatus::Provisioning, msg, None).await;
    let made = async {
        let dir = restore_dir(cx, b.id, id);
        let _ = tokio::fs::remove_dir_all(&dir).await;
        tokio::fs::create_dir_all(&dir).await.map_err(|e| Error::internal(format!("creating {}: {e}", dir.display())))?;
        let (row2, cx2) = (row.clone(), cx.clone());
        let m = materialize(cx, &b, &dir, move |msg| {
            let (row, cx) = (row2.clone(), cx2.clone());
            tokio::spawn(async move { cx.event(&row, EventKind::Action, None, EventStatus::Info, msg, None).await });
        })
        .await;
        let placed = async {
            let m = m?;
            move_file(&m.disk, &cx.vm.vm_dir(id).join("disk.qcow2")).await?;
            if let Some(mem) = &m.memory {
                move_file(mem, &cx.vm.vm_dir(id).join(MEMORY_FILE)).await?;
            }
            cx.vm.write_inert_seed(id).await?;
            Ok::<_, Error>(m.memory.is_some())
        }
        .await;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        let warm = placed?;
        if b.with_memory && !warm {
            let why = "the backup's memory cannot be restored on this node (its base disk is not where it was when the backup was taken): booting its disk instead (slower)";
            cx.event(&row, EventKind::Action, None, EventStatus::Info, why.to_owned(), None).await;
        }
        cx.event(&row, EventKind::Action, None, EventStatus::Succeeded, format!("Backup {} downloaded as the site's disk", b.id), None).await;
        run_units(cx, &row, &lease, RESTORED, true).await.map_err(|f| Error::internal(f.reason()))
    }
    .await;
    match made {
        Ok(()) => {
            let secs = t.elapsed().as_secs_f64();
            let row = cx.store.finish(&lease, HostingState::Running, None).await?;
            let msg = format!("Site is live, restored from backup {} of '{}' ({secs:.1} s)", b.id, source.slug);
            cx.event(&row, EventKind::State, None, EventStatus::Running, msg, Some(t.elapsed().as_millis() as i64)).await;
            let done = format!("Backup {} restored as the new site '{}' ({secs:.1} s)", b.id, row.slug);
            home.event(source, EventKind::Action, None, EventStatus::Succeeded, done, None).await;
            tracing::info!(hosting_id = id, source = source.id, backup_id = b.id, secs, "backup restored as a new site");
            Ok(())
        }
        Err(e) => {
            let why = describe(&e);
            tracing::warn!(hosting_id = id, source = source.id, backup_id = b.id, %why, "restoring a backup as a new site failed: undoing it");
            let left = scrub(cx, &lease).await;
            if left.is_empty() {
                cx.store.delete(&lease).await?;
            } else {
                let reason = format!("Restoring backup {} failed: {why}; cleanup is incomplete ({})", b.id, left.join("; "));
                cx.store.finish(&lease, HostingState::Failed, Some(reason)).await?;
            }
            let msg = format!("Restoring backup {} as the new site '{}' failed: {why}; nothing of it was kept, this site is untouched", b.id, row.slug);
            home.event(source, EventKind::Action, None, EventStatus::Failed, msg, None).await;
            if let Some(user_id) = row.user_id {
                reroute_user_path(cx, user_id).await;
            }
            Ok(())
        }
    }
}
