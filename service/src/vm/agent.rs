//! The QEMU guest agent: commands, files written and programs run in a guest, and the
//! service's own calls through it (the clock, a claimed spare's personal files and hostname).
use std::time::{Duration, Instant};

use virt::domain::Domain;

use super::{SeedSpec, VmError, VmManager, VmState, map_state};

/// The QEMU guest agent (warm-pool personalisation). Blocking calls, run on spawn_blocking.
/// Everything the agent answers comes from the guest and is checked, not trusted.
impl VmManager {
    /// Runs `execute` (with `arguments`, if any) through the agent of domain `name`; returns
    /// the answer's `return` value.
    pub(super) fn agent(
        d: &Domain,
        name: &str,
        execute: &'static str,
        arguments: Option<serde_json::Value>,
        timeout_s: i32,
    ) -> Result<serde_json::Value, VmError> {
        let mut cmd = serde_json::json!({ "execute": execute });
        if let Some(a) = arguments {
            cmd["arguments"] = a;
        }
        let out = d
            .qemu_agent_command(&cmd.to_string(), timeout_s, 0)
            .map_err(|source| {
                crate::telemetry::libvirt_error("guest agent command");
                VmError::Agent { domain: name.to_owned(), command: execute, source }
            })?;
        let v: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| VmError::AgentReply { command: execute, problem: format!("not JSON ({e})") })?;
        // Not `v["return"]` by IndexMut: that panics on a non-object, and the guest chooses this.
        match v {
            serde_json::Value::Object(mut m) => Ok(m.remove("return").unwrap_or_default()),
            _ => Err(VmError::AgentReply { command: execute, problem: "not a JSON object".into() }),
        }
    }

    /// Sets the guest clock from the host's (a restored VM's clock is behind by as long as it
    /// was saved). Slow under TCG (the agent also writes the hardware clock): keep it off the
    /// path to a live site.
    pub async fn agent_sync_clock(&self, hosting_id: i32) -> Result<(), VmError> {
        let name = self.domain_name(hosting_id);
        let Some(turn) = self.inner.guest.turn(&name, Duration::from_secs(30)).await else {
            return Err(self.inner.guest.timed_out(&name, "guest-set-time"));
        };
        self.own_guest_blocking(move |c| {
            let _turn = turn;
            let d = Self::existing(c, &name)?;
            // Asleep again, or stopped, by now: its next start sets the clock.
            if map_state(&d, &name)? != VmState::Running {
                return Ok(());
            }
            let now_ns = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64;
            Self::agent(&d, &name, "guest-set-time", Some(serde_json::json!({"time": now_ns})), 30)?;
            Ok(())
        })
        .await
    }

    /// Makes a restored warm spare someone's site through the guest agent, without a shell:
    /// rewrites what the user needs at once, their SSH keys and welcome page
    /// (`SeedSpec::personal_files`). A handful of agent round trips where a script spawning a
    /// dozen processes under TCG took ~1.8 s. The hostname follows once the site is live
    /// ([`VmManager::set_hostname`]).
    pub async fn personalise(&self, hosting_id: i32, seed: &SeedSpec, timeout: Duration) -> Result<(), VmError> {
        seed.validate()?;
        let name = self.domain_name(hosting_id);
        let files = seed.personal_files();
        self.blocking(move |c| {
            let d = Self::existing(c, &name)?;
            Self::agent_wait(&d, &name, Instant::now() + timeout)?;
            Self::agent_write_files(&d, &name, &files)
        })
        .await
    }

    /// A claimed spare's hostname: its files (`SeedSpec::hostname_files`), then `hostname NAME`.
    pub async fn set_hostname(&self, hosting_id: i32, seed: &SeedSpec, timeout: Duration) -> Result<(), VmError> {
        seed.validate()?;
        let name = self.domain_name(hosting_id);
        let (files, hostname) = (seed.hostname_files(), seed.hostname.clone());
        let Some(turn) = self.inner.guest.turn(&name, timeout).await else {
            return Err(self.inner.guest.timed_out(&name, "guest-exec"));
        };
        self.own_guest_blocking(move |c| {
            let _turn = turn;
            let d = Self::existing(c, &name)?;
            let deadline = Instant::now() + timeout;
            Self::agent_write_files(&d, &name, &files)?;
            Self::agent_run(&d, &name, "/usr/bin/hostname", vec![hostname], deadline)
        })
        .await
    }

    /// Waits until the guest agent answers a ping.
    pub(super) fn agent_wait(d: &Domain, name: &str, deadline: Instant) -> Result<(), VmError> {
        loop {
            match Self::agent(d, name, "guest-ping", None, 2) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(VmError::AgentUnresponsive { domain: name.to_owned(), source: Box::new(e) });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Replaces the content of an existing guest file. `w` truncates an existing file and
    /// keeps its owner and mode, but would create a missing one as root with mode 0600 (the
    /// login user could not edit it, sshd could not read it): so check it exists first.
    pub(super) fn agent_write_existing(d: &Domain, name: &str, path: &str, bytes: &[u8]) -> Result<(), VmError> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let in_guest = |e: VmError| VmError::GuestFile { path: path.to_owned(), source: Box::new(e) };
        let open = |mode: &str| -> Result<i64, VmError> {
            let h = Self::agent(d, name, "guest-file-open", Some(serde_json::json!({"path": path, "mode": mode})), 10)
                .map_err(in_guest)?;
            h.as_i64().ok_or_else(|| VmError::AgentReply { command: "guest-file-open", problem: "no file handle".into() })
        };
        let close = |h: i64| Self::agent(d, name, "guest-file-close", Some(serde_json::json!({"handle": h})), 10).map(|_| ());
        close(open("r")?)?;
        let h = open("w")?;
        let written = Self::agent(d, name, "guest-file-write", Some(serde_json::json!({"handle": h, "buf-b64": b64.encode(bytes)})), 10);
        let closed = close(h);
        written.map_err(in_guest)?;
        closed
    }

    /// Writes a seed's guest files (`SeedSpec::personal_files`, `SeedSpec::hostname_files`),
    /// each replacing an existing file ([`Self::agent_write_existing`]).
    fn agent_write_files(d: &Domain, name: &str, files: &[(String, Vec<u8>)]) -> Result<(), VmError> {
        for (path, bytes) in files {
            Self::agent_write_existing(d, name, path, bytes)?;
        }
        Ok(())
    }

    /// Runs `path args...` in the guest and waits for it to exit 0; no agent command waits
    /// past `deadline` (give or take a second).
    pub(super) fn agent_run(d: &Domain, name: &str, path: &str, args: Vec<String>, deadline: Instant) -> Result<(), VmError> {
        let secs = |most: i32| (deadline.saturating_duration_since(Instant::now()).as_secs_f64().ceil() as i32).clamp(1, most);
        let started = Self::agent(
            d,
            name,
            "guest-exec",
            Some(serde_json::json!({"path": path, "arg": args, "capture-output": true})),
            secs(10),
        )?;
        let pid = started["pid"]
            .as_i64()
            .ok_or_else(|| VmError::AgentReply { command: "guest-exec", problem: "no pid".into() })?;
        loop {
            let st = Self::agent(d, name, "guest-exec-status", Some(serde_json::json!({"pid": pid})), secs(5))?;
            if st["exited"].as_bool() == Some(true) {
                let code = st["exitcode"].as_i64().unwrap_or(-1);
                if code == 0 {
                    return Ok(());
                }
                let stderr = st["err-data"].as_str().map(|b| {
                    use base64::Engine;
                    String::from_utf8_lossy(&base64::engine::general_purpose::STANDARD.decode(b).unwrap_or_default()).into_owned()
                });
                return Err(VmError::GuestCommand { path: path.to_owned(), code, stderr: stderr.unwrap_or_default() });
            }
            if Instant::now() >= deadline {
                return Err(VmError::GuestCommandTimeout { path: path.to_owned() });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
