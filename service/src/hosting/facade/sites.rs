//! What reaches into a site: visits (the waker), its console, its snapshots, its backups.
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::accounts::Actor;
use crate::hosting::cx::Cx;
use crate::hosting::lifecycle::backups::{self, BackupView, BackupsOverview};
use crate::hosting::lifecycle::console::{self, ConsoleSession, validate_console_password};
use crate::hosting::lifecycle::snapshots::{self, SnapshotView};
use crate::hosting::lifecycle::visit::{self, Visit};
use crate::hosting::{HostingService, HostingView};
use crate::Result;

impl HostingService {
    /// A request nginx could not pass to the site's VM (its port refused it) asks here. A
    /// sleeping site is woken; a site that is waking, starting or going to sleep is waited for.
    /// Some(the VM's HTTP forward) once the site runs; None when it is down for another reason
    /// (stopped, failed, gone) or not up within `patience`: the visitor gets the site-down page.
    /// No per-client wake limit: see [`Self::visit_from`].
    pub async fn visit(&self, id: i32, patience: Duration) -> Result<Option<SocketAddr>> {
        Ok(match self.visit_as(id, patience, None).await? {
            Visit::Up(vm) => Some(vm),
            Visit::Down | Visit::TooManyWakes => None,
        })
    }

    /// [`Self::visit`] by a visitor from `client`: a wake counts against the address's limit of
    /// distinct sites woken per minute, and over it the site is not woken.
    pub async fn visit_from(&self, id: i32, patience: Duration, client: IpAddr) -> Result<Visit> {
        self.visit_as(id, patience, Some(client)).await
    }

    /// A visit on the site's own node (which wakes it).
    async fn visit_as(&self, id: i32, patience: Duration, client: Option<IpAddr>) -> Result<Visit> {
        let Some(row) = self.cx.store.get(id).await? else { return Ok(Visit::Down) };
        let Ok(node) = self.cluster.get(row.node_id) else { return Ok(Visit::Down) };
        visit::visit(&node, id, patience, "a visitor", client).await
    }

    /// The last lines of the VM's serial console.
    pub async fn console(&self, actor: &Actor, id: i32, lines: usize) -> Result<Vec<String>> {
        let node = self.live_node_of(actor, id).await?;
        Ok(node.vm.console_tail(id, lines.clamp(1, 2000)).await?)
    }

    /// Attaches to hosting `id`'s console, taking it over from any other holder. The owner or
    /// an admin only (others: not found).
    pub async fn attach_console(&self, actor: &Actor, id: i32) -> Result<ConsoleSession> {
        let node = self.live_node_of(actor, id).await?;
        Ok(console::attach(&node, actor, id))
    }

    /// Sets the password of the guest's login user (for the console), through the guest
    /// agent. The owner or an admin only; the site must be running. Not stored anywhere else.
    pub async fn set_console_password(&self, actor: &Actor, id: i32, password: &str, confirm: &str) -> Result<()> {
        let row = self.cx.store.owned(actor, id).await?;
        validate_console_password(password, confirm)?;
        let node = self.cluster.live(row.node_id)?;
        console::set_password(&node, actor, &row, password).await
    }

    /// The hosting's snapshots, oldest first.
    pub async fn list_snapshots(&self, actor: &Actor, id: i32) -> Result<Vec<SnapshotView>> {
        self.cx.store.owned(actor, id).await?;
        snapshots::list(&self.cx, id).await
    }

    /// Takes a snapshot of a site (disk and memory): a running one pauses for it, a sleeping or
    /// stopped one keeps sleeping (its saved memory is copied). Returns at once with the new
    /// snapshot `taking`. 409 when the site is busy, has no memory (powered off, failed), or
    /// the quota is used up.
    pub async fn take_snapshot(&self, actor: &Actor, id: i32, name: &str) -> Result<SnapshotView> {
        let node = self.snapshot_node(actor, id).await?;
        snapshots::take(&node, actor, id, name).await
    }

    /// Brings the site back to snapshot `sid`, running. Returns at once (the hosting busy).
    pub async fn restore_snapshot(&self, actor: &Actor, id: i32, sid: i32) -> Result<HostingView> {
        let node = self.snapshot_node(actor, id).await?;
        let row = snapshots::restore(&node, actor, id, sid).await?;
        self.with(node).view(&row).await
    }

    /// Deletes a snapshot (its files and row). 409 while the site is busy (a snapshot or a
    /// restore may be using it).
    pub async fn delete_snapshot(&self, actor: &Actor, id: i32, sid: i32) -> Result<()> {
        let node = self.snapshot_node(actor, id).await?;
        snapshots::delete(&node, actor, id, sid).await
    }

    /// How many snapshots a user has (tests and the dashboard's hints).
    pub async fn snapshot_count(&self, user_id: i32) -> Result<u64> {
        snapshots::snapshot_count(&self.cx, user_id).await
    }

    /// The hosting's backups, newest first.
    pub async fn list_backups(&self, actor: &Actor, id: i32) -> Result<Vec<BackupView>> {
        self.cx.store.owned(actor, id).await?;
        backups::list(&self.cx, id).await
    }

    /// Backup `bid` of the hosting.
    pub async fn get_backup(&self, actor: &Actor, id: i32, bid: i32) -> Result<BackupView> {
        self.cx.store.owned(actor, id).await?;
        backups::backup_of(&self.cx, id, bid).await
    }

    /// The hosting page's backups section: the list, the last success, where the repository is.
    pub async fn backups_overview(&self, actor: &Actor, id: i32) -> Result<BackupsOverview> {
        self.cx.store.owned(actor, id).await?;
        backups::overview(&self.cx, id).await
    }

    /// Backs up a site now ("Back up now"): a running one keeps running (`with_memory`: it
    /// pauses a few seconds for a snapshot of its memory), a sleeping or stopped one is not
    /// woken. Returns at once with the backup `running`; 409 while another operation runs.
    pub async fn back_up(&self, actor: &Actor, id: i32, with_memory: bool) -> Result<BackupView> {
        let node = self.snapshot_node(actor, id).await?;
        backups::take(&node, actor, id, with_memory, vmw_types::BackupTrigger::Manual).await
    }

    /// The node of the hosting (its VM, its files): snapshots are taken and restored there.
    /// Another node than this one is refused while it is down.
    async fn snapshot_node(&self, actor: &Actor, id: i32) -> Result<Cx> {
        self.site_node(actor, id).await
    }

    /// The node of the hosting the actor may see (others 404); another node than this one is
    /// refused while it is down.
    pub(super) async fn site_node(&self, actor: &Actor, id: i32) -> Result<Cx> {
        let row = self.cx.store.owned(actor, id).await?;
        if row.node_id == self.node_id() {
            return Ok(self.cx.clone());
        }
        self.cluster.live(row.node_id)
    }
}
