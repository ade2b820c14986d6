//! The nodes: every node's [`Cx`] (`nodes`: the registry, adding, draining and removing
//! nodes), their health, and placement of new sites. The façade asks here which node's `Cx`
//! a call goes to.
//!
//! [`Cx`]: super::cx::Cx
pub(crate) mod add;
pub(crate) mod health;
pub(crate) mod nodes;
pub(crate) mod placement;
pub(crate) mod uri;

pub(crate) use nodes::Cluster;
