//! Who is calling, and who may act on what. The rule is one line: an object belongs to its
//! owner, and administrators may act on anyone's; everything else does not exist for the
//! caller (NotFound, no existence leak), except admin-only actions, which answer Forbidden.
use vmw_types::UserView;

use crate::{Error, Result};

/// Who is calling. Built by the web layer from a session or a bearer token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actor {
    pub user_id: i32,
    pub is_admin: bool,
}

impl Actor {
    /// Whether the actor may see (and act on) what `owner_id` owns: the owner or an admin.
    pub fn may_see(&self, owner_id: i32) -> bool {
        self.is_admin || owner_id == self.user_id
    }

    /// [`Actor::may_see`] for an object that may have no owner (a warm spare): nobody's object
    /// is nobody's to see, administrators' included.
    pub fn may_see_owned(&self, owner_id: Option<i32>) -> bool {
        owner_id.is_some_and(|owner| self.may_see(owner))
    }

    /// Ok for an administrator, Forbidden for anyone else (admin-only actions).
    pub fn require_admin(&self) -> Result<()> {
        if self.is_admin { Ok(()) } else { Err(Error::Forbidden) }
    }
}

/// The caller a user view stands for.
pub trait AsActor {
    fn actor(&self) -> Actor;
}

impl AsActor for UserView {
    fn actor(&self) -> Actor {
        Actor { user_id: self.id, is_admin: self.is_admin }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANN: Actor = Actor { user_id: 1, is_admin: false };
    const ROOT: Actor = Actor { user_id: 9, is_admin: true };

    #[test]
    fn owners_and_admins_may_see_and_nobody_sees_unowned_objects() {
        assert!(ANN.may_see(1));
        assert!(!ANN.may_see(2));
        assert!(ROOT.may_see(1) && ROOT.may_see(9));
        assert!(ANN.may_see_owned(Some(1)));
        assert!(!ANN.may_see_owned(Some(2)));
        assert!(ROOT.may_see_owned(Some(2)));
        assert!(!ANN.may_see_owned(None) && !ROOT.may_see_owned(None), "spares are nobody's");
    }

    #[test]
    fn only_admins_pass_require_admin() {
        assert!(ROOT.require_admin().is_ok());
        assert!(matches!(ANN.require_admin(), Err(Error::Forbidden)));
    }
}
