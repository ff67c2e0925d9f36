//! The operating-system calls that have no safe wrapper in `std`, outside
//! the io_uring module: each is a thin safe function here with the proof of
//! its one `unsafe` block, so the rest of the crate calls them without
//! `unsafe`.
//!
//! | call | used by | why |
//! |---|---|---|
//! | `madvise(MADV_HUGEPAGE)` | [`huge_vec`]: the engine's order pool, levels and lookup tables | a random lookup in a 16 MiB table is a TLB miss on 4 KiB pages (measured: most of the engine's time per command in `compare`) |
//! | `umask` | [`with_umask`]: the admin socket | the socket must be born 0600, not chmod-ed after a window |
//! | `geteuid` | [`is_root`]: `compare` installs HAProxy only as root; [`effective_uid`]: the admin socket's peer check | |
//! | `getsockopt(SO_PEERCRED)` | [`peer_credentials`]: who is at the other end of an admin connection | the kernel's word, not the peer's |
//! | `prctl(PR_SET_PDEATHSIG)` | [`die_with_parent`]: HAProxy child of `compare` | killed even if ordergate aborts |
//! | `epoll` | [`Readiness`]: the load generator's many sockets per thread | one wait for hundreds of sessions |
//! | `sched_setaffinity` | [`set_thread_cpus`]: `serve`'s own threads onto the housekeeping CPUs | `core_affinity` pins to one CPU only |
//! | `prctl(PR_SET_DUMPABLE)` | [`set_not_dumpable`]: `serve` at start | no core dump, no ptrace attach or `/proc/PID/mem` read by the same uid: the process holds every key's secret |
//! | `madvise(MADV_DONTDUMP)`, `mlock` | [`protect_secret_memory`]: the key table's entries, the session slab | secrets left out of any dump and never written to swap |
//!
//! The other `unsafe` modules: `reactor::uring` (io_uring), `ring` (the
//! SPSC ring's slots), `journal::storage`/`journal::appender` and
//! `telemetry::stats` (memory-mapped files), `auth::sha_ni` (SHA-NI
//! intrinsics), `auth::secret` (a test that reads wiped memory).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Transparent huge pages are 2 MiB on x86_64 and the usual aarch64
/// kernels; a range shorter than one gets none, so it is not advised.
pub const HUGE_PAGE: usize = 2 << 20;
/// The base page size madvise ranges are aligned to.
const PAGE: usize = 4096;

/// `n` copies of `value` in memory the kernel is asked to back with
/// transparent huge pages (`madvise(MADV_HUGEPAGE)` before the first
/// touch), for large tables read at random on the hot path. Where THP is
/// `never`, or the advice fails, it is an ordinary `Vec`: the advice
/// changes speed, never contents. Only the 2 MiB-aligned part of the
/// allocation can get huge pages; the edges stay 4 KiB.
pub fn huge_vec<T: Clone>(n: usize, value: T) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    let bytes = n.saturating_mul(size_of::<T>());
    if bytes >= HUGE_PAGE {
        let start = v.as_ptr() as usize;
        let aligned = start.next_multiple_of(PAGE);
        let len = (start + bytes).saturating_sub(aligned) / PAGE * PAGE;
        // SAFETY: [aligned, aligned + len) lies inside the allocation `v`
        // owns (page-aligned start rounded up, length rounded down), and
        // MADV_HUGEPAGE only tells the kernel how to back those pages: it
        // neither changes their contents nor unmaps them. Failure (THP
        // compiled out) is ignored on purpose.
        unsafe {
            libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
    }
    v.resize(n, value);
    v
}

/// The engine's table memory in transparent huge pages ([`huge_vec`]):
/// what the gateway hands `MatchingEngine::new_in`.
#[derive(Clone, Copy, Debug, Default)]
pub struct HugePages;

impl ordergate_core::engine::book::TableMemory for HugePages {
    fn table<T: Clone>(&self, n: usize, value: T) -> Vec<T> {
        huge_vec(n, value)
    }
}

/// Runs `f` with the process's file-creation mask set to `mask`, then puts
/// the old mask back. The mask is process-wide: meant for start-up, before
/// other threads create files.
pub fn with_umask<R>(mask: libc::mode_t, f: impl FnOnce() -> R) -> R {
    // SAFETY: umask(2) only swaps the process's file-creation mask; it
    // takes no pointer and cannot fail.
    let old = unsafe { libc::umask(mask) };
    let r = f();
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    r
}

