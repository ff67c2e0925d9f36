//! The narrow interface the journal writes through, a memory-mapped file
//! behind it, and an in-memory twin that can crash.
//!
//! [`Storage`] has four operations, so a test can stand between the journal
//! and the disk (redb's crash-consistency tests): [`MemStorage`] keeps a
//! *durable* image (what survived the last flush) and the writes made since,
//! in order, and [`MemStorage::crash`] rebuilds the file from the durable
//! image plus whichever of those writes (or parts of one) the test says
//! reached the disk.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use memmap2::MmapMut;

/// Mode of a new journal segment: the gateway's user only.
pub const JOURNAL_FILE_MODE: u32 = 0o600;

/// Fixed-length, byte-addressed storage.
pub trait Storage: Send {
    /// Length in bytes; never changes.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` from `offset`. `offset + buf.len() <= len()`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// Writes `data` at `offset`, visible to `read_at` at once, durable only
    /// after a `flush` covering it. `offset + data.len() <= len()`. Two
    /// writes reach the disk in any order unless a flush separates them.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;

    /// Makes `[offset, offset + len)` durable; returns when it is.
    fn flush(&mut self, offset: u64, len: u64) -> io::Result<()>;
}

fn out_of_range(offset: u64, len: usize, total: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("range {offset}+{len} is beyond the storage's {total} bytes"),
    )
}

fn range(offset: u64, len: usize, total: u64) -> io::Result<std::ops::Range<usize>> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= total => Ok(offset as usize..end as usize),
        _ => Err(out_of_range(offset, len, total)),
    }
}

/// A file mapped read-write in full, locked against a second writer.
///
/// Writes are `memcpy`s into the page cache (no syscall); [`Storage::flush`]
/// is `msync(MS_SYNC)` of the range. A process crash loses nothing written;
/// a kernel crash or power loss loses what was not flushed.
pub struct MmapStorage {
    map: MmapMut,
    /// Kept open for the `flock` (released when the file is closed) and the
    /// mapping.
    _file: File,
}

impl MmapStorage {
    /// Creates `path` of `len` bytes with `prefix` (the header) at offset 0,
    /// atomically: the file is built as `path.creating`, its blocks are
    /// allocated (`posix_fallocate`, so a later store into the mapping can
    /// never hit a hole on a full disk and SIGBUS), the prefix written,
    /// everything fsynced, and only then renamed to `path` and the directory
    /// fsynced. A crash leaves either no `path` or a whole one. Fails if
    /// `path` exists.
    pub fn create(path: &Path, len: u64, prefix: &[u8]) -> io::Result<()> {
        let mut tmp = PathBuf::from(path);
        tmp.as_mut_os_string().push(".creating");
        // Left over from a crash during an earlier create: never renamed,
        // so never a journal.
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // 0600 at creation (a umask can only narrow it): the journal names
        // every client address and key that logged on.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(JOURNAL_FILE_MODE)
            .open(&tmp)?;
        let length = libc::off_t::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "journal too large"))?;
        // SAFETY: `file` is an open, writable descriptor for the duration of
        // the call; posix_fallocate takes no pointers.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, length) };
        if rc != 0 {
            let _ = std::fs::remove_file(&tmp);
            return Err(io::Error::from_raw_os_error(rc));
        }
        file.write_all_at(prefix, 0)?;
        file.sync_all()?;
        drop(file);
        if path.exists() {
            let _ = std::fs::remove_file(&tmp);
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} appeared while it was being created", path.display()),
            ));
        }
        std::fs::rename(&tmp, path)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()?;
        Ok(())
    }

    /// Maps an existing `path`. Fails with `WouldBlock` if another process
    /// (or another `MmapStorage` in this one) holds it.
    pub fn open(path: &Path) -> io::Result<MmapStorage> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        // SAFETY: `file` is an open descriptor; flock takes no pointers.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        if file.metadata()?.len() == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "journal file is empty",
            ));
        }
        // SAFETY: mapping a file is undefined behaviour in Rust's model if
        // another process changes or truncates it while it is mapped. We hold
        // an exclusive `flock`, so no other ordergate process writes it; a
        // process that ignores the lock (an operator's editor, an attacker)
        // is outside what any mapped file can defend against, and the
        // journal detects its edits through the hash chain on the next open
        // or verify. The length is fixed at creation and never changed by
        // us.
        let map = unsafe { MmapMut::map_mut(&file)? };
        Ok(MmapStorage { map, _file: file })
    }
}

