//! A harness for the `ordergate` binary: private temp directories with the
//! files a `serve` needs, `serve` processes whose stdout lines arrive
//! through a channel (so no read blocks a test forever), and one-shot
//! commands.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The key of [`TempDir::keys`]' file.
pub const KEY: u64 = 1001;
/// Its secret, as the file holds it.
pub const SECRET_HEX: &str = "5eC7e75eC7e75eC7e75eC7e75eC7e75eC7e75eC7e75eC7e75eC7e75eC7e75eC7";
/// How long a `serve` may take to print its start lines, or a refused one
/// to exit (it refuses before any thread starts; this only bounds the
/// loop).
pub const REFUSE_WITHIN: Duration = Duration::from_secs(10);

/// A directory of its own under the temp dir (mode 0700), removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "ordergate-test-{}-{tag}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
        TempDir(path)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// `name` with `contents`, mode `mode`.
    pub fn file(&self, name: &str, contents: &str, mode: u32) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// `keys.toml` (mode 0600) with key [`KEY`], trade and cancel, from
    /// 127.0.0.0/8.
    pub fn keys(&self) -> PathBuf {
        self.file(
            "keys.toml",
            &format!(
                "[[key]]\nid = {KEY}\nsecret = \"{SECRET_HEX}\"\nscopes = [\"trade\", \"cancel\"]\n\
                 environment = \"production\"\nallow = [\"127.0.0.0/8\"]\n"
            ),
            0o600,
        )
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The gateway binary, `target/<profile>/ordergate`, beside this test's
/// own `target/<profile>/deps/` executable. The tests belong to the root
/// package (ordergate-bench), and Cargo gives a test `CARGO_BIN_EXE_*` only
/// for its own package's binaries (and builds only those). The `ordergate`
/// package has one integration test (tests/ordergate/binary.rs), so
/// `cargo test --all-targets` at the root builds its executable before it
/// runs any test. A `--test NAME` run builds the root package only: when
/// the binary is missing, or older than a source file of the gateway or the
/// crates it links, the test fails saying how to build it (a test cannot:
/// Cargo holds the build directory's lock while tests run).
pub fn ordergate_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let bin = dir.join("ordergate");
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => String::new(),
        Some("release") => " --release".to_owned(),
        Some(other) => format!(" --profile {other}"),
        None => String::new(),
    };
    let build = format!("cargo build{profile} -p ordergate");
    let built = match std::fs::metadata(&bin).and_then(|m| m.modified()) {
        Ok(built) => built,
        Err(e) => panic!(
            "the gateway binary {} is missing ({e}): run `{build}` (or `cargo test --all-targets` at the repository's root, which builds it)",
            bin.display()
        ),
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stack: Vec<PathBuf> = [
        "ordergate",
        "ordergate-core",
        "ordergate-os",
        "ordergate-client",
    ]
    .iter()
    .flat_map(|c| {
        [
            root.join("crates").join(c).join("src"),
            root.join("crates").join(c).join("Cargo.toml"),
        ]
    })
    .collect();
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if meta.modified().is_ok_and(|m| m > built) {
            panic!(
                "the gateway binary {} is older than {}: run `{build}`",
                bin.display(),
                path.display()
            );
        }
    }
    bin
}

/// `ordergate ARGS…`, run to its end.
pub fn ordergate(args: &[&str]) -> Output {
    Command::new(ordergate_bin())
        .args(args)
        .output()
        .expect("run ordergate")
}

/// `ordergate serve` with `args`: no stdin, stdout and stderr piped, and no
/// `RUNTIME_DIRECTORY` from the test's environment.
pub fn serve_with(args: &[&str]) -> Command {
    let mut cmd = Command::new(ordergate_bin());
    cmd.arg("serve")
        .args(args)
        .env_remove("RUNTIME_DIRECTORY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// `serve` with the keys of `dir` and its own journal and stats file in
/// `dir` (named by `tag`), listening on `listen`, with `extra` flags;
/// `env` set for it.
pub fn serve_command(
    dir: &TempDir,
    tag: &str,
    listen: &str,
    extra: &[&str],
    env: &[(&str, &Path)],
) -> Command {
    let mut cmd = serve_with(&[
        "--keys",
        p(&dir.keys()),
        "--listen",
        listen,
        "--idle",
        "backoff",
        "--audit-journal",
        p(&dir.join(&format!("{tag}.journal"))),
        "--stats-file",
        p(&dir.join(&format!("{tag}.stats"))),
    ]);
    cmd.args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// [`serve_command`] on 127.0.0.1:0 with its admin socket at `sock`,
/// started ([`Serve::start`]).
pub fn serve_on_socket(dir: &TempDir, tag: &str, sock: &Path) -> (Serve, String, String) {
    Serve::start(serve_command(
        dir,
        tag,
        "127.0.0.1:0",
        &["--admin-socket", p(sock)],
        &[],
    ))
}

/// A running `serve`: its stdout lines come through a channel, so that a
/// read never blocks the test forever.
pub struct Serve {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Serve {
    /// Starts it and waits for its "admin socket" line (the last start
    /// line before Prometheus). Returns it and its two start lines.
    pub fn start(cmd: Command) -> (Serve, String, String) {
        let mut serve = Serve::spawn(cmd);
        let serving = serve.line();
        let admin = serve.line();
        (serve, serving, admin)
    }

    /// Starts it; read its lines with [`Serve::line`].
    pub fn spawn(mut cmd: Command) -> Serve {
        let mut child = cmd.spawn().expect("spawn serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Serve { child, lines }
    }

    pub fn line(&mut self) -> String {
        match self.lines.recv_timeout(REFUSE_WITHIN) {
            Ok(line) => line,
            Err(_) => {
                let mut err = String::new();
                let _ = self.child.kill();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("serve printed no line within {REFUSE_WITHIN:?}; stderr: {err}");
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then its exit status and the rest of its stdout.
    pub fn stop(mut self) -> (ExitStatus, Vec<String>) {
        // SAFETY: kill(2) on our child's pid; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        // Until the reader thread reaches the end of stdout (bounded).
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(REFUSE_WITHIN) {
            rest.push(line);
        }
        (status, rest)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a `serve` that must refuse to start: waits (bounded) for it to
/// exit and returns its output. A serve still running after
/// `REFUSE_WITHIN` started (beside another one, say): killed, and the test
/// fails.
pub fn refused_serve(mut cmd: Command) -> Output {
    let mut child = cmd.spawn().expect("spawn serve");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > REFUSE_WITHIN {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the serve was still running after {REFUSE_WITHIN:?}: it started.\nstdout: {}\n\
                 stderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
