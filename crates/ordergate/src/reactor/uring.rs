//! The raw io_uring layer of a reactor: the provided-buffer ring, the
//! `user_data` encoding, one small function per opcode that builds an entry
//! from plain data, and the listener socket. All of the reactor's `unsafe`
//! is in this module; the worker loop above it is safe code.
//!
//! ## user_data
//!
//! ```text
//!  63      56 55           40 39                          8 7       0
//!  ├─────────┼───────────────┼────────────────────────────┼─────────┤
//!  │   op    │     slot      │    generation (low 32)      │ reserved│
//! ```
//!
//! Every completion carries the slot and generation of the session it was
//! submitted for; the worker drops (and counts) a completion whose
//! generation is not the slot's current one, so a completion can never reach
//! a later session on a reused descriptor. Operations that belong to no
//! session (accept, cancel) use slot 0xFFFF.
//!
//! ## The provided-buffer ring
//!
//! ```text
//!  entries (page-aligned mmap, N × 16 B)         pool (N × buffer_size)
//!  ┌──────┬──────┬─────┬──────┐                  ┌────────┬────────┬─────┐
//!  │ addr │ addr │  …  │ addr │ ──points into──▶ │ buf 0  │ buf 1  │  …  │
//!  │ len  │ len  │     │ len  │                  └────────┴────────┴─────┘
//!  │ bid  │ bid  │     │ bid  │   tail (u16) overlays entry 0's `resv`
//!  └──────┴──────┴─────┴──────┘
//! ```
//!
//! The kernel takes a buffer for each receive and names it in the
//! completion (`bid`); the worker hands the bytes to the session at once and
//! gives the buffer back by writing an entry at `tail` and publishing
//! `tail + 1` (Release). A buffer is the kernel's from the moment it is
//! published until its completion arrives: nothing here reads it earlier.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::{self, BufRingEntry, Fd};
use io_uring::{IoUring, opcode, squeue};
use socket2::{Domain, SockRef, Socket, Type};

/// What a completion is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Close = 4,
    Cancel = 5,
    /// The timer tick: a multishot timeout that posts a completion every
    /// `TIMER_TICK`, so a blocking turn needs no timer of its own.
    Tick = 6,
}

/// Slot of operations that belong to no session.
pub const NO_SLOT: u16 = u16::MAX;

#[inline]
pub fn user_data(op: Op, slot: u16, generation: u32) -> u64 {
    ((op as u64) << 56) | ((slot as u64) << 40) | ((generation as u64) << 8)
}

#[inline]
pub fn decode_user_data(data: u64) -> Option<(Op, u16, u32)> {
    let op = match (data >> 56) as u8 {
        1 => Op::Accept,
        2 => Op::Recv,
        3 => Op::Send,
        4 => Op::Close,
        5 => Op::Cancel,
        6 => Op::Tick,
        _ => return None,
    };
    Some((op, (data >> 40) as u16, (data >> 8) as u32))
}

/// Whether `entry` completes exactly once (send, close, cancel), as
/// opposed to a multishot receive or accept, which completes per arrival.
#[inline]
pub fn is_oneshot(entry: &squeue::Entry) -> bool {
    matches!(
        decode_user_data(entry.get_user_data()),
        Some((Op::Send | Op::Close | Op::Cancel, _, _))
    )
}

/// Multishot accept on the listener.
pub fn accept_multi(listener: RawFd) -> squeue::Entry {
    opcode::AcceptMulti::new(Fd(listener))
        .flags(libc::SOCK_CLOEXEC)
        .build()
        .user_data(user_data(Op::Accept, NO_SLOT, 0))
}

/// Multishot receive into buffers of group `bgid`.
pub fn recv_multi(fd: RawFd, bgid: u16, slot: u16, generation: u32) -> squeue::Entry {
    opcode::RecvMulti::new(Fd(fd), bgid)
        .build()
        .user_data(user_data(Op::Recv, slot, generation))
}

/// Send `len` bytes at `ptr`.
///
/// The caller guarantees the bytes stay valid and unmoved until the
/// completion arrives (the session's `TxBuffer` never moves bytes in flight,
/// and a slot is not reused while a send is in flight).
pub fn send(fd: RawFd, ptr: *const u8, len: u32, slot: u16, generation: u32) -> squeue::Entry {
    opcode::Send::new(Fd(fd), ptr, len)
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(user_data(Op::Send, slot, generation))
}

