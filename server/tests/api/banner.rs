//! The real binary tells the operator, once it listens, where to open it and (while nobody is
//! an administrator) how to become one; `grant-admin` does what the banner says.
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_vm-webhoster");

/// Starts `vm-webhoster serve` on a free port with this data dir; returns it and its banner.
async fn serve(data: &std::path::Path) -> (Child, Vec<String>) {
    let mut child = Command::new(BIN)
        .args(["serve", "--no-libvirt", "--listen", "127.0.0.1:0", "--log-level", "warn", "--data-dir"])
        .arg(data)
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    let read = async {
        while let Some(l) = lines.next_line().await.unwrap() {
            let ready = l.starts_with("==> vm-webhoster is ready");
            banner.push(l);
            if ready {
                // The admin hint, if any, is printed with it.
                if let Ok(Ok(Some(l))) = tokio::time::timeout(Duration::from_millis(300), lines.next_line()).await {
                    banner.push(l);
                }
                return;
            }
        }
        panic!("the server exited without a banner");
    };
    tokio::time::timeout(Duration::from_secs(60), read).await.expect("a banner within 60 s");
    (child, banner)
}

fn url_in(line: &str) -> String {
    line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_owned()
}

#[tokio::test]
async fn the_server_prints_where_to_open_it_and_how_to_become_admin() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, banner) = serve(data.path()).await;
    let ready = banner.iter().find(|l| l.starts_with("==> vm-webhoster is ready: open http://127.0.0.1:")).expect("the banner");
    let open = url_in(ready);
    assert!(banner.iter().any(|l| l.contains("vm-webhoster grant-admin") && l.contains("--first-user-admin")), "{banner:?}");
    // The URL it prints is the one that answers.
    let r = reqwest::Client::new()
        .post(format!("{open}api/v1/auth/register"))
        .json(&serde_json::json!({"email": "op@example.com", "password": "correct horse battery", "username": "operator"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    child.kill().await.unwrap();

    let out = std::process::Command::new(BIN)
        .args(["grant-admin", "operator", "--data-dir"])
        .arg(data.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("operator (op@example.com) is now an administrator"));

    // With an administrator, the banner only says where to open it.
    let (mut child, banner) = serve(data.path()).await;
    assert!(banner.iter().any(|l| l.starts_with("==> vm-webhoster is ready: open http://127.0.0.1:")), "{banner:?}");
    assert!(!banner.iter().any(|l| l.contains("grant-admin")), "{banner:?}");
    child.kill().await.unwrap();
}