/// Lets the calling thread run on `cpus` only; threads it starts later
/// inherit the set (a thread may still pin itself elsewhere, as reactors
/// do). `cpus` must not be empty.
///
/// # Errors
///
/// A CPU beyond the kernel's mask size, or the kernel refused the set
/// (none of it allowed here).
pub fn set_thread_cpus(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let bits = 8 * size_of::<libc::cpu_set_t>();
    if cpus.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no CPU given"));
    }
    for &cpu in cpus {
        if cpu >= bits {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("CPU {cpu} is beyond the {bits}-CPU affinity mask"),
            ));
        }
        // SAFETY: `cpu` < the set's bit count (checked above), so CPU_SET
        // writes inside `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of
    // the size passed, which the kernel only reads.
    let r = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes the process non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`): the
/// kernel writes no core dump of it, and processes of the same user can
/// neither `ptrace` it nor read `/proc/PID/mem`. `serve` calls it first:
/// the process holds every API key's secret.
pub fn set_not_dumpable() -> io::Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes an integer argument and touches no
    // memory of ours.
    let r = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the process is dumpable (`prctl(PR_GET_DUMPABLE)`).
pub fn is_dumpable() -> bool {
    // SAFETY: PR_GET_DUMPABLE takes no argument and touches no memory of
    // ours; it returns 0, 1 or 2.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) != 0 }
}

/// What [`protect_secret_memory`] obtained from the kernel (defined in the
/// core, whose key table records it).
pub use ordergate_core::auth::keys::SecretMemory;

/// Asks the kernel to leave the pages under `[ptr, ptr + len)` out of core
/// dumps (`MADV_DONTDUMP`) and to keep them in RAM (`mlock`), for memory
/// that holds secrets. The whole pages covering the range are affected,
/// including whatever else shares them: both only restrict what the kernel
/// does with the pages (no dump, no swap), never their contents. The pages
/// stay so after the value is freed: the lock is bounded by
/// `RLIMIT_MEMLOCK` (beyond it `mlock` fails and `locked` is false: the
/// caller warns), and a freed page reused by the allocator being locked
/// or undumped is harmless. Neither is undone on purpose: another secret
/// may share the page.
pub fn protect_secret_memory(ptr: *const u8, len: usize) -> SecretMemory {
    if len == 0 {
        return SecretMemory {
            excluded_from_dumps: true,
            locked: true,
        };
    }
    let start = (ptr as usize) / PAGE * PAGE;
    let end = (ptr as usize + len).next_multiple_of(PAGE);
    // SAFETY: [start, end) are whole pages that contain the caller's live
    // allocation [ptr, ptr + len) and so are mapped; MADV_DONTDUMP only
    // sets a flag on the mapping (it does not change or free the memory),
    // and mlock only faults the pages in and pins them.
    unsafe {
        let dontdump = libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTDUMP);
        let lock = libc::mlock(start as *const libc::c_void, end - start);
        SecretMemory {
            excluded_from_dumps: dontdump == 0,
            locked: lock == 0,
        }
    }
}

/// Whether the process runs with effective user id 0.
pub fn is_root() -> bool {
    euid() == 0
}

/// The process's effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions, touches no memory of ours and
    // cannot fail.
    unsafe { libc::geteuid() }
}

/// The process's effective user id.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions, touches no memory of ours and
    // cannot fail.
    unsafe { libc::geteuid() }
}

/// Who is at the other end of a connected Unix socket, as the kernel
/// recorded it when the peer connected (or, seen from a client, when the
/// server called `listen`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCredentials {
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
}

/// `getsockopt(SO_PEERCRED)` on `socket`, a connected Unix stream socket.
///
/// # Errors
///
/// Not a Unix socket, or not connected.
pub fn peer_credentials(socket: BorrowedFd<'_>) -> io::Result<PeerCredentials> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `socket` is open for the call (borrowed); `cred` is a valid
    // ucred of `len` bytes that the kernel fills, and `len` is in-out.
    let r = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCredentials {
        pid: cred.pid.max(0) as u32,
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// The processes holding a TCP socket that listens on an address that
/// overlaps `addr` (the same port, and the same address or a wildcard on
/// either side), found through `/proc/net/tcp{,6}` (the socket's inode)
/// and `/proc/*/fd` (who holds it). Each as (pid, command name), sorted,
/// at most `PIDS_MAX`. Start-up only: it reads every process's fd table.
///
/// # Errors
///
/// Why no holder could be named: `/proc/net/tcp` is unreadable, no
/// listening socket matched (it went away), or the holders' `/proc/PID/fd`
/// are not readable by this user.
pub fn listener_holders(addr: SocketAddr) -> Result<Vec<(u32, String)>, String> {
    const PIDS_MAX: usize = 8;
    let mut inodes = Vec::new();
    let mut read_any = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        read_any = true;
        inodes.extend(listening_inodes(&text, addr));
    }
    if !read_any {
        return Err("/proc/net/tcp is not readable".into());
    }
    if inodes.is_empty() {
        return Err("no listening socket on it is visible in /proc/net/tcp".into());
    }
    let mut holders = Vec::new();
    let procs = std::fs::read_dir("/proc").map_err(|e| format!("/proc: {e}"))?;
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| {
                let target = target.to_string_lossy();
                target
                    .strip_prefix("socket:[")
                    .and_then(|t| t.strip_suffix(']'))
                    .and_then(|t| t.parse::<u64>().ok())
                    .is_some_and(|inode| inodes.contains(&inode))
            })
        });
        if holds {
            holders.push((pid, process_name(pid).unwrap_or_else(|| "?".into())));
            if holders.len() == PIDS_MAX {
                break;
            }
        }
    }
    holders.sort();
    if holders.is_empty() {
        return Err("the process holding it is not visible in /proc/*/fd to this user".into());
    }
    Ok(holders)
}