/// A timeout completing every `ts`, forever (multishot, Linux 6.4): each
/// completion is `-ETIME` with `IORING_CQE_F_MORE`. The kernel copies `ts`
/// when it takes the entry.
pub fn tick_multishot(ts: &types::Timespec) -> squeue::Entry {
    opcode::Timeout::new(ts)
        .count(0)
        .flags(types::TimeoutFlags::MULTISHOT)
        .build()
        .user_data(user_data(Op::Tick, NO_SLOT, 0))
}

/// Close a connection's descriptor.
pub fn close(fd: RawFd, slot: u16, generation: u32) -> squeue::Entry {
    opcode::Close::new(Fd(fd))
        .build()
        .user_data(user_data(Op::Close, slot, generation))
}

/// Cancel the operation submitted with `target` user_data.
pub fn cancel(target: u64) -> squeue::Entry {
    opcode::AsyncCancel::new(target)
        .build()
        .user_data(user_data(Op::Cancel, NO_SLOT, 0))
}

/// Pushes one entry, flushing the submission queue to the kernel first if
/// it is full. Returns whether a flush was needed (counted as `sq_full`).
pub fn push(ring: &mut IoUring, entry: &squeue::Entry) -> io::Result<bool> {
    let mut flushed = false;
    loop {
        // SAFETY: every entry built by this module points only at memory
        // that outlives its completion: the buffer ring (owned by the
        // reactor until after the ring is torn down) or a session's transmit
        // bytes (pinned while in flight, see `send`). Descriptors are closed
        // only through `close` after their other operations completed.
        let pushed = unsafe { ring.submission().push(entry) };
        if pushed.is_ok() {
            return Ok(flushed);
        }
        ring.submit()?;
        flushed = true;
    }
}

/// A page-aligned anonymous mapping, unmapped on drop.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Mapping> {
        // SAFETY: an anonymous private mapping with no address hint has no
        // preconditions; the result is checked for MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// A provided-buffer ring registered with one io_uring.
pub struct BufRing {
    entries: Mapping,
    pool: Mapping,
    count: u16,
    size: u32,
    bgid: u16,
    /// Next tail value to publish (wraps at 2^16, masked by count − 1).
    tail: u16,
}

impl BufRing {
    /// Maps and registers `count` buffers of `size` bytes as group `bgid`,
    /// all given to the kernel.
    pub fn register(ring: &IoUring, bgid: u16, count: u16, size: u32) -> io::Result<BufRing> {
        assert!(count.is_power_of_two() && count <= 32768 && size > 0);
        let entries = Mapping::new(count as usize * std::mem::size_of::<BufRingEntry>())?;
        let pool = Mapping::new(count as usize * size as usize)?;
        // SAFETY: `entries` is a fresh page-aligned mapping of exactly
        // `count` entries that lives as long as this BufRing; the reactor
        // unregisters the group (or tears down the ring) before dropping it.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(entries.ptr as u64, count, bgid, 0)?;
        }
        let mut this = BufRing {
            entries,
            pool,
            count,
            size,
            bgid,
            tail: 0,
        };
        for bid in 0..count {
            this.write_entry(bid);
        }
        this.publish();
        Ok(this)
    }

    pub fn bgid(&self) -> u16 {
        self.bgid
    }

    /// Writes the entry at the current tail for buffer `bid` (not yet
    /// published).
    fn write_entry(&mut self, bid: u16) {
        let index = (self.tail & (self.count - 1)) as usize;
        // SAFETY: index < count, so the entry lies inside the mapping; the
        // kernel only reads entries below the published tail, and this one
        // is at or past it (the ring holds at most `count` buffers and
        // `bid` was just handed back by a completion, or this is setup).
        let entry = unsafe { &mut *self.entries.ptr.cast::<BufRingEntry>().add(index) };
        // SAFETY: bid < count, so the buffer lies inside the pool mapping.
        let addr = unsafe { self.pool.ptr.add(bid as usize * self.size as usize) };
        entry.set_addr(addr as u64);
        entry.set_len(self.size);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every written entry visible to the kernel.
    fn publish(&mut self) {
        // SAFETY: the tail field overlays entry 0's `resv` in the mapping,
        // which is initialised and page-aligned; the kernel reads it
        // concurrently, so it is written through an atomic with Release
        // ordering (the entries' contents happen-before the new tail).
        let tail = unsafe {
            &*BufRingEntry::tail(self.entries.ptr.cast::<BufRingEntry>()).cast::<AtomicU16>()
        };
        tail.store(self.tail, Ordering::Release);
    }

    /// The first `len` bytes of buffer `bid`, which a completion just
    /// handed back to us.
    pub fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < self.count && len <= self.size as usize);
        // SAFETY: the range lies inside the pool mapping (checked above);
        // the kernel wrote it before posting the completion that named
        // `bid`, and will not touch it again until `recycle(bid)` publishes
        // it, which needs `&mut self` and so ends this borrow first.
        unsafe {
            std::slice::from_raw_parts(self.pool.ptr.add(bid as usize * self.size as usize), len)
        }
    }

    /// Gives buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        assert!(bid < self.count);
        self.write_entry(bid);
        self.publish();
    }
}

