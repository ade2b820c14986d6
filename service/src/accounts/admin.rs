//! Administration: whether anyone administers the instance, `grant-admin`, listing every
//! account, disabling and enabling accounts.
use super::{Accounts, Actor, UserView};
use crate::store::users::{self as rows, DisabledChange};
use crate::{Error, Result};

impl Accounts {
    /// Whether any account administers the service (the server says how to make one if not).
    pub async fn any_admin(&self) -> Result<bool> {
        rows::any_admin(&self.db).await
    }

    /// For the `grant-admin` command.
    pub async fn set_admin(&self, login: &str, admin: bool) -> Result<UserView> {
        let login = login.trim().to_ascii_lowercase();
        let u = rows::by_login(&self.db, &login).await?.ok_or(Error::NotFound("user"))?;
        Ok(UserView::from(&rows::set_admin(&self.db, u, admin).await?))
    }

    /// Disables (`disabled` true) or enables an account (admin only; Forbidden otherwise). A
    /// disabled account cannot log in, and everything it is signed in with stops at once: its
    /// auth version is bumped (its sessions and event streams end at their next check) and its
    /// tokens are deleted. Enabling lets it log in again; old sessions and tokens stay void.
    /// An administrator cannot disable their own account.
    pub async fn set_disabled(&self, actor: &Actor, user_id: i32, disabled: bool) -> Result<UserView> {
        actor.require_admin()?;
        if disabled && user_id == actor.user_id {
            return Err(Error::conflict(None, "you cannot disable your own account"));
        }
        let u = match rows::set_disabled(&self.db, user_id, disabled).await? {
            DisabledChange::Unchanged(u) => u,
            DisabledChange::Changed(u, Some(tokens_revoked)) => {
                tracing::info!(user_id, by = actor.user_id, tokens_revoked, "account disabled");
                u
            }
            DisabledChange::Changed(u, None) => {
                tracing::info!(user_id, by = actor.user_id, "account enabled");
                u
            }
        };
        Ok(UserView::from(&u))
    }

    pub async fn list_users(&self, actor: &Actor) -> Result<Vec<UserView>> {
        actor.require_admin()?;
        Ok(rows::all(&self.db).await?.iter().map(UserView::from).collect())
    }
}
