//! The orders: which units a create, a spare or a scrub runs, in order (data, not code).
use super::units::*;

/// A cold create: boot from the image.
pub(crate) const COLD: &[&dyn Unit] =
    &[&AllocatePorts, &CreateDisk, &WriteSeed, &DefineDomain, &StartVm, &WaitReady, &AddRoute];

/// The making of a warm spare: a cold boot without a route, then saved to disk.
pub(crate) const SPARE: &[&dyn Unit] =
    &[&AllocatePorts, &CreateDisk, &WriteSeed, &DefineDomain, &StartVm, &WaitReady, &SaveSpare];

/// A create that claimed a spare: what the spare was made with is inherited (nothing to do,
/// but undone on failure like the rest), then it is resumed or restored and made the user's.
/// Readiness checks only what changed: the spare answered HTTP and SSH before it waited, and
/// the route is checked through nginx.
pub(crate) const WARM: &[&dyn Unit] = &[
    &Inherited(&AllocatePorts),
    &Inherited(&CreateDisk),
    &Inherited(&DefineDomain),
    &StartVm,
    &Personalise,
    &AddRoute,
    &SetHostname,
];

/// A create when no spare is ready: a clone of the golden snapshot. The site is live once its
/// route is published; sshd starts after the clone has its own host keys.
pub(crate) const CLONE: &[&dyn Unit] = &[&AllocatePorts, &CloneVm, &Personalise, &AddRoute, &SetHostname, &Reidentify];

/// A spare made as a clone of the golden snapshot, then saved to disk or paused in RAM.
pub(crate) const SPARE_CLONE: &[&dyn Unit] = &[&AllocatePorts, &CloneVm, &Reidentify, &WaitReady, &SaveSpare];
pub(crate) const SPARE_CLONE_PAUSED: &[&dyn Unit] = &[&AllocatePorts, &CloneVm, &Reidentify, &WaitReady, &PauseSpare];
/// A spare booted cold (no golden snapshot of its plan), paused in RAM.
pub(crate) const SPARE_PAUSED: &[&dyn Unit] =
    &[&AllocatePorts, &CreateDisk, &WriteSeed, &DefineDomain, &StartVm, &WaitReady, &PauseSpare];

/// The order a create of `kind` runs.
pub(crate) fn order_of(kind: vmw_types::CreateKind) -> &'static [&'static dyn Unit] {
    match kind {
        vmw_types::CreateKind::Cold => COLD,
        vmw_types::CreateKind::Clone => CLONE,
        vmw_types::CreateKind::Warm => WARM,
    }
}

/// Whatever a hosting may hold, whatever its progress: undone in reverse (cleanup after a
/// crash, delete, a spare that lost its saved state). A clone holds what a cold boot does.
pub(crate) const EVERYTHING: &[&dyn Unit] = COLD;

#[cfg(test)]
mod tests {
    use super::*;
    use vmw_types::Step;

    fn steps(order: &[&dyn Unit]) -> Vec<Step> {
        order.iter().map(|u| u.step()).collect()
    }

    fn pos(order: &[&dyn Unit], step: Step) -> usize {
        steps(order).iter().position(|s| *s == step).unwrap_or_else(|| panic!("{step:?} not in {:?}", steps(order)))
    }

    #[test]
    fn sites_are_published_only_once_the_vm_answers_and_is_theirs() {
        assert_eq!(steps(COLD).last(), Some(&Step::AddRoute));
        assert!(pos(COLD, Step::WaitReady) < pos(COLD, Step::AddRoute));
        // A claimed spare answered before it was saved; the route check goes through nginx.
        assert_eq!(steps(WARM).last(), Some(&Step::SetHostname));
        assert!(pos(WARM, Step::WriteSeed) < pos(WARM, Step::AddRoute), "the user's page before the route");
        // The hostname can wait until the site is live.
        assert!(pos(WARM, Step::AddRoute) < pos(WARM, Step::SetHostname));
        assert!(pos(CLONE, Step::AddRoute) < pos(CLONE, Step::SetHostname));
        // A clone serves the user's page before its route; SSH comes once its host keys are its own.
        assert!(pos(CLONE, Step::WriteSeed) < pos(CLONE, Step::AddRoute));
        assert_eq!(steps(CLONE).last(), Some(&Step::Reidentify));
        // Spares are never routed, and are their own before they are saved.
        for spare in [SPARE, SPARE_CLONE, SPARE_PAUSED, SPARE_CLONE_PAUSED] {
            assert!(!steps(spare).contains(&Step::AddRoute));
            assert!(matches!(steps(spare).last(), Some(Step::SaveSpare | Step::PauseSpare)));
        }
        assert!(pos(SPARE_CLONE, Step::Reidentify) < pos(SPARE_CLONE, Step::WaitReady));
    }

    #[test]
    fn everything_covers_every_step_that_makes_something() {
        let all = steps(EVERYTHING);
        for order in [COLD, WARM, SPARE, CLONE, SPARE_CLONE, SPARE_PAUSED, SPARE_CLONE_PAUSED] {
            for s in steps(order) {
                // A clone is a folder and a domain (CreateDisk's and DefineDomain's undos); a
                // reidentified or saved VM holds nothing outside itself.
                let made_of_others =
                    matches!(s, Step::CloneVm | Step::Reidentify | Step::SetHostname | Step::SaveSpare | Step::PauseSpare);
                assert!(all.contains(&s) || made_of_others, "{s:?} is not scrubbed");
            }
        }
        assert!(all.contains(&Step::CreateDisk) && all.contains(&Step::DefineDomain));
    }
}
