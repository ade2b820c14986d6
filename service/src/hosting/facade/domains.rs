//! A site's custom domains and its HSTS switch (issue #30). The owner or an admin only: others
//! get the hosting's own not-found.
use crate::Result;
use crate::accounts::Actor;
use crate::hosting::lifecycle::domains;
use crate::hosting::saga::site;
use crate::proxy::SiteRoute;
use crate::hosting::{HostingService, HostingView};
use vmw_types::DomainView;

impl HostingService {
    /// Hosting `id`'s custom domains, oldest first.
    pub async fn list_domains(&self, actor: &Actor, id: i32) -> Result<Vec<DomainView>> {
        let site = self.cx.store.owned(actor, id).await?;
        domains::list(&self.cx, &site).await
    }

    /// Adds a custom domain to hosting `id`, `waiting_dns` until its owner's DNS record (a CNAME
    /// to the site, or the TXT record of its view) is seen. Refused: a bad name (422
    /// `invalid_domain`, saying which rule), a name anyone added already (409 `domain_taken`),
    /// over `domains_per_user` of the site's owner (409 `domain_limit`), a site being deleted
    /// (409).
    pub async fn add_domain(&self, actor: &Actor, id: i32, name: &str) -> Result<DomainView> {
        let site = self.cx.store.owned(actor, id).await?;
        domains::add(&self.cx, &site, name).await
    }

    /// Removes domain `did` of hosting `id`: it routes nowhere any more and its certificate is
    /// deleted.
    pub async fn delete_domain(&self, actor: &Actor, id: i32, did: i32) -> Result<()> {
        let site = self.cx.store.owned(actor, id).await?;
        domains::remove(&self.cx, &site, did).await
    }

    /// Looks at domain `did` of hosting `id` now (its DNS record, or its certificate): the
    /// checker is woken. Returns the domain as it is (the check runs in the background).
    pub async fn check_domain_now(&self, actor: &Actor, id: i32, did: i32) -> Result<DomainView> {
        let site = self.cx.store.owned(actor, id).await?;
        domains::check_now(&self.cx, &site, did).await
    }

    /// The owner's HSTS switch: `Strict-Transport-Security` on the site's HTTPS names.
    pub async fn set_hsts(&self, actor: &Actor, id: i32, on: bool) -> Result<HostingView> {
        let site = self.cx.store.owned(actor, id).await?;
        let row = domains::set_hsts(&self.cx, &site, on).await?;
        self.view(&row).await
    }

    /// What wakes the custom domains' checker (a domain added, a "Check now"): it waits on
    /// this between its rounds.
    pub fn domain_checks(&self) -> &tokio::sync::Notify {
        &self.cx.shared.domain_checks
    }

    /// The TXT value that proves `ascii_name` is `user_id`'s (`_vmw-verify.{name}`).
    pub async fn domain_txt_value(&self, user_id: i32, ascii_name: &str) -> Result<String> {
        domains::txt_value(&self.cx, user_id, ascii_name).await
    }

    /// Writes hosting `id`'s route again (its domains' states or certificates changed).
    pub async fn refresh_site_route(&self, id: i32) -> Result<()> {
        domains::refresh_route(&self.cx, id).await
    }

    /// The route nginx is given for hosting `id` (its custom domains and HSTS switch included);
    /// None for a hosting that has none (a spare, or gone).
    pub async fn site_route(&self, id: i32) -> Result<Option<SiteRoute>> {
        match self.cx.store.get(id).await? {
            Some(row) if row.user_id.is_some() && row.http_port.is_some() => Ok(Some(site::site_route(&self.cx, &row).await?)),
            _ => Ok(None),
        }
    }
}