/// [`listener_holders`]' answer in words: `pid 12, ordergate; pid 13, nc`,
/// or `pid unknown: why`.
pub fn holders_text(holders: &Result<Vec<(u32, String)>, String>) -> String {
    match holders {
        Ok(holders) => {
            let each: Vec<String> = holders
                .iter()
                .map(|(pid, name)| format!("pid {pid}, {name}"))
                .collect();
            each.join("; ")
        }
        Err(why) => format!("pid unknown: {why}"),
    }
}

/// What to do about a bind of `addr` the kernel refused with `error`,
/// to follow the error: for a port below the first unprivileged one
/// (`net.ipv4.ip_unprivileged_port_start`, 1024 unless changed) refused
/// with EACCES, `; a port below N needs root or CAP_NET_BIND_SERVICE`;
/// otherwise nothing.
pub fn bind_hint(addr: SocketAddr, error: &io::Error) -> String {
    if error.kind() != io::ErrorKind::PermissionDenied {
        return String::new();
    }
    let first_unprivileged =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|t| t.trim().parse::<u16>().ok())
            .unwrap_or(1024);
    if addr.port() == 0 || addr.port() >= first_unprivileged {
        return String::new();
    }
    format!("; a port below {first_unprivileged} needs root or CAP_NET_BIND_SERVICE")
}

/// The command name of `pid` (`/proc/PID/comm`).
pub fn process_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_owned())
}

/// The inodes of the sockets in a `/proc/net/tcp` or `tcp6` table that
/// listen (state 0A) on an address overlapping `addr`.
fn listening_inodes(table: &str, addr: SocketAddr) -> Vec<u64> {
    const TCP_LISTEN: &str = "0A";
    let mut out = Vec::new();
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        let (Some(local), Some(state), Some(inode)) = (fields.get(1), fields.get(3), fields.get(9))
        else {
            continue;
        };
        if *state != TCP_LISTEN {
            continue;
        }
        let Some((ip, port)) = local.split_once(':') else {
            continue;
        };
        if u16::from_str_radix(port, 16).ok() != Some(addr.port()) {
            continue;
        }
        let Some(ip) = proc_net_ip(ip) else { continue };
        if !overlaps(ip, addr.ip()) {
            continue;
        }
        if let Ok(inode) = inode.parse::<u64>() {
            out.push(inode);
        }
    }
    out
}

/// An address as `/proc/net/tcp{,6}` prints it: the bytes of the address
/// as 32-bit words in host order, each printed as hex.
fn proc_net_ip(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::from(b))
        }
        _ => None,
    }
}

/// Whether a listener on `a` and one on `b` (same port) conflict: equal,
/// or either is a wildcard (an IPv6 wildcard also takes IPv4 unless
/// v6only; counted as a conflict, which is what the probe bind saw).
fn overlaps(a: IpAddr, b: IpAddr) -> bool {
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let (a, b) = (canon(a), canon(b));
    a == b || a.is_unspecified() || b.is_unspecified()
}

