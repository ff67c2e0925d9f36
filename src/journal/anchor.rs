//! The anchor key and the journal's checkpoints.
//!
//! The hash chain has no secret: whoever can write the journal can rewrite
//! a record and recompute every hash after it, or cut records off its end,
//! and the chain still verifies. A checkpoint closes that: when the gateway
//! is given an anchor key (`audit_anchor_key_file`, a file of its own, mode
//! 0600, that the journal never holds), the journal appends a
//! [`Checkpoint`](super::AuditKind::Checkpoint) record at least every
//! [`JOURNAL_CHECKPOINT_RECORDS`] records, in the last slot of every
//! segment, and when the gateway stops:
//!
//! ```text
//!  checkpoint record (kind 15), at global index i
//!  +0    index     i
//!  +8    time_ns   when it was written
//!  +16   mac       [u8; 32]  HMAC-SHA256(anchor key, DOMAIN ‖ record bytes 0..120
//!                            with these 32 bytes zero)      (key_id, session, addr)
//!  +48   detail    the most records the writer lets pass between checkpoints (64)
//!  +52   reason    1 PERIODIC · 2 SEGMENT_END · 3 CLOSE
//!  +54   reactor   0xffff
//!  +56   kind      15
//!  +64   prev_hash hash of record i-1: the chain head, so the MAC covers
//!                  every record before the checkpoint
//!  +96   key tag   u64: first 8 bytes of HMAC(anchor key, TAG_DOMAIN): names
//!                  the key without revealing it                (last_ns)
//!  +120  commit    as for every record
//! ```
//!
//! `audit verify --anchor-key FILE` recomputes every checkpoint's MAC: a
//! record changed before it (with the chain recomputed, or not) changes its
//! `prev_hash`, and a checkpoint moved, copied or edited changes the bytes
//! under the MAC; neither can be made to match without the key.
//!
//! [`JOURNAL_CHECKPOINT_RECORDS`]: crate::constants::JOURNAL_CHECKPOINT_RECORDS

use std::fmt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::format::{RECORD_ADDR_OFFSET, RECORD_COMMIT_OFFSET, RECORD_DETAIL_OFFSET, RECORD_SIZE};
use crate::auth::secret::{SECRET_HEX_LEN, Secret};
use crate::auth::tag::constant_time_eq;

/// What the MAC of a checkpoint starts with: no other HMAC under the key
/// (should it ever be used for one) can be taken for a checkpoint's.
pub const CHECKPOINT_DOMAIN: &[u8] = b"ordergate audit checkpoint v1\0";

/// What the key tag is the MAC of.
pub const TAG_DOMAIN: &[u8] = b"ordergate audit anchor key tag v1\0";

/// Bytes of a checkpoint record that hold its MAC: those of `key_id`,
/// `session` and `addr`, as a SegmentStart holds its hash.
pub const MAC_RANGE: std::ops::Range<usize> = 16..RECORD_DETAIL_OFFSET;

/// Longest anchor key file read: 64 hex digits and whitespace fit many
/// times over; anything longer is not a key file and is refused unread.
pub const ANCHOR_KEY_FILE_SIZE_MAX: u64 = 4096;

const _: () = assert!(MAC_RANGE.start == super::format::RECORD_KEY_ID_OFFSET);
const _: () = assert!(RECORD_ADDR_OFFSET + 16 == MAC_RANGE.end);
const _: () = assert!(MAC_RANGE.end - MAC_RANGE.start == 32);

/// The key checkpoints are made with: 32 bytes, wiped on drop. `Debug`
/// shows only its [tag](Self::tag).
pub struct AnchorKey {
    secret: Secret,
    tag: u64,
}

impl fmt::Debug for AnchorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AnchorKey(tag {:016x})", self.tag)
    }
}

impl AnchorKey {
    /// A key from its bytes (tests). The caller's array is a copy this
    /// type cannot wipe.
    pub fn from_bytes(bytes: [u8; 32]) -> AnchorKey {
        AnchorKey::from_secret(Secret::from_bytes(bytes))
    }

    fn from_secret(secret: Secret) -> AnchorKey {
        let full = hmac(secret.expose(), &[TAG_DOMAIN]);
        let tag = u64::from_le_bytes(full[..8].try_into().expect("8 bytes"));
        AnchorKey { secret, tag }
    }

