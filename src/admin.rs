//! The local control socket: `ordergate admin reload | revoke KEY | kill KEY
//! | sessions`.
//!
//! A Unix domain stream socket created with mode 0600 (the process umask is
//! narrowed around `bind`, so there is no moment when it is wider), served
//! by one thread that is never a reactor. One request per connection: a
//! single text line; the answer is text lines, the last starting `ok` or
//! `error:`.
//!
//! ```text
//!   reload          re-read the keys file; an invalid file keeps the old table
//!   revoke KEY      the key's sessions end (KEY_REVOKED), every resting order
//!                   of the key is canceled (KEY_REVOKED), whichever session
//!                   entered it; its logons are refused KEY_DISABLED; the
//!                   answer says how many orders were canceled
//!   kill KEY        the kill switch: the same as revoke, said louder
//!   sessions        each key, its live sessions, whether it is revoked
//! ```
//!
//! Revocations made here last for the rest of the run; a reload cannot bring
//! a revoked key back (edit the file and restart to re-admit a key id).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::gateway::{ControlReport, GatewayControl};

/// Default path of the admin socket.
pub const ADMIN_SOCKET_DEFAULT: &str = "/tmp/ordergate-admin.sock";
/// Longest request line accepted.
pub const REQUEST_MAX: usize = 256;
/// How often the server thread looks at its stop flag.
const POLL: Duration = Duration::from_millis(50);

/// A running admin server.
pub struct AdminServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// Binds `path` with mode 0600 (replacing a stale socket file) and
    /// serves `control`. `keys_path` is what `reload` re-reads.
    pub fn start(
        path: &Path,
        control: GatewayControl,
        keys_path: Option<PathBuf>,
    ) -> std::io::Result<AdminServer> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(std::io::Error::other(format!(
                    "{} exists and is not a socket; refusing to replace it",
                    path.display()
                )));
            }
            std::fs::remove_file(path)?;
        }
        // Narrowed around bind so the socket is born 0600.
        let listener = crate::sys::with_umask(0o177, || UnixListener::bind(path))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ordergate-admin".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    match listener.accept() {
                        Ok((stream, _)) => serve_one(stream, &control, keys_path.as_deref()),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(POLL)
                        }
                        Err(_) => std::thread::sleep(POLL),
                    }
                }
            })?;
        Ok(AdminServer {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve_one(stream: UnixStream, control: &GatewayControl, keys_path: Option<&Path>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    let mut reader = BufReader::new((&stream).take(REQUEST_MAX as u64));
    let answer = match reader.read_line(&mut line) {
        Ok(_) => execute(line.trim(), control, keys_path),
        Err(e) => format!("error: cannot read the request: {e}\n"),
    };
    let _ = (&stream).write_all(answer.as_bytes());
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
        ("revoke" | "kill", Some(Ok(id)), None) => match if verb == "kill" {
            control.kill(id)
        } else {
            control.revoke(id)
        } {
            Some(r) => format!(
                "ok {} key {id}: its sessions end with KEY_REVOKED; {} (generation {}); {}\n",
                if verb == "kill" { "killed" } else { "revoked" },
                canceled(&r),
                r.epoch,
                applied(&r)
            ),
            None => format!("ok key {id} was already revoked\n"),
        },
        ("revoke" | "kill", Some(Err(_)) | None, _) => {
            format!("error: {verb} takes one key id (a number)\n")
        }
        ("sessions", None, None) => {
            let mut out = String::from("key_id sessions revoked\n");
            for (id, n, revoked) in control.sessions() {
                out.push_str(&format!("{id} {n} {revoked}\n"));
            }
            out.push_str("ok\n");
            out
        }
        _ => format!(
            "error: unknown request {:?}: use reload, revoke KEY, kill KEY or sessions\n",
            request.chars().take(64).collect::<String>()
        ),
    }
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
