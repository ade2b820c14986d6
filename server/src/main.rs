#![recursion_limit = "512"]
//! vm-webhoster: `serve` (default) runs the web app, REST API, provisioning and nginx;
//! `grant-admin` makes an account an administrator; `restore-node` rebuilds a node from the
//! backup repository.
use clap::Parser;
use server::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    server::telemetry::init(&cli.log_level, cli.log_format);
    if !service::limits::return_large_frees_to_the_os() {
        tracing::debug!("malloc keeps its own mmap threshold (not glibc)");
    }
    match cli.command.clone().unwrap_or(Command::Serve) {
        Command::Serve => {
            match service::limits::raise_open_files() {
                Ok((soft, _)) => tracing::debug!(open_files = soft, "open files limit"),
                Err(err) => tracing::warn!(%err, "could not raise the open files limit"),
            }
            let app = server::Application::build(cli.settings()).await?;
            println!("{}", app.banner());
            app.run_until_stopped().await?;
        }
        Command::GrantAdmin { login } => {
            let db = service::db::connect_and_migrate(&cli.settings().database_url).await?;
            let user = service::accounts::Accounts::new(db).set_admin(&login, true).await?;
            println!("{} ({}) is now an administrator", user.username, user.email);
        }
        Command::RestoreNode { from_repository, state_snapshot, force } => {
            server::restore_node::restore_node(&cli, from_repository, state_snapshot, force).await?;
        }
    }
    Ok(())
}
