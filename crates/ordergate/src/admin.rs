//! The local control socket: `ordergate admin reload | revoke KEY | kill KEY
//! | sessions`.
//!
//! A Unix domain stream socket created with mode 0600 (the process umask is
//! narrowed around `bind`, so there is no moment when it is wider), served
//! by one thread that is never a reactor. One request per connection: a
//! single text line; the answer is text lines, the last starting `ok` or
//! `error:`. A request that did nothing (a key not in the table, a revoke
//! of a revoked key) is an `error:`, so `ordergate admin` exits non-zero.
//!
//! ```text
//!   reload          re-read the keys file; an invalid file keeps the old table
//!   revoke KEY      the key's sessions end (KEY_REVOKED), every resting order
//!                   of the key is canceled (KEY_REVOKED), whichever session
//!                   entered it; its logons are refused KEY_DISABLED; the
//!                   answer says how many sessions ended and orders were canceled
//!   kill KEY        the kill switch: the same as revoke, journaled as a kill;
//!                   a kill of a key already revoked is still journaled
//!   sessions        each key, its live sessions, whether it is revoked
//! ```
//!
//! Revocations made here last for the rest of the run; a reload cannot bring
//! a revoked key back (edit the file and restart to re-admit a key id).
//!
//! ## Whose socket it is
//!
//! * **Where**: by default `admin.sock` in a private directory
//!   ([`default_socket`]): `$RUNTIME_DIRECTORY` (systemd's
//!   RuntimeDirectory), else `/run/ordergate` for root or its owner, else
//!   `$XDG_RUNTIME_DIR/ordergate`, else `$XDG_STATE_HOME/ordergate` or
//!   `~/.local/state/ordergate`: never a world-writable directory.
//! * **The directory** must belong to the gateway's user or root, and must
//!   not be writable by group or others without the sticky bit: there
//!   anyone could delete the socket and bind their own in its place, and
//!   `ordergate admin` would talk to theirs ([`check_directory`]).
//! * **One gateway per socket**: an existing socket is connected to first.
//!   If something answers, `serve` refuses to start, naming the path and
//!   the answering process's pid (SO_PEERCRED); only a socket nobody
//!   answers on (connection refused: a gateway that died) is replaced. On
//!   stop the file is removed only if it is still the one this gateway
//!   bound.
//! * **Each peer** is checked with SO_PEERCRED: the gateway's own uid or
//!   root, anyone else gets an `error:` line and is counted
//!   (`admin_peers_refused`). The 0600 mode already keeps other users out;
//!   this holds if the mode is widened or a descriptor is passed on.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::constants::ADMIN_SESSIONS_LISTED_MAX;
use crate::gateway::{CONTROL_TIMEOUT, ControlReport, GatewayControl};

/// File name of the default admin socket, in its directory.
pub const SOCKET_NAME: &str = "admin.sock";
/// The default directory for root (and for the unit's user when systemd's
/// RuntimeDirectory made it but the caller has no `$RUNTIME_DIRECTORY`,
/// as `ordergate admin` run by an operator).
pub const RUN_DIR: &str = "/run/ordergate";
/// Longest request line accepted (defined in `constants`).
pub use crate::constants::ADMIN_REQUEST_MAX as REQUEST_MAX;
/// How often the server thread looks at its stop flag.
const POLL: Duration = Duration::from_millis(50);

/// The default admin socket and where its directory came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultSocket {
    pub path: PathBuf,
    /// Which rule chose it, for messages ("$XDG_RUNTIME_DIR", …).
    pub source: &'static str,
    /// Whether `serve` creates the directory (mode 0700) if it is missing
    /// (not `$RUNTIME_DIRECTORY`: systemd makes that one).
    pub create_dir: bool,
}

/// What [`default_socket_from`] looks at: the environment and the user.
#[derive(Clone, Debug, Default)]
pub struct SocketEnv<'a> {
    pub runtime_directory: Option<&'a OsStr>,
    pub xdg_runtime_dir: Option<&'a OsStr>,
    pub xdg_state_home: Option<&'a OsStr>,
    pub home: Option<&'a OsStr>,
    pub euid: u32,
    /// Owner of `/run/ordergate`, if it exists.
    pub run_dir_owner: Option<u32>,
}