impl Storage for MmapStorage {
    fn len(&self) -> u64 {
        self.map.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let r = range(offset, buf.len(), self.len())?;
        buf.copy_from_slice(&self.map[r]);
        Ok(())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let r = range(offset, data.len(), self.len())?;
        self.map[r].copy_from_slice(data);
        Ok(())
    }

    fn flush(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let r = range(offset, len as usize, self.len())?;
        // memmap2 rounds the start down to a page boundary for msync.
        self.map.flush_range(r.start, r.len())
    }
}

/// An in-memory [`Storage`] that can simulate a crash. Cloning gives a
/// second handle to the same storage, so a test can keep one while the
/// journal owns the other.
#[derive(Clone)]
pub struct MemStorage {
    inner: Arc<Mutex<MemInner>>,
}

struct MemInner {
    /// What a crash now would leave, before any pending write lands.
    durable: Vec<u8>,
    /// What reads see.
    live: Vec<u8>,
    /// Writes since they were last covered by a flush, oldest first.
    pending: Vec<(u64, Vec<u8>)>,
    fail_writes: bool,
    fail_flushes: bool,
    flushes: u64,
}

impl MemStorage {
    /// `len` zero bytes, all durable.
    pub fn new(len: u64) -> MemStorage {
        MemStorage::from_image(vec![0; len as usize])
    }

