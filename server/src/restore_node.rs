//! `vm-webhoster restore-node`: a node rebuilt from the backup repository alone (issue 31,
//! item 5). First the service's state (`service::state_backup`: the database, with every
//! account and its password hash, and the `tls` folder of secrets) from the newest state
//! backup; then every site of this node from its newest backup, started as it was
//! (`HostingService::recover_from_backups`). Then the operator starts the service as usual.
use anyhow::Context;

use crate::config::Cli;
use service::backup::{Restic, SnapshotId};
use service::state_backup::{restore_state, Database};

pub async fn restore_node(cli: &Cli, from: Option<String>, state_snapshot: Option<String>, force: bool) -> anyhow::Result<()> {
    let mut settings = cli.settings();
    if let Some(url) = from {
        settings.service.backup.repository = Some(url);
    }
    let cfg = &settings.service;
    let repo = cfg.backup_repo_settings();
    anyhow::ensure!(
        repo.password_file.is_file(),
        "the backup repository's password file {} is missing: put your copy of it there (or pass --backup-password-file)",
        repo.password_file.display()
    );
    let url = repo.redacted_url();
    let restic = Restic::new(repo).context("the backup repository settings")?;
    std::fs::create_dir_all(&cfg.data_dir)?;

    // 1. The state: into an empty database (never over one with accounts, unless forced).
    let database = Database::parse(&settings.database_url)?;
    let holds_accounts = match sea_orm::Database::connect(&settings.database_url).await {
        Ok(conn) => {
            let holds = Database::holds_accounts(&conn).await;
            let _ = conn.close().await;
            holds
        }
        Err(_) => false,
    };
    let id = state_snapshot.map(SnapshotId::parse).transpose()?;
    println!("Restoring the service's state from {url} ...");
    let state = restore_state(&restic, id.as_ref(), &database, holds_accounts, &cfg.data_dir, force).await?;
    println!("  database and secrets from the state backup {} of {}", state.snapshot.short_id, state.snapshot.time);
    if let Some(aside) = &state.tls_moved_aside {
        println!("  the tls folder that was there is now {}", aside.display());
    }

    // 2. The sites of this node, each from its newest backup.
    let db = service::db::connect_and_migrate(&settings.database_url).await?;
    let report = crate::recover_sites(&settings, db).await?;
    println!("{report}");
    anyhow::ensure!(report.failed.is_empty(), "{} site(s) could not be restored; see above", report.failed.len());
    println!("Done: start the service as usual (make run, or vm-webhoster serve with the same settings).");
    Ok(())
}