    /// Reads the key from `path`: 64 hex digits (surrounding whitespace
    /// allowed), as a keys file's secret. Refused, naming the path: a file
    /// group or others may access in any way (`mode & 0o077`, chmod 600),
    /// a symbolic link (not followed), anything but a regular file (a FIFO
    /// is opened without blocking and refused), a file owned by another
    /// user than the caller or root, or a larger one. Errors never hold key
    /// material.
    pub fn load(path: &Path) -> Result<AnchorKey, String> {
        let name = path.display();
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    format!(
                        "anchor key file {name} is a symbolic link; name the file itself \
                         (links are not followed)"
                    )
                } else {
                    format!("anchor key file {name}: cannot open it: {e}")
                }
            })?;
        let meta = file
            .metadata()
            .map_err(|e| format!("anchor key file {name}: cannot inspect it: {e}"))?;
        if !meta.is_file() {
            return Err(format!("anchor key file {name} is not a regular file"));
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "anchor key file {name} has mode {mode:04o}: it must not be accessible by group \
                 or others (chmod 600)"
            ));
        }
        let (owner, me) = (meta.uid(), crate::sys::euid());
        if owner != me && owner != 0 {
            return Err(format!(
                "anchor key file {name} belongs to uid {owner}, not to this user (uid {me}) or \
                 root; chown it"
            ));
        }
        let mut text = Zeroizing::new(Vec::new());
        crate::files::read_bounded(&mut file, ANCHOR_KEY_FILE_SIZE_MAX, &mut text).map_err(|e| {
            use crate::files::ReadBoundedError as E;
            match e {
                E::Inspect(e) => format!("anchor key file {name}: cannot inspect it: {e}"),
                E::TooLarge { size } => format!(
                    "anchor key file {name} is {size} bytes: it holds {SECRET_HEX_LEN} hex digits"
                ),
                E::Read(e) => format!("anchor key file {name}: cannot read it: {e}"),
                E::Changed => format!("anchor key file {name}: it changed size while being read"),
            }
        })?;
        let trimmed = std::str::from_utf8(&text)
            .map_err(|_| {
                format!(
                    "anchor key file {name}: not text; it must hold {SECRET_HEX_LEN} hex digits"
                )
            })?
            .trim();
        let secret =
            Secret::from_hex(trimmed).map_err(|e| format!("anchor key file {name}: {e}"))?;
        Ok(AnchorKey::from_secret(secret))
    }

    /// Names the key without revealing it: the first 8 bytes of
    /// HMAC(key, [`TAG_DOMAIN`]). Stored in every checkpoint, so `verify`
    /// can tell "made with another key" from "tampered with".
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// The MAC of a checkpoint record whose bytes are `record` (the MAC's
    /// own bytes, [`MAC_RANGE`], are taken as zero; the commit is not
    /// covered: it is a hash of what is).
    pub fn mac(&self, record: &[u8; RECORD_SIZE]) -> [u8; 32] {
        let mut covered = *record;
        covered[MAC_RANGE].fill(0);
        hmac(
            self.secret.expose(),
            &[CHECKPOINT_DOMAIN, &covered[..RECORD_COMMIT_OFFSET]],
        )
    }

    /// Whether the checkpoint record `record` carries this key's MAC
    /// (compared in constant time).
    pub fn verifies(&self, record: &[u8; RECORD_SIZE]) -> bool {
        constant_time_eq(&self.mac(record), &record[MAC_RANGE])
    }
}

fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_names_the_key_and_the_mac_covers_every_byte_but_its_own() {
        let a = AnchorKey::from_bytes([1; 32]);
        let b = AnchorKey::from_bytes([2; 32]);
        assert_ne!(a.tag(), b.tag());
        assert!(format!("{a:?}").starts_with("AnchorKey(tag "));
        let mut record = [0u8; RECORD_SIZE];
        record[0] = 9;
        let mac = a.mac(&record);
        record[MAC_RANGE].copy_from_slice(&mac);
        assert!(a.verifies(&record));
        assert!(!b.verifies(&record));
        for at in (0..RECORD_COMMIT_OFFSET).filter(|i| !MAC_RANGE.contains(i)) {
            let mut edited = record;
            edited[at] ^= 1;
            assert!(!a.verifies(&edited), "edit at {at} went unnoticed");
        }
    }
}
