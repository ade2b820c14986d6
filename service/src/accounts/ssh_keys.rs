//! SSH public keys a user keeps for their hostings: add (parsed, named, no duplicates, at most
//! [`MAX_SSH_KEYS`]), list, pick by ids, delete.
use super::{Accounts, Actor, SshKeyView, short_name};
use crate::domain::SshPublicKey;
use crate::store::ssh_keys::{self as rows, NewSshKey};
use crate::{Error, Result};

const MAX_SSH_KEYS: u64 = 50;

impl Accounts {
    pub async fn add_ssh_key(&self, actor: &Actor, name: &str, public_key: &str) -> Result<SshKeyView> {
        let key = SshPublicKey::parse(public_key)?;
        let name = match name.trim() {
            "" => key.line().split_whitespace().nth(2).unwrap_or(key.kind()).chars().take(64).collect(),
            n => short_name("name", n)?,
        };
        let existing = rows::for_user(&self.db, actor.user_id).await?;
        if let Some(k) = existing.iter().find(|k| k.fingerprint == key.fingerprint()) {
            return Err(Error::conflict(Some("public_key"), format!("you already added this key (as '{}')", k.name)));
        }
        if existing.len() as u64 >= MAX_SSH_KEYS {
            return Err(Error::QuotaExceeded(format!("at most {MAX_SSH_KEYS} SSH keys")));
        }
        let new = NewSshKey {
            user_id: actor.user_id,
            name,
            public_key: key.line().to_owned(),
            fingerprint: key.fingerprint().to_owned(),
        };
        rows::insert(&self.db, new).await?.ok_or_else(|| Error::conflict(Some("public_key"), "you already added this key"))
    }

    pub async fn list_ssh_keys(&self, actor: &Actor) -> Result<Vec<SshKeyView>> {
        rows::list(&self.db, actor.user_id).await
    }

    /// The actor's keys with these ids; NotFound if any id is not theirs.
    pub async fn ssh_keys_by_ids(&self, actor: &Actor, ids: &[i32]) -> Result<Vec<SshKeyView>> {
        let keys = rows::by_ids(&self.db, actor.user_id, ids).await?;
        let mut want: Vec<i32> = ids.to_vec();
        want.sort_unstable();
        want.dedup();
        if keys.len() != want.len() {
            return Err(Error::NotFound("ssh key"));
        }
        Ok(keys)
    }

    pub async fn delete_ssh_key(&self, actor: &Actor, key_id: i32) -> Result<()> {
        if rows::delete(&self.db, actor.user_id, key_id).await? == 0 {
            return Err(Error::NotFound("ssh key"));
        }
        Ok(())
    }
}