/// Makes the child `command` starts receive SIGKILL when the thread that
/// spawned it ends, so it cannot outlive an ordergate that aborts or is
/// killed (where `Drop` never runs).
pub fn die_with_parent(command: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec and makes
    // one system call (prctl, async-signal-safe), touching no memory and
    // taking no lock.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
}

/// Readiness of many sockets in one system call: epoll, level-triggered,
/// each socket registered with a caller's token. Every call is a plain
/// libc call on descriptors this type owns or that outlive their
/// registration.
pub struct Readiness {
    epfd: OwnedFd,
    events: Box<[libc::epoll_event]>,
}

impl Readiness {
    /// Room for `capacity` events per wait (more stay pending: level-triggered).
    pub fn new(capacity: usize) -> io::Result<Readiness> {
        // SAFETY: epoll_create1 takes no pointer; a negative result is an
        // error, checked before the descriptor is used.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1: open, and owned
        // by nothing else.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let empty = libc::epoll_event { events: 0, u64: 0 };
        Ok(Readiness {
            epfd,
            events: vec![empty; capacity.max(1)].into_boxed_slice(),
        })
    }

    fn ctl(&self, op: libc::c_int, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both descriptors are open for the duration of the call
        // (`fd` is borrowed, `epfd` owned), and `event` is a valid
        // epoll_event the kernel only reads.
        let r = unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd.as_raw_fd(), &mut event) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Watches `fd` for input, reporting it as `token`.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token)
    }

    /// Stops watching `fd`.
    pub fn remove(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0)
    }

    /// Waits up to `timeout_ms` (0: only what is ready now) and returns how
    /// many events [`Readiness::token`] can be asked for.
    pub fn wait(&mut self, timeout_ms: i32) -> io::Result<usize> {
        let max = self.events.len().min(i32::MAX as usize) as libc::c_int;
        // SAFETY: `events` is a live buffer of at least `max` epoll_event
        // that the kernel fills; `epfd` is open.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                self.events.as_mut_ptr(),
                max,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            };
        }
        Ok(n as usize)
    }

    /// The token of event `i` of the last wait.
    pub fn token(&self, i: usize) -> u64 {
        // A copy out of a packed struct: no reference to the field is made.
        let event = self.events[i];
        event.u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_vec_holds_its_values_whatever_the_advice() {
        let v = huge_vec(HUGE_PAGE / 8 * 3 + 5, 7u64);
        assert_eq!(v.len(), HUGE_PAGE / 8 * 3 + 5);
        assert!(v.iter().all(|&x| x == 7));
        let small = huge_vec(3, 1u8);
        assert_eq!(small, [1, 1, 1]);
        assert!(huge_vec(0, 0u32).is_empty());
    }

    #[test]
    fn huge_vec_gets_huge_pages_where_the_kernel_gives_them_on_advice() {
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        // Only where THP is granted on madvise alone: under `always` the
        // advice is not what made the difference, under `never` nothing can.
        if !mode.contains("[madvise]") {
            return;
        }
        let v = huge_vec(4 * HUGE_PAGE, 1u8);
        // The middle: the advised range starts at the first whole page, and
        // the page before it is a mapping of its own.
        let kib = anon_huge_kib_at(v.as_ptr() as usize + v.len() / 2);
        // 8 MiB advised: at least 3 whole aligned huge pages inside it.
        assert!(
            kib >= 3 * (HUGE_PAGE as u64 / 1024),
            "the mapping holding an advised 8 MiB vector has {kib} KiB of huge pages"
        );
    }

    /// AnonHugePages of the mapping that contains `addr`, from /proc/self/smaps.
    fn anon_huge_kib_at(addr: usize) -> u64 {
        smaps_field_at(addr, "AnonHugePages:")
            .map_or(0, |v| v.trim_end_matches("kB").trim().parse().unwrap_or(0))
    }

    /// The value of `field` (e.g. "VmFlags:") of the mapping that contains
    /// `addr`, from /proc/self/smaps.
    pub(crate) fn smaps_field_at(addr: usize, field: &str) -> Option<String> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("/proc/self/smaps");
        let mut inside = false;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some((lo, hi)) = first.split_once('-')
                && let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = lo <= addr && addr < hi;
                continue;
            }
            if inside && let Some(v) = line.strip_prefix(field) {
                return Some(v.trim().to_string());
            }
        }
        None
    }

    #[test]
    fn secret_memory_is_left_out_of_dumps_and_locked_where_allowed() {
        let secret: Box<[u8]> = vec![0x5au8; 100].into_boxed_slice();
        let got = protect_secret_memory(secret.as_ptr(), secret.len());
        assert!(got.excluded_from_dumps, "MADV_DONTDUMP is always allowed");
        let flags = smaps_field_at(secret.as_ptr() as usize, "VmFlags:").expect("mapped");
        let flags: Vec<&str> = flags.split_whitespace().collect();
        assert!(flags.contains(&"dd"), "VmFlags {flags:?}");
        // mlock needs RLIMIT_MEMLOCK room (root has none to need).
        if is_root() {
            assert!(got.locked);
            assert!(flags.contains(&"lo"), "VmFlags {flags:?}");
        }
        assert_eq!(secret[99], 0x5a, "contents unchanged");
    }

    #[test]
    fn a_process_made_not_dumpable_reports_it() {
        // In a child process: the flag is process-wide, and the test
        // binary's other tests must not lose their core dumps.
        if std::env::var_os("ORDERGATE_TEST_DUMPABLE_CHILD").is_some() {
            assert!(is_dumpable());
            set_not_dumpable().expect("prctl");
            assert!(!is_dumpable());
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let out = Command::new(exe)
            .args([
                "--exact",
                "sys::tests::a_process_made_not_dumpable_reports_it",
                "--nocapture",
            ])
            .env("ORDERGATE_TEST_DUMPABLE_CHILD", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    #[test]
    fn a_thread_limited_to_one_cpu_runs_there_and_its_children_inherit_it() {
        let cpus = crate::config::available_cores().expect("the affinity mask");
        let last = *cpus.last().unwrap();
        std::thread::spawn(move || {
            set_thread_cpus(&[last]).expect("set");
            assert_eq!(crate::config::available_cores().unwrap(), [last]);
            let child = std::thread::spawn(crate::config::available_cores)
                .join()
                .unwrap();
            assert_eq!(child.unwrap(), [last]);
        })
        .join()
        .unwrap();
        assert!(set_thread_cpus(&[]).is_err());
        assert!(set_thread_cpus(&[1 << 20]).is_err());
    }

    #[test]
    fn a_listener_is_found_with_its_pid_and_name() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().unwrap();
        let holders = listener_holders(addr).expect("our own listener");
        let me = std::process::id();
        assert!(holders.iter().any(|(pid, _)| *pid == me), "{holders:?}");
        // A wildcard query overlaps it too.
        let wild: SocketAddr = format!("0.0.0.0:{}", addr.port()).parse().unwrap();
        assert!(
            listener_holders(wild)
                .unwrap()
                .iter()
                .any(|(p, _)| *p == me)
        );
        drop(l);
        let err = listener_holders(addr).expect_err("nobody listens any more");
        assert!(err.contains("no listening socket"), "{err}");
    }

    #[test]
    fn proc_net_addresses_parse_and_overlap() {
        // 127.0.0.1 as /proc/net/tcp prints it on a little-endian host.
        let lo = if cfg!(target_endian = "little") {
            "0100007F"
        } else {
            "7F000001"
        };
        assert_eq!(proc_net_ip(lo), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(
            proc_net_ip("00000000000000000000000000000000"),
            Some("::".parse().unwrap())
        );
        assert_eq!(proc_net_ip("zz"), None);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(overlaps(ip("127.0.0.1"), ip("0.0.0.0")));
        assert!(overlaps(ip("::"), ip("127.0.0.1")));
        assert!(overlaps(ip("::ffff:127.0.0.1"), ip("127.0.0.1")));
        assert!(!overlaps(ip("127.0.0.1"), ip("127.0.0.2")));
    }

    #[test]
    fn peer_credentials_name_this_process() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let cred = peer_credentials(std::os::fd::AsFd::as_fd(&a)).expect("SO_PEERCRED");
        assert_eq!(cred.pid, std::process::id());
        assert_eq!(cred.uid, effective_uid());
    }

    #[test]
    fn a_file_made_under_with_umask_gets_the_narrowed_mode() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("ordergate-umask-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        with_umask(0o177, || std::fs::File::create(&path)).expect("create");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(mode, 0o600);
    }
}
