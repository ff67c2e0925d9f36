//! The one wall clock: nanoseconds since the Unix epoch, read here and
//! nowhere else (`SystemTime::now` appears in no other module). The
//! sans-I/O core never calls it: the reactor, the journal writer and the
//! tools read it and hand `now` in.

use ordergate_core::engine::Nanos;

/// Nanoseconds since the Unix epoch (vDSO, no system call); 0 for a
/// clock set before 1970.
#[inline]
pub fn wall_ns() -> Nanos {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
