//! The interactive console of a hosting: who holds it, and keeping it open while the VM is
//! stopped, started, saved or restored.
//!
//! One writer at a time: a hosting's console has one holder. Attaching takes it over: the
//! previous holder is told ([`ConsoleStatus::TakenOver`]) and its session ends, so the newest
//! tab is the one that types (a person who opens the console elsewhere means to use it there;
//! a forgotten tab never locks them out). Within one process the previous holder is told at
//! once; a stream taken by another client (another instance, `virsh console --force`) ends
//! while its VM still runs, and the session ends as taken over too rather than take it back.
//!
//! While attached, the session reopens the libvirt console stream whenever it ends (a stop
//! saves the VM, a start restores it into a new QEMU process with a new pty) and says meanwhile
//! that it waits for the VM.
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::accounts::Actor;
use crate::hosting::cx::Cx;
use vmw_types::{EventKind, EventStatus, HostingState};
use crate::store::HostingRow;
use crate::vm::{InputBudget, Typed, VmConsole, VmError};
use crate::{Error, Result};

/// How often a waiting session looks at the VM again.
const RETRY: Duration = Duration::from_secs(1);
/// How long after a stream ended its VM's state is looked at (libvirt notices QEMU's exit a
/// moment after the console's end).
const STREAM_SETTLE: Duration = Duration::from_millis(1500);
/// How often a connected session looks at the site's state: a stream opened while the VM was
/// being saved may never see its end, so a site that stopped ends the stream from here.
const STATE_CHECK: Duration = Duration::from_secs(2);

/// The shortest and longest console password, in characters.
pub const PASSWORD_MIN: usize = 10;
pub const PASSWORD_MAX: usize = 128;

/// What the person at the terminal sends.
#[derive(Debug)]
pub enum ConsoleInput {
    /// Keystrokes (or pasted text) for the serial line, with their room in the session's
    /// input budget ([`ConsoleSession::budget`]): read no more from the person than fits.
    Data(Typed),
    /// The terminal's size changed.
    Resize { rows: u16, cols: u16 },
}

/// What the session sends to the terminal.
#[derive(Debug)]
pub enum ConsoleOutput {
    /// What the guest wrote on its serial line.
    Data(Vec<u8>),
    Status(ConsoleStatus),
}

/// Where the session stands (each change is sent once).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConsoleStatus {
    /// The console stream is open: typing reaches the VM.
    Connected,
    /// No stream now (the VM is not running, or the console could not be opened); the session
    /// opens it as soon as it can. `reason` is for the person.
    Waiting { reason: String },
    /// Another console of this hosting took over; this session has ended.
    TakenOver,
    /// The hosting is gone (deleted); this session has ended.
    Gone,
}

/// An attached console: read `output`, write `input`. Dropping either ends the session.
pub struct ConsoleSession {
    pub output: mpsc::Receiver<ConsoleOutput>,
    pub input: mpsc::Sender<ConsoleInput>,
    /// Input on its way to the guest is bounded: wait for room here before reading more from
    /// the person (it comes back as the guest reads its serial line), keep reading `output`
    /// meanwhile.
    pub budget: InputBudget,
}

/// Checks a console password: 10 to 128 characters, none of them control characters (the
/// guest agent feeds `user:password` lines to chpasswd).
pub fn validate_console_password(password: &str, confirm: &str) -> Result<()> {
    let n = password.chars().count();
    if n < PASSWORD_MIN {
        return Err(Error::validation("password", format!("Use at least {PASSWORD_MIN} characters.")));
    }
    if n > PASSWORD_MAX {
        return Err(Error::validation("password", format!("Use at most {PASSWORD_MAX} characters.")));
    }
    if password.chars().any(char::is_control) {
        return Err(Error::validation("password", "The password cannot contain control characters (such as a line break)."));
    }
    if password != confirm {
        return Err(Error::validation("confirm", "The two passwords differ."));
    }
    Ok(())
}

/// How a connected stretch of the session ended.
#[derive(Debug)]
enum Ended {
    /// The stream closed (the VM stopped or was saved): wait and reopen.
    Stream,
    TakenOver,
    /// The person left (their side of the session was dropped).
    Left,
}

/// Attaches to hosting `id`'s console (on this node), taking it over from any other holder.
/// The owner or an admin only (others: not found; the caller checked).
pub(crate) fn attach(cx: &Cx, actor: &Actor, id: i32) -> ConsoleSession {
    let (generation, holder) = cx.shared.consoles.take(id);
    let (out_tx, out_rx) = mpsc::channel(64);
    let (in_tx, in_rx) = mpsc::channel(64);
    let cx = cx.clone();
    let actor = *actor;
    tokio::spawn(async move {
        drive_console(&cx, &actor, id, generation, holder, out_tx, in_rx).await;
        cx.shared.consoles.release(id, generation);
    });
    ConsoleSession { output: out_rx, input: in_tx, budget: InputBudget::default() }
}