/// The default admin socket of this process (`serve` and `ordergate admin`
/// find it the same way): see [`default_socket_from`].
///
/// # Errors
///
/// No private directory is known (see [`default_socket_from`]).
pub fn default_socket() -> Result<DefaultSocket, String> {
    let runtime = std::env::var_os("RUNTIME_DIRECTORY");
    let xdg = std::env::var_os("XDG_RUNTIME_DIR");
    let state = std::env::var_os("XDG_STATE_HOME");
    let home = std::env::var_os("HOME");
    default_socket_from(&SocketEnv {
        runtime_directory: runtime.as_deref(),
        xdg_runtime_dir: xdg.as_deref(),
        xdg_state_home: state.as_deref(),
        home: home.as_deref(),
        euid: crate::sys::effective_uid(),
        run_dir_owner: std::fs::metadata(RUN_DIR).ok().map(|m| m.uid()),
    })
}

/// The first rule that applies, each a directory only its user can write:
///
/// 1. `$RUNTIME_DIRECTORY/admin.sock`: systemd's RuntimeDirectory (the
///    first, if it lists several), made by systemd for the service user.
/// 2. `/run/ordergate/admin.sock` for root, or for the owner of an
///    existing `/run/ordergate` (the unit's user, running `ordergate
///    admin` from a shell).
/// 3. `$XDG_RUNTIME_DIR/ordergate/admin.sock`: the login session's private
///    runtime directory (mode 0700, on tmpfs).
/// 4. `$XDG_STATE_HOME/ordergate/admin.sock`, else
///    `$HOME/.local/state/ordergate/admin.sock`.
///
/// Relative or empty variables are ignored (the XDG rule).
///
/// # Errors
///
/// None of them applies: the message asks for `--admin-socket`.
pub fn default_socket_from(env: &SocketEnv<'_>) -> Result<DefaultSocket, String> {
    let absolute = |v: Option<&OsStr>| {
        v.map(Path::new)
            .filter(|p| p.is_absolute())
            .map(Path::to_path_buf)
    };
    let first = env.runtime_directory.and_then(|v| {
        v.to_str().map_or(Some(PathBuf::from(v)), |s| {
            s.split(':').next().map(PathBuf::from)
        })
    });
    if let Some(dir) = absolute(first.as_deref().map(Path::as_os_str)) {
        return Ok(DefaultSocket {
            path: dir.join(SOCKET_NAME),
            source: "$RUNTIME_DIRECTORY",
            create_dir: false,
        });
    }
    if env.euid == 0 || env.run_dir_owner == Some(env.euid) {
        return Ok(DefaultSocket {
            path: Path::new(RUN_DIR).join(SOCKET_NAME),
            source: RUN_DIR,
            create_dir: env.euid == 0,
        });
    }
    if let Some(dir) = absolute(env.xdg_runtime_dir) {
        return Ok(DefaultSocket {
            path: dir.join("ordergate").join(SOCKET_NAME),
            source: "$XDG_RUNTIME_DIR",
            create_dir: true,
        });
    }
    let state = absolute(env.xdg_state_home)
        .map(|d| (d, "$XDG_STATE_HOME"))
        .or_else(|| absolute(env.home).map(|h| (h.join(".local/state"), "$HOME/.local/state")));
    if let Some((dir, source)) = state {
        return Ok(DefaultSocket {
            path: dir.join("ordergate").join(SOCKET_NAME),
            source,
            create_dir: true,
        });
    }
    Err(
        "no private directory for the admin socket: none of $RUNTIME_DIRECTORY, \
         $XDG_RUNTIME_DIR, $XDG_STATE_HOME, $HOME is set and this user is not root; \
         give --admin-socket PATH in a directory only this user can write"
            .into(),
    )
}