    /// A storage holding `image`, all durable.
    pub fn from_image(image: Vec<u8>) -> MemStorage {
        MemStorage {
            inner: Arc::new(Mutex::new(MemInner {
                durable: image.clone(),
                live: image,
                pending: Vec::new(),
                fail_writes: false,
                fail_flushes: false,
                flushes: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, MemInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What reads see now.
    pub fn live_image(&self) -> Vec<u8> {
        self.lock().live.clone()
    }

    /// What has been flushed.
    pub fn durable_image(&self) -> Vec<u8> {
        self.lock().durable.clone()
    }

    /// Writes not yet covered by a flush.
    pub fn pending_writes(&self) -> usize {
        self.lock().pending.len()
    }

    /// Flushes that completed.
    pub fn flushes(&self) -> u64 {
        self.lock().flushes
    }

    /// Makes every later `write_at` (or `flush`) fail with an I/O error.
    pub fn set_failing(&self, writes: bool, flushes: bool) {
        let mut inner = self.lock();
        inner.fail_writes = writes;
        inner.fail_flushes = flushes;
    }

    /// A crash. The disk ends up as the durable image with, of the pending
    /// writes in order, the first `survive(n, offset, len)` bytes of write
    /// `n` applied (0: lost, `len`: whole). Afterwards live = durable and
    /// nothing is pending, as after a reboot.
    pub fn crash(&self, mut survive: impl FnMut(usize, u64, usize) -> usize) {
        let mut inner = self.lock();
        let mut image = inner.durable.clone();
        for (n, (offset, data)) in inner.pending.iter().enumerate() {
            let keep = survive(n, *offset, data.len()).min(data.len());
            let at = *offset as usize;
            image[at..at + keep].copy_from_slice(&data[..keep]);
        }
        inner.durable = image.clone();
        inner.live = image;
        inner.pending.clear();
    }

    /// A crash that loses every unflushed write.
    pub fn crash_losing_unflushed(&self) {
        self.crash(|_, _, _| 0);
    }

    /// A crash in which the first `whole` pending writes reached the disk,
    /// then `torn_bytes` of the next one, and nothing after.
    pub fn crash_tearing(&self, whole: usize, torn_bytes: usize) {
        self.crash(|n, _, len| match n.cmp(&whole) {
            std::cmp::Ordering::Less => len,
            std::cmp::Ordering::Equal => torn_bytes,
            std::cmp::Ordering::Greater => 0,
        });
    }
}

impl Storage for MemStorage {
    fn len(&self) -> u64 {
        self.lock().live.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let inner = self.lock();
        let r = range(offset, buf.len(), inner.live.len() as u64)?;
        buf.copy_from_slice(&inner.live[r]);
        Ok(())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut inner = self.lock();
        if inner.fail_writes {
            return Err(io::Error::other("simulated write failure"));
        }
        let r = range(offset, data.len(), inner.live.len() as u64)?;
        inner.live[r].copy_from_slice(data);
        inner.pending.push((offset, data.to_vec()));
        Ok(())
    }

    fn flush(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let mut inner = self.lock();
        if inner.fail_flushes {
            return Err(io::Error::other("simulated flush failure"));
        }
        let r = range(offset, len as usize, inner.live.len() as u64)?;
        let MemInner { durable, live, .. } = &mut *inner;
        durable[r.clone()].copy_from_slice(&live[r.clone()]);
        inner.pending.retain(|(o, d)| {
            let start = *o as usize;
            !(start >= r.start && start + d.len() <= r.end)
        });
        inner.flushes += 1;
        Ok(())
    }
}

// Segments ---------------------------------------------------------------

/// Where the journal's next segment comes from when the current one is
/// full (rollover). The journal thread calls it; it may block on the disk.
pub trait SegmentFactory: Send {
    /// Creates segment `segment` of `len` bytes whose first bytes are
    /// `prefix` (its header and its SegmentStart record), durably and
    /// atomically (a crash leaves it whole or absent), and opens it for
    /// appending. Fails if it exists. Returns the storage and, for a file,
    /// its path.
    fn create(
        &mut self,
        segment: u64,
        len: u64,
        prefix: &[u8],
    ) -> io::Result<(Box<dyn Storage>, Option<PathBuf>)>;
}

/// The file of segment `segment` of the journal at `base`: `base` itself
/// for segment 0, `base.N` for segment N.
pub fn segment_path(base: &Path, segment: u64) -> PathBuf {
    if segment == 0 {
        return base.to_path_buf();
    }
    let mut path = base.as_os_str().to_owned();
    path.push(format!(".{segment}"));
    PathBuf::from(path)
}

/// The base of the journal whose segment `segment` is at `path`: `path`
/// without its `.N` suffix (as is, if it has none).
pub fn segment_base(path: &Path, segment: u64) -> PathBuf {
    if segment > 0
        && let Some(name) = path.to_str()
        && let Some(base) = name.strip_suffix(&format!(".{segment}"))
    {
        return PathBuf::from(base);
    }
    path.to_path_buf()
}

/// The highest segment number N for which `base.N` exists in `base`'s
/// directory (N ≥ 1, written without leading zeros), or 0 if there is none.
/// A segment whose file is `base.N.creating` (a rollover that crashed
/// before its rename) is not one.
pub fn latest_segment(base: &Path) -> io::Result<u64> {
    let Some(name) = base.file_name().and_then(|n| n.to_str()) else {
        return Ok(0);
    };
    let prefix = format!("{name}.");
    let dir = match base.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut latest = 0;
    for entry in entries {
        let entry = entry?;
        let file = entry.file_name();
        let Some(number) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        if number.is_empty()
            || number.starts_with('0')
            || !number.bytes().all(|b| b.is_ascii_digit())
        {
            continue;
        }
        if let Ok(n) = number.parse::<u64>() {
            latest = latest.max(n);
        }
    }
    Ok(latest)
}

/// Segments as files next to the first: `base.1`, `base.2`, … each made
/// by [`MmapStorage::create`] (preallocated, fsynced, renamed into place).
pub struct FileSegments {
    base: PathBuf,
}

impl FileSegments {
    pub fn new(base: &Path) -> FileSegments {
        FileSegments {
            base: base.to_path_buf(),
        }
    }
}

impl SegmentFactory for FileSegments {
    fn create(
        &mut self,
        segment: u64,
        len: u64,
        prefix: &[u8],
    ) -> io::Result<(Box<dyn Storage>, Option<PathBuf>)> {
        let path = segment_path(&self.base, segment);
        if path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists", path.display()),
            ));
        }
        MmapStorage::create(&path, len, prefix)?;
        let storage = MmapStorage::open(&path)?;
        Ok((Box::new(storage), Some(path)))
    }
}

/// Segments in memory, for tests: each created segment is a [`MemStorage`]
/// the test can read back; [`MemSegments::set_failing`] plays a full disk.
#[derive(Clone, Default)]
pub struct MemSegments {
    inner: Arc<Mutex<(Vec<MemStorage>, bool)>>,
}

impl MemSegments {
    pub fn new() -> MemSegments {
        MemSegments::default()
    }

    /// The segments created so far (the first is not among them: the
    /// journal was opened on it).
    pub fn created(&self) -> Vec<MemStorage> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// Makes every later `create` fail as a full disk would.
    pub fn set_failing(&self, failing: bool) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).1 = failing;
    }
}