// SAFETY: a BufRing is owned and used by exactly one reactor thread; the raw
// pointers are to private mappings no other thread touches (moving it to
// the thread that runs the reactor is the only transfer).
unsafe impl Send for BufRing {}

/// A TCP socket of `addr`'s family with SO_REUSEADDR (leftover TIME_WAIT
/// sockets do not block a bind): what the probe and the listeners share.
/// socket2 opens it close-on-exec.
fn tcp_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    Ok(socket)
}

/// Binds a TCP socket to `addr` with SO_REUSEADDR but *without*
/// SO_REUSEPORT, and does not listen: the check that nobody listens there
/// yet. SO_REUSEPORT lets every socket of the same user join a port's
/// group, so a second gateway's reuseport listeners would bind silently
/// and take half the connections; this bind fails with `AddrInUse`
/// instead when any socket listens on an overlapping address (the same
/// one, or a wildcard on either side), whoever owns it. Sockets that do
/// not listen (TIME_WAIT of a previous run) do not count: both sides have
/// SO_REUSEADDR. Keep the returned socket until the reuseport listeners
/// are bound (they may share the port with it: it has SO_REUSEADDR and
/// does not listen), then drop it.
pub fn exclusive_probe(addr: SocketAddr) -> io::Result<OwnedFd> {
    let socket = tcp_socket(addr)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A TCP socket bound with SO_REUSEPORT, so that every reactor can bind its
/// own on the same address and the kernel spreads connections across them.
/// Binds wherever the kernel lets it: call [`exclusive_probe`] first, so
/// that another process's group on the same port is refused rather than
/// joined. Bound, not yet listening: [`start_listening`] opens it once the
/// gateway is ready, so that no connection waits in a backlog while the
/// journal is opened and read (a client connecting during start-up is
/// refused at once instead of timing out on its Logon).
pub fn reuseport_bound(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = tcp_socket(addr)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Starts accepting on a socket from [`reuseport_bound`].
pub fn start_listening(bound: &std::net::TcpListener, backlog: i32) -> io::Result<()> {
    SockRef::from(bound).listen(backlog)
}

/// TCP_NODELAY on an accepted connection. No allocation (accept path).
pub fn set_nodelay(fd: RawFd) -> io::Result<()> {
    // SAFETY: `fd` came from accept and the reactor keeps it open until it
    // closes the session, after this call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    SockRef::from(&fd).set_tcp_nodelay(true)
}

/// The peer address of an accepted connection. No allocation (accept path:
/// `SockAddr` is a `sockaddr_storage` on the stack).
pub fn peer_addr(fd: RawFd) -> io::Result<SocketAddr> {
    // SAFETY: as in `set_nodelay`.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let addr = SockRef::from(&fd).peer_addr()?;
    addr.as_socket()
        .ok_or_else(|| io::Error::other(format!("unexpected address family {}", addr.family())))
}

/// Writes a small reply straight to a socket without waiting (the
/// LogonReject to a connection refused at accept), then closes it.
pub fn reply_and_close(fd: RawFd, bytes: &[u8]) {
    // SAFETY: bytes is a live slice; MSG_DONTWAIT makes this never block.
    unsafe {
        libc::send(
            fd,
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    // SAFETY: fd came from accept and is owned by the caller, who hands it
    // over here; no io_uring operation refers to it.
    unsafe { libc::close(fd) };
}

/// Shuts a connection down both ways: its multishot receive completes and
/// a send in flight fails, so its operations drain before `close`.
pub fn shutdown(fd: RawFd) {
    // SAFETY: fd is an open socket owned by the reactor.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// The raw descriptor of a listener.
pub fn raw(listener: &std::net::TcpListener) -> RawFd {
    listener.as_raw_fd()
}

/// A reactor's SQPOLL thread (`reactors.sqpoll`): the kernel thread that
/// takes its submissions off the ring and runs its requests' task work, so
/// that neither a send nor a receive's completion needs the reactor to
/// enter the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqPoll {
    /// The CPU the SQPOLL thread is bound to (`reactors.sqpoll_cores`);
    /// None: wherever the scheduler puts it.
    pub cpu: Option<usize>,
}

/// Builds a reactor's ring. Without SQPOLL: SINGLE_ISSUER and
/// DEFER_TASKRUN (with TASKRUN_FLAG, so a turn without pending task work
/// needs no syscall) where the kernel has them, falling back to
/// COOP_TASKRUN. With SQPOLL: a polling kernel thread (bound to its CPU if
/// given) idling [`SQPOLL_IDLE_MS`](crate::constants::SQPOLL_IDLE_MS)
/// before it sleeps, SINGLE_ISSUER if the kernel has it; no fallback (the
/// operator asked for the poller: an error says why there is none).
/// Returns the ring and the flags it got, for the start-up report.
pub fn build_ring(entries: u32, sqpoll: Option<SqPoll>) -> io::Result<(IoUring, &'static str)> {
    let cq = entries.saturating_mul(4);
    if let Some(sq) = sqpoll {
        let idle = crate::constants::SQPOLL_IDLE_MS;
        let build = |single_issuer: bool| {
            let mut b = IoUring::builder();
            b.setup_sqpoll(idle).setup_cqsize(cq);
            if let Some(cpu) = sq.cpu {
                b.setup_sqpoll_cpu(cpu as u32);
            }
            if single_issuer {
                b.setup_single_issuer();
            }
            b.build(entries)
        };
        let pinned = sq.cpu.is_some();
        return match build(true) {
            Ok(ring) if pinned => Ok((ring, "sqpoll(pinned)+single-issuer")),
            Ok(ring) => Ok((ring, "sqpoll+single-issuer")),
            Err(_) => {
                build(false).map(|ring| (ring, if pinned { "sqpoll(pinned)" } else { "sqpoll" }))
            }
        };
    }
    if let Ok(ring) = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_taskrun_flag()
        .setup_cqsize(cq)
        .build(entries)
    {
        return Ok((ring, "single-issuer+defer-taskrun"));
    }
    if let Ok(ring) = IoUring::builder()
        .setup_coop_taskrun()
        .setup_taskrun_flag()
        .setup_cqsize(cq)
        .build(entries)
    {
        return Ok((ring, "coop-taskrun"));
    }
    Ok((IoUring::builder().setup_cqsize(cq).build(entries)?, "plain"))
}

/// Checks that the kernel supports every opcode and feature the reactor
/// uses; the error names what is missing.
pub fn check_support(ring: &IoUring) -> Result<(), String> {
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("cannot probe io_uring opcodes: {e}"))?;
    for (code, name) in [
        (opcode::AcceptMulti::CODE, "ACCEPT (multishot)"),
        (opcode::RecvMulti::CODE, "RECV (multishot)"),
        (opcode::Send::CODE, "SEND"),
        (opcode::Close::CODE, "CLOSE"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
    ] {
        if !probe.is_supported(code) {
            return Err(format!(
                "the kernel lacks io_uring opcode {name} (Linux 6.0 or later needed)"
            ));
        }
    }
    if !ring.params().is_feature_nodrop() {
        return Err(
            "the kernel lacks IORING_FEAT_NODROP (completion overflow would lose completions)"
                .into(),
        );
    }
    Ok(())
}

/// Why io_uring may be unavailable, for the start-up error.
pub fn disabled_reason() -> Option<String> {
    let v = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok()?;
    match v.trim() {
        "0" => None,
        other => Some(format!(
            "io_uring is disabled by sysctl kernel.io_uring_disabled={other}"
        )),
    }
}
