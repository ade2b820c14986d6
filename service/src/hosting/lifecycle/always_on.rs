//! The owner's "always on": the site never goes to sleep by itself.
use crate::accounts::Actor;
use crate::hosting::cx::Cx;
use crate::store::HostingRow;
use crate::{Error, Result};

/// Sets hosting `id`'s "always on". At most `always_on_per_user` of a user's sites (admins:
/// no limit).
pub(crate) async fn set_always_on(cx: &Cx, actor: &Actor, id: i32, on: bool) -> Result<HostingRow> {
    let row = cx.store.owned(actor, id).await?;
    if on && !row.always_on && !actor.is_admin {
        let limit = cx.cfg.always_on_per_user;
        let row = cx.store.set_always_on_within(id, row.user_id.unwrap_or(actor.user_id), limit).await?;
        return row.ok_or_else(|| {
            Error::conflict(Some("always_on"), format!("at most {limit} of your sites may be always on; turn it off on another one first"))
        });
    }
    cx.store.set_always_on(id, on).await
}
