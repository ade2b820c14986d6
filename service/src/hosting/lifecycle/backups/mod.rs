//! "Back up now" for a site (issue 31): its files captured (`vm::capture`), sent to the backup
//! repository with restic (`crate::backup`), one row per backup (`store::backups`).
mod repo;

pub(crate) use repo::BackupRepo;
