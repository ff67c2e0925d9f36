//! What a thread costs the machine, for `ordergate-bench compare`: its CPU time
//! (the kernel's per-thread and per-process CPU-time clocks, ns, no
//! privilege needed)
//! and its system calls (a counting perf event on the
//! `raw_syscalls:sys_enter` tracepoint, where perf and tracefs are
//! available: root, or `perf_event_paranoid` ≤ 1 with tracefs readable).
//!
//! Counting, never sampling: a counter adds a few tens of ns to each of the
//! thread's system calls while it is enabled, so `compare` enables them only
//! in a round of its own, not in the timed ones.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The calling thread's kernel id.
pub fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// Nanoseconds thread `tid` of this process has run on a CPU, up to now
/// (its CPU-time clock, which includes the current slice); None if it is
/// gone.
pub fn own_thread_cpu_ns(tid: i32) -> Option<u64> {
    // MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED): the kernel's encoding of
    // a thread's CPU-time clock (include/linux/posix-timers.h).
    cpu_clock_ns(((!(tid as i64)) << 3) | 2 | 4)
}

/// Nanoseconds every thread of process `pid` has run on a CPU, up to now
/// (its process CPU-time clock, threads that ended included); None if it
/// is gone or not ours to read.
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    // MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED).
    cpu_clock_ns(((!i64::from(pid)) << 3) | 2)
}

fn cpu_clock_ns(clock: i64) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a live timespec; an invalid clock id fails with EINVAL.
    if unsafe { libc::clock_gettime(clock as libc::clockid_t, &raw mut ts) } != 0 {
        return None;
    }
    Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// Times thread `tid` of process `pid` gave up its CPU to wait (its
/// voluntary context switches: each is a sleep, and so a wake-up); None if
/// it is gone.
pub fn thread_sleeps(pid: u32, tid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?
        .trim()
        .parse()
        .ok()
}

/// The sum of [`thread_sleeps`] over every live thread of process `pid`.
pub fn process_sleeps(pid: u32) -> Option<u64> {
    let tids = tasks(pid).ok()?;
    Some(tids.iter().filter_map(|&t| thread_sleeps(pid, t)).sum())
}

/// The thread ids of process `pid`.
pub fn tasks(pid: u32) -> io::Result<Vec<i32>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        if let Some(tid) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) {
            out.push(tid);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The threads of this process whose name (`comm`, at most 15 bytes)
/// starts with `prefix`.
pub fn own_threads_named(prefix: &str) -> Vec<i32> {
    let pid = std::process::id();
    tasks(pid)
        .unwrap_or_default()
        .into_iter()
        .filter(|tid| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                .is_ok_and(|c| c.trim_end().starts_with(prefix))
        })
        .collect()
}

/// `struct perf_event_attr` as of PERF_ATTR_SIZE_VER0 (64 bytes): the
/// fields a counting tracepoint event needs.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    /// Bit 0 `disabled`; the rest (inherit, exclude_*) 0.
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_ATTR_SIZE_VER0: u32 = 64;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_EVENT_IOC_DISABLE: libc::c_ulong = 0x2401;
const PERF_EVENT_IOC_RESET: libc::c_ulong = 0x2403;

const _: () = assert!(std::mem::size_of::<PerfEventAttr>() == PERF_ATTR_SIZE_VER0 as usize);

/// The id of the `raw_syscalls:sys_enter` tracepoint.
fn sys_enter_id() -> io::Result<u64> {
    let mut last = io::Error::other("no tracefs");
    for dir in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        match std::fs::read_to_string(format!("{dir}/events/raw_syscalls/sys_enter/id")) {
            Ok(text) => {
                return text
                    .trim()
                    .parse()
                    .map_err(|_| io::Error::other(format!("{dir}: not a tracepoint id")));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Counts the system calls one thread makes while enabled.
#[derive(Debug)]
pub struct SyscallCounter {
    fd: OwnedFd,
}

impl SyscallCounter {
    /// A disabled counter on thread `tid` (any process this one may trace).
    ///
    /// # Errors
    ///
    /// No tracefs, or perf refused (not root and `perf_event_paranoid` > 1,
    /// or no perf in the kernel).
    pub fn on_thread(tid: i32) -> io::Result<SyscallCounter> {
        let attr = PerfEventAttr {
            kind: PERF_TYPE_TRACEPOINT,
            size: PERF_ATTR_SIZE_VER0,
            config: sys_enter_id()?,
            sample_period: 0,
            flags: 1,
            ..PerfEventAttr::default()
        };
        // SAFETY: attr is a live, fully initialised perf_event_attr of the
        // size it states; pid = tid, cpu = -1 (any), no group. The result
        // is checked and owned at once.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                &raw const attr,
                tid,
                -1i32,
                -1i32,
                PERF_FLAG_FD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(SyscallCounter { fd })
    }

    fn ioctl(&self, request: libc::c_ulong) -> io::Result<()> {
        // SAFETY: a perf event descriptor we own; these requests take no
        // argument.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), request as _, 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Zeroes the count and starts counting.
    pub fn start(&self) -> io::Result<()> {
        self.ioctl(PERF_EVENT_IOC_RESET)?;
        self.ioctl(PERF_EVENT_IOC_ENABLE)
    }

    /// Stops counting; returns the count since `start`.
    pub fn stop(&self) -> io::Result<u64> {
        self.ioctl(PERF_EVENT_IOC_DISABLE)?;
        let mut count = 0u64;
        // SAFETY: reading 8 bytes (the default read_format: the value) into
        // a live u64.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&raw mut count).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        if n != std::mem::size_of::<u64>() as isize {
            return Err(io::Error::last_os_error());
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_sees_its_own_cpu_time_and_name() {
        let tid = gettid();
        let pid = std::process::id();
        let before = own_thread_cpu_ns(tid).unwrap();
        let process = process_cpu_ns(pid).unwrap();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(x);
        let after = own_thread_cpu_ns(tid).unwrap();
        assert!(after > before, "{before} → {after}");
        assert!(process_cpu_ns(pid).unwrap() > process);
        assert!(tasks(pid).unwrap().contains(&tid));
        let slept = thread_sleeps(pid, tid).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(thread_sleeps(pid, tid).unwrap() > slept);
        assert!(process_sleeps(pid).unwrap() > slept);
    }

    #[test]
    fn the_syscall_counter_counts_where_perf_allows() {
        let Ok(counter) = SyscallCounter::on_thread(gettid()) else {
            return; // no perf or tracefs here: compare says n/a
        };
        counter.start().unwrap();
        for _ in 0..100 {
            // SAFETY: getppid has no arguments and cannot fail.
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
        let n = counter.stop().unwrap();
        assert!((100..200).contains(&n), "{n} system calls counted");
    }
}