/// Sets the password of the guest's login user (for the console), through the guest agent.
/// The site must be running. Not stored anywhere else.
pub(crate) async fn set_password(cx: &Cx, actor: &Actor, row: &HostingRow, password: &str) -> Result<()> {
    let id = row.id;
    if row.state != HostingState::Running || row.operation.is_some() {
        return Err(Error::conflict(None, "Start the site first: the password is set inside the running VM."));
    }
    let user = cx.cfg.guest_user.clone();
    let owner = row.user_id.unwrap_or(actor.user_id);
    cx.vm.set_user_password(id, owner, &user, password).await.map_err(|e| {
        tracing::warn!(hosting_id = id, error = %e, "could not set the console password");
        match e {
            VmError::GuestTimeout { waited_secs, .. } => Error::GuestTimeout(format!(
                "The VM did not set the password within {waited_secs} s (its guest agent is busy, stopped or still starting). Nothing was changed here; try again in a moment."
            )),
            _ => Error::Busy("The VM did not take the password (its guest agent may still be starting). Try again in a moment.".into()),
        }
    })?;
    let msg = format!("Console password set for {user}");
    cx.event(row, EventKind::Action, None, EventStatus::Info, msg, None).await;
    Ok(())
}

async fn drive_console(
    cx: &Cx,
    actor: &Actor,
    id: i32,
    generation: u64,
    mut holder: watch::Receiver<u64>,
    out: mpsc::Sender<ConsoleOutput>,
    mut input: mpsc::Receiver<ConsoleInput>,
) {
    let mut last: Option<ConsoleStatus> = None;
    let say = |status: ConsoleStatus, last: &mut Option<ConsoleStatus>| {
        let changed = last.as_ref() != Some(&status);
        *last = Some(status.clone());
        let out = out.clone();
        async move { if changed { out.send(ConsoleOutput::Status(status)).await.is_ok() } else { !out.is_closed() } }
    };
    // The newest size asked for; applied in the guest in the background, the latest wins.
    let (size_tx, size_rx) = watch::channel(None::<(u16, u16)>);
    let resizer = tokio::spawn(resize_loop(cx.clone(), id, size_rx));
    loop {
        if *holder.borrow() != generation {
            let _ = out.send(ConsoleOutput::Status(ConsoleStatus::TakenOver)).await;
            break;
        }
        let row = match cx.store.owned(actor, id).await {
            Ok(row) => Some(row),
            Err(Error::NotFound(_)) => {
                let _ = out.send(ConsoleOutput::Status(ConsoleStatus::Gone)).await;
                break;
            }
            Err(e) => {
                tracing::warn!(hosting_id = id, error = %e, "console: could not read the hosting");
                None
            }
        };
        tracing::debug!(hosting_id = id, generation, state = ?row.as_ref().map(|r| (r.state, r.operation)), "console: looking at the site");
        let waiting = match row.map(|r| (r.state, r.operation)) {
            // An operation (a stop saving the VM, a restore, a snapshot) changes the QEMU
            // process under the stream: open it once the operation is over.
            Some((HostingState::Running, Some(op))) => format!("An operation is under way ({}): the console opens when it is done.", op.as_str().to_lowercase()),
            Some((HostingState::Running, None)) => match cx.vm.open_console(id).await {
                Ok(mut console) => {
                    if !say(ConsoleStatus::Connected, &mut last).await {
                        break;
                    }
                    let ended = bridge(cx, actor, id, &mut console, &out, &mut input, &mut holder, generation, &size_tx).await;
                    tracing::debug!(hosting_id = id, generation, ended = ?ended, "console: the stream's stretch ended");
                    match ended {
                        Ended::Stream if console_taken_elsewhere(cx, actor, id).await => {
                            let _ = out.send(ConsoleOutput::Status(ConsoleStatus::TakenOver)).await;
                            break;
                        }
                        Ended::Stream => "The console closed (the VM stopped); it reopens when the VM runs.".to_owned(),
                        Ended::TakenOver => {
                            let _ = out.send(ConsoleOutput::Status(ConsoleStatus::TakenOver)).await;
                            break;
                        }
                        Ended::Left => break,
                    }
                }
                Err(e) => {
                    tracing::debug!(hosting_id = id, error = %e, "console: could not open the stream");
                    "The VM's console is not available yet; retrying.".to_owned()
                }
            },
            Some((state, _)) => format!("The site is {}: the console opens when it runs.", state.as_str()),
            None => "Retrying.".to_owned(),
        };
        if !say(ConsoleStatus::Waiting { reason: waiting }, &mut last).await {
            break;
        }
        // Wait a moment, or until someone takes over or the person leaves. Typing while
        // there is no stream goes nowhere; a size is kept for the next stream.
        let pause = tokio::time::sleep(RETRY);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                _ = holder.changed() => break,
                msg = input.recv() => match msg {
                    None => { resizer.abort(); return; }
                    Some(ConsoleInput::Resize { rows, cols }) => { size_tx.send_replace(Some(clamp_size(rows, cols))); }
                    Some(ConsoleInput::Data(_)) => {}
                },
            }
        }
    }
    resizer.abort();
}
/// Whether a console stream that just ended was taken by another client (another instance,
/// or `virsh console --force`): the stream of a domain ends when its QEMU process does, so
/// if the VM still runs, with no operation on it, a moment later, someone forced it away.
/// Reopening it would take it back, and the two would take turns forever.
async fn console_taken_elsewhere(cx: &Cx, actor: &Actor, id: i32) -> bool {
    tokio::time::sleep(STREAM_SETTLE).await;
    let Ok(row) = cx.store.owned(actor, id).await else { return false };
    row.operation.is_none()
        && row.state == HostingState::Running
        && matches!(cx.vm.state(id).await, Ok(crate::vm::VmState::Running))
}