/// Checks the directory an admin socket goes in (`euid`: the gateway's).
/// Returns a warning for a shared directory with the sticky bit (such as
/// `/tmp`), which is allowed: others cannot remove or rename this socket
/// there, but can take its name while the gateway is stopped.
///
/// # Errors
///
/// Why the directory is refused: missing, not a directory, owned by
/// another user (not root), or writable by group or others without the
/// sticky bit (anyone who can write there can delete the socket and bind
/// their own in its place, and `ordergate admin` would talk to theirs).
pub fn check_directory(dir: &Path, euid: u32) -> Result<Option<String>, String> {
    let meta =
        std::fs::metadata(dir).map_err(|e| format!("its directory {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(format!(
            "its directory {} belongs to uid {}, not to this gateway's uid {euid} or root: its \
             owner could replace the socket",
            dir.display(),
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    let shared = mode & 0o022 != 0;
    let sticky = mode & 0o1000 != 0;
    if shared && !sticky {
        return Err(format!(
            "its directory {} is writable by {} (mode {mode:04o}) without the sticky bit: anyone \
             who can write there could delete the socket and bind their own in its place, and \
             `ordergate admin` would talk to theirs; use a private directory (the default) or \
             `chmod go-w {}`",
            dir.display(),
            if mode & 0o002 != 0 {
                "others"
            } else {
                "its group"
            },
            dir.display()
        ));
    }
    Ok(shared.then(|| {
        format!(
            "admin socket directory {} is writable by others (mode {mode:04o}): the sticky bit \
             keeps them from removing the socket while the gateway runs, but any user can take \
             its name while it is stopped; prefer a private directory (the default)",
            dir.display()
        )
    }))
}

/// Whether a peer of uid `peer` may use the admin socket of a gateway
/// running as `own`: the same user, or root.
pub fn peer_allowed(peer: u32, own: u32) -> bool {
    peer == own || peer == 0
}

/// The socket file this gateway bound: removed when dropped, but only if
/// the path still names it (not a file someone put there since).
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && meta.dev() == self.dev
            && meta.ino() == self.ino
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A bound admin socket, checked, not yet served: `serve` binds it before
/// the gateway starts, so a second gateway is refused before it opens a
/// listener or a journal.
pub struct AdminSocket {
    listener: UnixListener,
    file: SocketFile,
    /// A warning about the directory (shared, sticky), to print.
    pub warning: Option<String>,
}

impl AdminSocket {
    /// Binds the default socket ([`default_socket`]), creating its
    /// directory (mode 0700) if the rule says so.
    ///
    /// # Errors
    ///
    /// As [`AdminSocket::bind`], each naming the path; or no default.
    pub fn bind_default() -> std::io::Result<AdminSocket> {
        let default = default_socket().map_err(std::io::Error::other)?;
        if default.create_dir
            && let Some(dir) = default.path.parent()
            && !dir.exists()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!(
                            "cannot create {} (the default from {}): {e}; give --admin-socket PATH",
                            dir.display(),
                            default.source
                        ),
                    )
                })?;
        }
        AdminSocket::bind(&default.path)
    }

    /// Checks the directory ([`check_directory`]) and any file at `path`,
    /// then binds `path` with mode 0600. An existing socket is connected to
    /// first: if anything answers, the bind is refused (`AddrInUse`),
    /// naming its pid; a socket nobody answers on is stale and replaced.
    ///
    /// # Errors
    ///
    /// Each says what is wrong; the caller adds the path.
    pub fn bind(path: &Path) -> std::io::Result<AdminSocket> {
        use std::io::{Error, ErrorKind};
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let warning = check_directory(dir, crate::sys::effective_uid())
            .map_err(|e| Error::new(ErrorKind::PermissionDenied, e))?;
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(Error::other(
                    "it exists and is not a socket; refusing to replace it",
                ));
            }
            match UnixStream::connect(path) {
                Ok(stream) => {
                    let who = match crate::sys::peer_credentials(stream.as_fd()) {
                        Ok(c) => format!(
                            "pid {}, {}",
                            c.pid,
                            crate::sys::process_name(c.pid).unwrap_or_else(|| "?".into())
                        ),
                        Err(e) => format!("pid unknown: {e}"),
                    };
                    return Err(Error::new(
                        ErrorKind::AddrInUse,
                        format!(
                            "a running gateway answers on it ({who}): a second one would take \
                             its admin socket, and `ordergate admin` would reach the wrong \
                             gateway; stop that one, or give this one another --admin-socket"
                        ),
                    ));
                }
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path).map_err(|e| {
                        Error::new(e.kind(), format!("cannot remove the stale socket: {e}"))
                    })?;
                }
                Err(e) => {
                    return Err(Error::new(
                        e.kind(),
                        format!(
                            "it exists and cannot be checked for a running gateway ({e}); \
                             refusing to replace it"
                        ),
                    ));
                }
            }
        }
        // Narrowed around bind so the socket is born 0600.
        let listener = crate::sys::with_umask(0o177, || UnixListener::bind(path))?;
        let meta = std::fs::symlink_metadata(path)?;
        let file = SocketFile {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(AdminSocket {
            listener,
            file,
            warning,
        })
    }

    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// Serves `control` on a thread of its own. `keys_path` is what
    /// `reload` re-reads.
    ///
    /// # Errors
    ///
    /// The thread could not be started.
    pub fn serve(
        self,
        control: GatewayControl,
        keys_path: Option<PathBuf>,
    ) -> std::io::Result<AdminServer> {
        let AdminSocket { listener, file, .. } = self;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let own_uid = crate::sys::effective_uid();
        let thread = std::thread::Builder::new()
            .name("ordergate-admin".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            serve_peer(stream, own_uid, &control, keys_path.as_deref())
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(POLL)
                        }
                        Err(_) => std::thread::sleep(POLL),
                    }
                }
            })?;
        Ok(AdminServer {
            file,
            stop,
            thread: Some(thread),
        })
    }
}

