//! Restoring a backup (issue 31): where to, as the API's body says it.
use serde::{Deserialize, Serialize};

/// Where a backup is restored: `{"target": "in_place"}` (the site itself; its current state is
/// snapshotted first), `{"target": "new_site", "slug": "optional"}` (a new site of the same
/// owner), `{"target": "node", "node_id": optional}` (the site moves to another node, admins).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "target", rename_all = "snake_case")]
pub enum RestoreTarget {
    InPlace,
    NewSite {
        /// The new site's name; default `{old slug}-restored` (or the next free one).
        #[serde(default)]
        slug: Option<String>,
    },
    Node {
        /// The node to restore onto; default: the placement rules choose.
        #[serde(default)]
        node_id: Option<i32>,
    },
}