/// Moves bytes between an open stream and the session until one of them ends, or the site
/// is no longer running (its stream may not say so: see [`STATE_CHECK`]).
#[allow(clippy::too_many_arguments)]
async fn bridge(
    cx: &Cx,
    actor: &Actor,
    id: i32,
    console: &mut VmConsole,
    out: &mpsc::Sender<ConsoleOutput>,
    input: &mut mpsc::Receiver<ConsoleInput>,
    holder: &mut watch::Receiver<u64>,
    generation: u64,
    size: &watch::Sender<Option<(u16, u16)>>,
) -> Ended {
    let mut check = tokio::time::interval(STATE_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.tick().await;
    loop {
        tokio::select! {
            _ = check.tick() => match cx.store.owned(actor, id).await {
                Ok(row) if row.state == HostingState::Running => {}
                Ok(_) | Err(Error::NotFound(_)) => return Ended::Stream,
                Err(e) => tracing::debug!(hosting_id = id, error = %e, "console: could not read the hosting"),
            },
            data = console.output.recv() => match data {
                Some(bytes) => if out.send(ConsoleOutput::Data(bytes)).await.is_err() { return Ended::Left },
                None => return Ended::Stream,
            },
            msg = input.recv() => match msg {
                None => return Ended::Left,
                Some(ConsoleInput::Data(typed)) => if !console.send(typed) { return Ended::Stream },
                Some(ConsoleInput::Resize { rows, cols }) => { size.send_replace(Some(clamp_size(rows, cols))); }
            },
            changed = holder.changed() => if changed.is_err() || *holder.borrow() != generation { return Ended::TakenOver },
        }
    }
}

fn clamp_size(rows: u16, cols: u16) -> (u16, u16) {
    (rows.clamp(2, 500), cols.clamp(2, 1000))
}

/// Applies the newest terminal size in the guest (stty through the agent), one at a time.
/// A failure (the agent not up yet) is only logged: the terminal works at any size.
async fn resize_loop(cx: Cx, id: i32, mut size: watch::Receiver<Option<(u16, u16)>>) {
    // Whose share of the guest-call slots the resizes take (a spare has nobody's: 0).
    let owner = cx.store.require(id).await.ok().and_then(|r| r.user_id).unwrap_or(0);
    while size.changed().await.is_ok() {
        let Some((rows, cols)) = *size.borrow_and_update() else { continue };
        if let Err(e) = cx.vm.console_resize(id, owner, rows, cols).await {
            tracing::debug!(hosting_id = id, error = %e, "console: could not set the terminal size");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_passwords_are_long_enough_single_line_and_confirmed() {
        assert!(validate_console_password("correct horse", "correct horse").is_ok());
        let field = |r: Result<()>| match r {
            Err(Error::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(validate_console_password("short", "short")), "password");
        assert_eq!(field(validate_console_password("line\nbreak!!", "line\nbreak!!")), "password");
        assert_eq!(field(validate_console_password(&"x".repeat(129), &"x".repeat(129))), "password");
        assert_eq!(field(validate_console_password("correct horse", "correct h0rse")), "confirm");
    }
}