/// A running admin server.
pub struct AdminServer {
    file: SocketFile,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// [`AdminSocket::bind`] then [`AdminSocket::serve`].
    ///
    /// # Errors
    ///
    /// As those.
    pub fn start(
        path: &Path,
        control: GatewayControl,
        keys_path: Option<PathBuf>,
    ) -> std::io::Result<AdminServer> {
        AdminSocket::bind(path)?.serve(control, keys_path)
    }

    pub fn path(&self) -> &Path {
        &self.file.path
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Then `file` removes the socket, if it is still ours.
    }
}

/// One connection: the peer's credentials (SO_PEERCRED), then its
/// request. The request is read even from a refused peer, so that the
/// refusal reaches it (a Unix socket closed with unread data resets the
/// peer's connection, and the answer would be lost).
fn serve_peer(
    stream: UnixStream,
    own_uid: u32,
    control: &GatewayControl,
    keys_path: Option<&Path>,
) {
    let counters = control.admin_counters();
    let _ = stream.set_nonblocking(false);
    let refusal = match crate::sys::peer_credentials(stream.as_fd()) {
        Ok(c) if peer_allowed(c.uid, own_uid) => None,
        Ok(c) => Some(format!(
            "error: uid {} (pid {}) may not use this admin socket: only uid {own_uid} (the \
             gateway's) or root\n",
            c.uid, c.pid
        )),
        Err(e) => Some(format!(
            "error: cannot check who is connecting (SO_PEERCRED): {e}\n"
        )),
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    let mut reader = BufReader::new((&stream).take(REQUEST_MAX as u64));
    let read = reader.read_line(&mut line);
    let answer = match (refusal, read) {
        (Some(refusal), _) => {
            counters.peers_refused.fetch_add(1, Ordering::Relaxed);
            let _ = (&stream).write_all(refusal.as_bytes());
            return;
        }
        // Closed without a byte: another serve checking that this gateway
        // is alive (see `AdminSocket::bind`); nothing to answer.
        (None, Ok(0)) => {
            counters.probes.fetch_add(1, Ordering::Relaxed);
            return;
        }
        (None, Ok(_)) => execute(line.trim(), control, keys_path),
        (None, Err(e)) => format!("error: cannot read the request: {e}\n"),
    };
    if answer.starts_with("error:") {
        counters.requests_refused.fetch_add(1, Ordering::Relaxed);
    }
    let _ = (&stream).write_all(answer.as_bytes());
}

fn sessions(n: u32) -> String {
    format!("{n} session{}", if n == 1 { "" } else { "s" })
}

fn applied(report: &ControlReport) -> String {
    match report.applied_in {
        Some(d) => format!("every reactor switched in {} µs", d.as_micros()),
        None => "WARNING: not every reactor switched within 1 s".into(),
    }
}

/// How many resting orders of the key a revocation canceled.
fn canceled(report: &ControlReport) -> String {
    match report.orders_canceled {
        Some(1) => "1 resting order canceled".into(),
        Some(n) => format!("{n} resting orders canceled"),
        None => "WARNING: not every reactor reported its order sweep within 1 s".into(),
    }
}

/// Runs one request and returns the answer text.
pub fn execute(request: &str, control: &GatewayControl, keys_path: Option<&Path>) -> String {
    let mut words = request.split_whitespace();
    let verb = words.next().unwrap_or("");
    let key = words.next().map(str::parse::<u64>);
    match (verb, key, words.next()) {
        ("reload", None, None) => {
            let Some(path) = keys_path else {
                return "error: this gateway was started without a keys file to reload\n".into();
            };
            match control.reload_file(path) {
                Ok(r) => format!(
                    "ok reloaded {} keys from {} (generation {}); {}\n",
                    r.keys,
                    path.display(),
                    r.epoch,
                    applied(&r)
                ),
                Err(e) => format!("error: reload refused, the old table stays: {e}\n"),
            }
        }
        ("revoke" | "kill", Some(Ok(id)), None) => {
            let result = if verb == "kill" {
                control.kill(id)
            } else {
                control.revoke(id)
            };
            match result {
                Ok(r) if r.already_revoked => format!(
                    "ok killed key {id}: it was already revoked, so 0 sessions ended now (its \
                     sessions ended and their orders were canceled when it was revoked); the \
                     kill is recorded\n"
                ),
                Ok(r) => format!(
                    "ok {} key {id}: {} ended with KEY_REVOKED; {} (generation {}); {}\n",
                    if verb == "kill" { "killed" } else { "revoked" },
                    sessions(r.sessions_ended),
                    canceled(&r),
                    r.epoch,
                    applied(&r)
                ),
                Err(e) => format!("error: {verb} {id}: {e}\n"),
            }
        }
        ("revoke" | "kill", Some(Err(_)) | None, _) => {
            format!("error: {verb} takes one key id (a number)\n")
        }
        ("sessions", None, None) => sessions_listing(control),
        _ => format!(
            "error: unknown request {:?}: use reload, revoke KEY, kill KEY or sessions\n",
            request.chars().take(64).collect::<String>()
        ),
    }
}

/// `sessions`: each key (`key_id sessions revoked`), each followed by its
/// logged-on sessions, one line each:
/// `  session ID reactor R peer ADDR logon RFC3339 in N out N open_orders N`.
/// At most `ADMIN_SESSIONS_LISTED_MAX` session lines; a line says how many
/// more there are, and which reactors did not answer in time.
fn sessions_listing(control: &GatewayControl) -> String {
    use std::fmt::Write as _;
    let (rows, silent) = control.live_sessions();
    let mut out = String::from("key_id sessions revoked\n");
    let mut listed = 0usize;
    let mut list = |out: &mut String, key_id: u64| {
        for r in rows.iter().filter(|r| r.key_id == key_id) {
            if listed == ADMIN_SESSIONS_LISTED_MAX {
                return;
            }
            listed += 1;
            let _ = writeln!(
                out,
                "  session {} reactor {} peer {} logon {} in {} out {} open_orders {}",
                r.session.0,
                r.session.reactor(),
                r.peer,
                crate::journal::rfc3339(r.logon_ns),
                r.msgs_in,
                r.msgs_out,
                r.open_orders
            );
        }
    };
    let keys = control.sessions();
    for &(id, n, revoked) in &keys {
        let _ = writeln!(out, "{id} {n} {revoked}");
        list(&mut out, id);
    }
    // Sessions of a key a reload just removed, still ending.
    let mut gone: Vec<u64> = rows
        .iter()
        .map(|r| r.key_id)
        .filter(|id| !keys.iter().any(|k| k.0 == *id))
        .collect();
    gone.dedup();
    for id in gone {
        let n = rows.iter().filter(|r| r.key_id == id).count();
        let _ = writeln!(out, "{id} {n} removed");
        list(&mut out, id);
    }
    if rows.len() > listed {
        let _ = writeln!(
            out,
            "{} more sessions not listed (at most {ADMIN_SESSIONS_LISTED_MAX} are)",
            rows.len() - listed
        );
    }
    for r in silent {
        let _ = writeln!(
            out,
            "reactor {r} did not answer within {CONTROL_TIMEOUT:?}: its sessions are not listed"
        );
    }
    out.push_str("ok\n");
    out
}

/// The client side: sends one request and returns the answer.
pub fn request(path: &Path, request: &str) -> std::io::Result<String> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(request.as_bytes())?;
    stream.write_all(b"\n")?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer)?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(euid: u32) -> SocketEnv<'a> {
        SocketEnv {
            euid,
            ..SocketEnv::default()
        }
    }

    #[test]
    fn the_default_socket_is_in_the_first_private_directory_that_applies() {
        let os = |s: &'static str| Some(OsStr::new(s));
        let pick = |e: &SocketEnv<'_>| default_socket_from(e).map(|d| (d.path, d.source));
        // systemd's RuntimeDirectory wins, even for root; the first of a list.
        let e = SocketEnv {
            runtime_directory: os("/run/ordergate:/run/other"),
            xdg_runtime_dir: os("/run/user/1000"),
            ..env(0)
        };
        assert_eq!(
            pick(&e),
            Ok(("/run/ordergate/admin.sock".into(), "$RUNTIME_DIRECTORY"))
        );
        assert!(!default_socket_from(&e).unwrap().create_dir);
        // Root, or the owner of /run/ordergate (the unit's user in a shell).
        assert_eq!(
            pick(&env(0)),
            Ok(("/run/ordergate/admin.sock".into(), RUN_DIR))
        );
        let owner = SocketEnv {
            run_dir_owner: Some(995),
            xdg_runtime_dir: os("/run/user/995"),
            ..env(995)
        };
        assert_eq!(
            pick(&owner),
            Ok(("/run/ordergate/admin.sock".into(), RUN_DIR))
        );
        assert!(!default_socket_from(&owner).unwrap().create_dir);
        // A user: the login session's runtime directory, else ~/.local/state.
        let user = SocketEnv {
            xdg_runtime_dir: os("/run/user/1000"),
            home: os("/home/ann"),
            run_dir_owner: Some(995),
            ..env(1000)
        };
        assert_eq!(
            pick(&user),
            Ok((
                "/run/user/1000/ordergate/admin.sock".into(),
                "$XDG_RUNTIME_DIR"
            ))
        );
        let no_xdg = SocketEnv {
            xdg_runtime_dir: os("relative/ignored"),
            home: os("/home/ann"),
            ..env(1000)
        };
        assert_eq!(
            pick(&no_xdg),
            Ok((
                "/home/ann/.local/state/ordergate/admin.sock".into(),
                "$HOME/.local/state"
            ))
        );
        let state = SocketEnv {
            xdg_state_home: os("/srv/state"),
            ..no_xdg.clone()
        };
        assert_eq!(
            pick(&state),
            Ok(("/srv/state/ordergate/admin.sock".into(), "$XDG_STATE_HOME"))
        );
        // Nothing at all: no guess in a shared directory.
        let err = default_socket_from(&env(1000)).unwrap_err();
        assert!(err.contains("give --admin-socket PATH"), "{err}");
    }

    #[test]
    fn a_directory_others_can_write_is_refused_unless_sticky() {
        let base = std::env::temp_dir().join(format!("ordergate-admin-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let me = crate::sys::effective_uid();
        let set =
            |mode| std::fs::set_permissions(&base, std::fs::Permissions::from_mode(mode)).unwrap();
        set(0o700);
        assert_eq!(check_directory(&base, me), Ok(None));
        set(0o755);
        assert_eq!(check_directory(&base, me), Ok(None));
        set(0o777);
        let err = check_directory(&base, me).unwrap_err();
        assert!(
            err.contains("writable by others (mode 0777) without the sticky bit"),
            "{err}"
        );
        set(0o770);
        let err = check_directory(&base, me).unwrap_err();
        assert!(err.contains("writable by its group (mode 0770)"), "{err}");
        set(0o1777);
        let warning = check_directory(&base, me).unwrap().expect("a warning");
        assert!(warning.contains("sticky bit"), "{warning}");
        set(0o700);
        // Owned by someone else (not root): refused, naming the owner.
        if me != 0 {
            let err = check_directory(&base, me + 1).unwrap_err();
            assert!(err.contains(&format!("belongs to uid {me}")), "{err}");
        } else {
            let err = check_directory(&base, 1234).err();
            assert_eq!(err, None, "root's directories are trusted");
        }
        let file = base.join("f");
        std::fs::write(&file, b"").unwrap();
        assert!(
            check_directory(&file, me)
                .unwrap_err()
                .contains("not a directory")
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn only_the_gateways_user_and_root_may_use_the_socket() {
        assert!(peer_allowed(1000, 1000));
        assert!(peer_allowed(0, 1000));
        assert!(!peer_allowed(1001, 1000));
        assert!(!peer_allowed(65534, 0));
    }
}