impl SegmentFactory for MemSegments {
    fn create(
        &mut self,
        _segment: u64,
        len: u64,
        prefix: &[u8],
    ) -> io::Result<(Box<dyn Storage>, Option<PathBuf>)> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.1 {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let mut image = vec![0u8; len as usize];
        image[..prefix.len()].copy_from_slice(prefix);
        let storage = MemStorage::from_image(image);
        inner.0.push(storage.clone());
        Ok((Box::new(storage), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The journal names every client address and key that logged on: only
    /// the gateway's user may read it, whatever the umask.
    #[test]
    fn a_new_journal_file_is_mode_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("ordergate-mode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.journal");
        crate::sys::with_umask(0o000, || MmapStorage::create(&path, 4096, b"x")).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(mode, 0o600, "mode {mode:o}");
    }

    #[test]
    fn segment_paths_and_the_latest_segment() {
        let base = Path::new("/var/x/audit.journal");
        assert_eq!(segment_path(base, 0), base);
        assert_eq!(segment_path(base, 12), Path::new("/var/x/audit.journal.12"));
        assert_eq!(segment_base(&segment_path(base, 12), 12), base);
        assert_eq!(segment_base(base, 0), base);

        let dir = std::env::temp_dir().join(format!("ordergate-segments-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let base = dir.join("audit.journal");
        assert_eq!(latest_segment(&base).unwrap(), 0);
        for name in [
            "audit.journal",
            "audit.journal.1",
            "audit.journal.3",
            "audit.journal.04",
            "audit.journal.9.creating",
            "audit.journal.x",
            "other.journal.7",
        ] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        assert_eq!(latest_segment(&base).unwrap(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mem_storage_loses_unflushed_writes_and_tears_on_request() {
        let mut s = MemStorage::new(64);
        s.write_at(0, &[1; 8]).unwrap();
        s.flush(0, 8).unwrap();
        s.write_at(8, &[2; 8]).unwrap();
        s.write_at(16, &[3; 8]).unwrap();
        let mut b = [0u8; 24];
        s.read_at(0, &mut b).unwrap();
        assert_eq!(&b[16..], &[3; 8]);
        assert_eq!(s.pending_writes(), 2);

        let keep = s.clone();
        keep.crash_tearing(1, 3);
        s.read_at(0, &mut b).unwrap();
        assert_eq!(&b[..8], &[1; 8]);
        assert_eq!(&b[8..16], &[2; 8]);
        assert_eq!(&b[16..], &[3, 3, 3, 0, 0, 0, 0, 0]);

        s.write_at(32, &[4; 8]).unwrap();
        keep.crash_losing_unflushed();
        s.read_at(32, &mut b[..8]).unwrap();
        assert_eq!(&b[..8], &[0; 8]);
        assert!(s.write_at(60, &[0; 8]).is_err(), "out of range");
    }
}
