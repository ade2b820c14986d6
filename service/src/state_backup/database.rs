//! The service's database as a file: a consistent copy of a live one, and that copy loaded
//! into an empty one. SQLite copies with `VACUUM INTO` (SQLite's own online copy, consistent
//! as of one read transaction); PostgreSQL with `pg_dump --format=custom` and `pg_restore`.
//! The PostgreSQL password never reaches an argument vector (visible in `ps`): it goes to the
//! tools as `PGPASSWORD`, the URL they get has it removed.
use std::path::{Path, PathBuf};
use std::process::Stdio;

use sea_orm::{ConnectionTrait, DatabaseConnection};

use super::StateError;

/// Where the service's database is, from its URL.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite { path: PathBuf },
    Postgres { url: url::Url, password: Option<String> },
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite { path } => write!(f, "Sqlite({})", path.display()),
            Self::Postgres { url, .. } => write!(f, "Postgres({url})"),
        }
    }
}

impl Database {
    /// `sqlite://PATH?mode=rwc`, `sqlite:PATH`, `postgres://` or `postgresql://`.
    pub fn parse(database_url: &str) -> Result<Self, StateError> {
        if let Some(rest) = database_url.strip_prefix("sqlite:") {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let path = rest.split('?').next().unwrap_or_default();
            if path.is_empty() || path.starts_with(':') {
                return Err(StateError::UnsupportedUrl("an in-memory SQLite database has no file".into()));
            }
            return Ok(Self::Sqlite { path: PathBuf::from(path) });
        }
        let mut url = url::Url::parse(database_url).map_err(|e| StateError::UnsupportedUrl(format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(StateError::UnsupportedUrl(format!("the scheme '{}' (sqlite and postgres are)", url.scheme())));
        }
        let password = url.password().map(|p| percent_decode(p));
        let _ = url.set_password(None);
        Ok(Self::Postgres { url, password })
    }

    /// The name of the dump in a state backup.
    pub fn dump_name(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "database.sqlite",
            Self::Postgres { .. } => "database.pgdump",
        }
    }

    /// Writes a consistent copy of the live database `db` into `dir` (named [`Self::dump_name`]).
    pub async fn dump(&self, db: &DatabaseConnection, dir: &Path) -> Result<PathBuf, StateError> {
        let dest = dir.join(self.dump_name());
        match self {
            Self::Sqlite { .. } => {
                let _ = tokio::fs::remove_file(&dest).await;
                let lit = dest.to_str().ok_or_else(|| StateError::UnsupportedUrl("a staging path that is not UTF-8".into()))?;
                // A string literal: quotes doubled. The path is the service's own staging folder.
                let sql = format!("VACUUM INTO '{}'", lit.replace('\'', "''"));
                db.execute_unprepared(&sql).await.map_err(StateError::Copy)?;
            }
            Self::Postgres { url, password } => {
                let args = ["--format=custom", "--no-owner", "--no-privileges", "--file"].map(String::from);
                let mut args = args.to_vec();
                args.push(dest.display().to_string());
                args.push(format!("--dbname={url}"));
                run_tool("pg_dump", &args, password.as_deref()).await?;
            }
        }
        Ok(dest)
    }

    /// Whether the database holds any account (a restore refuses to overwrite one that does).
    pub async fn holds_accounts(db: &DatabaseConnection) -> bool {
        use sea_orm::{EntityTrait, PaginatorTrait};
        crate::db::entity::user::Entity::find().count(db).await.map(|n| n > 0).unwrap_or(false)
    }

    /// Loads the dump `file` (made by [`Self::dump`]) as this database. SQLite: the file is
    /// put in place (written beside it, then renamed over it); PostgreSQL: `pg_restore --clean`.
    pub async fn load(&self, file: &Path) -> Result<(), StateError> {
        match self {
            Self::Sqlite { path } => {
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent).await.map_err(|e| StateError::io("creating", parent, e))?;
                }
                let tmp = path.with_extension("restoring");
                tokio::fs::copy(file, &tmp).await.map_err(|e| StateError::io("copying the database to", &tmp, e))?;
                for ext in ["sqlite-wal", "sqlite-shm"] {
                    let _ = tokio::fs::remove_file(path.with_extension(ext)).await;
                }
                tokio::fs::rename(&tmp, path).await.map_err(|e| StateError::io("putting the database at", path, e))?;
            }
            Self::Postgres { url, password } => {
                let args = vec![
                    "--clean".into(),
                    "--if-exists".into(),
                    "--no-owner".into(),
                    "--no-privileges".into(),
                    "--exit-on-error".into(),
                    "--single-transaction".into(),
                    format!("--dbname={url}"),
                    file.display().to_string(),
                ];
                run_tool("pg_restore", &args, password.as_deref()).await?;
            }
        }
        Ok(())
    }
}

/// Runs `pg_dump`/`pg_restore` with `args` (no shell), the password in its environment.
async fn run_tool(tool: &'static str, args: &[String], password: Option<&str>) -> Result<(), StateError> {
    let mut cmd = tokio::process::Command::new(tool);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(1800), cmd.output())
        .await
        .map_err(|_| StateError::Tool { tool, detail: "timed out after 30 minutes".into() })?
        .map_err(|e| StateError::Tool { tool, detail: format!("could not start it ({e}); install postgresql-client") })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: String = err.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("; ");
        return Err(StateError::Tool { tool, detail: format!("{} ({})", tail.trim(), out.status) });
    }
    Ok(())
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("p={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(Database::parse("sqlite:///var/lib/x/db.sqlite?mode=rwc").unwrap(), Database::Sqlite { path: "/var/lib/x/db.sqlite".into() });
        assert_eq!(Database::parse("sqlite://./data/db.sqlite").unwrap(), Database::Sqlite { path: "./data/db.sqlite".into() });
        assert_eq!(Database::parse("sqlite:db.sqlite").unwrap(), Database::Sqlite { path: "db.sqlite".into() });
        assert!(matches!(Database::parse("sqlite::memory:"), Err(StateError::UnsupportedUrl(_))));
        assert!(matches!(Database::parse("mysql://u@h/db"), Err(StateError::UnsupportedUrl(_))));
    }

    #[test]
    fn a_postgres_password_is_kept_out_of_the_url() {
        let Database::Postgres { url, password } = Database::parse("postgres://vmw:s%40cret@127.0.0.1:5433/vmw?sslmode=disable").unwrap() else {
            panic!("postgres")
        };
        assert_eq!(password.as_deref(), Some("s@cret"));
        assert_eq!(url.as_str(), "postgres://vmw@127.0.0.1:5433/vmw?sslmode=disable");
        assert!(!format!("{:?}", Database::parse("postgres://a:hunter2@h/d").unwrap()).contains("hunter2"));
    }
}
