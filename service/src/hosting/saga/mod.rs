//! Provisioning as undoable steps (the saga): each unit is declared once with its action and
//! its undo (`units`), orders are lists of units (`orders`), and the runner runs an order,
//! unwinding the finished units in reverse when one fails (`runner`). Units work on a [`Cx`]
//! and the lease of their hosting only. `site` and `start` are what units and operations
//! share: what a hosting row means to the VM and nginx, and making a VM run.
//!
//! [`Cx`]: super::cx::Cx
pub(crate) mod orders;
pub(crate) mod runner;
pub(crate) mod site;
pub(crate) mod start;
pub(crate) mod units;
