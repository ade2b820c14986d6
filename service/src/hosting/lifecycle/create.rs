//! A user's create: the plan, the SSH keys and the site name checked, then a row on the first
//! node of the placement that has room, and its provisioning queued (`provision`).
use crate::accounts::{Accounts, Actor};
use crate::config::Plan;
use crate::domain::Slug;
use crate::hosting::cx::Cx;
use crate::store::{HostingRow, NewHosting};
use crate::{Error, Result};
use vmw_types::{CreateKind, EventKind, EventStatus};

use super::provision::{can_clone, spawn_claimed, spawn_fresh};

/// What a user asks for when creating a hosting. Everything is optional: the slug defaults to
/// the username, the plan to the first configured one.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CreateHosting {
    pub slug: Option<String>,
    pub plan: Option<String>,
    /// Ids of the user's saved SSH keys to install.
    #[serde(default)]
    pub ssh_key_ids: Vec<i32>,
    /// Extra OpenSSH public key lines (e.g. sent with the API's create call); validated.
    #[serde(default)]
    pub public_keys: Vec<String>,
}

/// A create request, checked: what the new hosting is made of.
pub(crate) struct Checked {
    pub plan: Plan,
    pub slug: String,
    pub keys_json: String,
}

/// Checks a create request of `actor`: the plan (default: the first), the keys (the chosen
/// saved ones plus any sent, validated, de-duplicated) and the site name (default: the
/// username, or the next free `{username}-{n}`).
pub(crate) async fn check(cx: &Cx, accounts: &Accounts, actor: &Actor, req: CreateHosting) -> Result<Checked> {
    let cfg = &cx.cfg;
    let me = accounts.get_user(actor.user_id).await?;

    let plan = match req.plan.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => cfg
            .plan(p)
            .ok_or_else(|| {
                let names: Vec<_> = cfg.plans.iter().map(|p| p.name.as_str()).collect();
                Error::validation("plan", format!("unknown plan '{p}'; choose one of: {}", names.join(", ")))
            })?
            .clone(),
        None => cfg.plans.first().cloned().ok_or_else(|| Error::internal("no plans configured"))?,
    };

    // Keys: the chosen saved keys plus any sent with the request, validated, de-duplicated.
    let mut keys: Vec<String> = Vec::new();
    if !req.ssh_key_ids.is_empty() {
        for k in accounts.ssh_keys_by_ids(actor, &req.ssh_key_ids).await? {
            keys.push(k.public_key);
        }
    }
    for line in &req.public_keys {
        let k = crate::domain::SshPublicKey::parse(line)?;
        keys.push(k.line().to_owned());
    }
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| seen.insert(k.clone()));

    let slug = match req.slug.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => {
            let slug = Slug::parse(s)?;
            if let Some(why) = slug_conflict(cx, actor, slug.as_ref()).await? {
                return Err(Error::conflict(Some("slug"), why));
            }
            slug.as_ref().to_owned()
        }
        None => default_slug(cx, actor, &me.username).await?,
    };

    let keys_json = serde_json::to_string(&keys).map_err(Error::internal)?;
    Ok(Checked { plan, slug, keys_json })
}

/// Makes the hosting's row on the first of `nodes` (the placement's order) that has room and
/// queues its provisioning there; `refusal` is the placement's reason when none does.
pub(crate) async fn place(nodes: Vec<Cx>, refusal: Option<String>, actor: &Actor, new: &Checked) -> Result<HostingRow> {
    if nodes.is_empty() {
        let why = refusal.unwrap_or_else(|| "no server takes new sites now (every node is drained or unreachable); try again later".to_owned());
        return Err(Error::NodeFull(why));
    }
    let (plan, slug) = (&new.plan, &new.slug);
    let mut last = None;
    for node in nodes {
        let cfg = &node.cfg;
        let row = NewHosting {
            user_id: actor.user_id,
            slug,
            plan: &plan.name,
            keys_json: &new.keys_json,
            max_per_user: cfg.max_hostings_per_user,
            fresh: if can_clone(&node, plan) { CreateKind::Clone } else { CreateKind::Cold },
            capacity: &node.capacity,
        };
        let (row, lease, warm) = match node.store.insert_for_user(row, cfg.pool_size + cfg.pool_paused > 0).await {
            Ok(r) => r,
            Err(Error::NodeFull(why)) => {
                last = Some(why);
                continue;
            }
            Err(e) => return Err(e),
        };
        let how = if warm { ", warm VM" } else { "" };
        let msg = format!("Hosting '{slug}' queued ({} plan{how})", plan.name);
        node.event(&row, EventKind::State, None, EventStatus::Queued, msg, None).await;
        tracing::info!(hosting_id = row.id, node = %node.cfg.node_name, "placed a new site");
        if warm {
            spawn_claimed(&node, lease);
        } else {
            spawn_fresh(&node, lease, &plan.name);
        }
        return Ok(row);
    }
    Err(Error::NodeFull(last.unwrap_or_default()))
}

/// Returns the reason a slug cannot be used by `actor`, if any.
pub(crate) async fn slug_conflict(cx: &Cx, actor: &Actor, slug: &str) -> Result<Option<String>> {
    if cx.store.slug_taken(slug).await? {
        return Ok(Some(format!("the site name '{slug}' is taken")));
    }
    // {slug}.{base-domain} must not look like the dashboard's own host.
    let cfg = &cx.cfg;
    if vmw_types::host_labels(&[&cfg.public_host, &cfg.base_domain]).iter().any(|l| l == slug) {
        return Ok(Some(format!("the site name '{slug}' is reserved (it is this server's own host name)")));
    }
    // A slug equal to another user's username would squat their natural site name.
    if let Some(u) = cx.store.user_id_named(slug).await? {
        if u != actor.user_id {
            return Ok(Some(format!("the site name '{slug}' is reserved for the user of that name")));
        }
    }
    Ok(None)
}

async fn default_slug(cx: &Cx, actor: &Actor, username: &str) -> Result<String> {
    if slug_conflict(cx, actor, username).await?.is_none() && Slug::parse(username).is_ok() {
        return Ok(username.to_owned());
    }
    for n in 2..100 {
        let candidate = format!("{username}-{n}");
        if Slug::parse(&candidate).is_ok() && slug_conflict(cx, actor, &candidate).await?.is_none() {
            return Ok(candidate);
        }
    }
    Err(Error::conflict(Some("slug"), "choose a site name: the default one is taken"))
}
