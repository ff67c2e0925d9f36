//! The anchor key and the journal's checkpoints. (Reading the anchor key
//! file is the runtime's: `ordergate::keys_file`, `AnchorKey::load`.)
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

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::event::{AuditEvent, AuditKind, CheckpointKind};
use super::format::{
    Extra, Hash, RECORD_ADDR_OFFSET, RECORD_COMMIT_OFFSET, RECORD_DETAIL_OFFSET, RECORD_SIZE,
    commit, encode_record_with,
};
use crate::auth::secret::Secret;
use crate::auth::tag::constant_time_eq;

/// What the MAC of a checkpoint starts with: no other HMAC under the key
/// (should it ever be used for one) can be taken for a checkpoint's.
pub const CHECKPOINT_DOMAIN: &[u8] = b"ordergate audit checkpoint v1\0";

/// What the key tag is the MAC of.
pub const TAG_DOMAIN: &[u8] = b"ordergate audit anchor key tag v1\0";

/// Bytes of a checkpoint record that hold its MAC: those of `key_id`,
/// `session` and `addr`, as a SegmentStart holds its hash.
pub const MAC_RANGE: std::ops::Range<usize> = 16..RECORD_DETAIL_OFFSET;

/// Longest anchor key file read (defined in `constants`).
pub use crate::constants::ANCHOR_KEY_FILE_SIZE_MAX;

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

    /// The key a secret holds (the runtime's loader reads it from the
    /// anchor key file: `ordergate::keys_file`).
    pub fn from_secret(secret: Secret) -> AnchorKey {
        let full = hmac(secret.expose(), &[TAG_DOMAIN]);
        let tag = u64::from_le_bytes(full[..8].try_into().expect("8 bytes"));
        AnchorKey { secret, tag }
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

/// A checkpoint at global index `index`, chained to `prev_hash` (the chain
/// head it authenticates): `kind`, written at `time_ns` by a writer that
/// lets at most `interval` records pass between checkpoints, with `key`'s
/// tag and MAC.
pub fn encode_checkpoint(
    index: u64,
    prev_hash: &Hash,
    time_ns: u64,
    kind: CheckpointKind,
    interval: u64,
    key: &AnchorKey,
) -> ([u8; RECORD_SIZE], Hash) {
    let mut e = AuditEvent::empty(AuditKind::Checkpoint, time_ns);
    e.detail = u32::try_from(interval).unwrap_or(u32::MAX);
    e.reason = kind as u16;
    let extra = Extra {
        of_kind: 0,
        last_ns: key.tag(),
    };
    let (mut b, _) = encode_record_with(index, prev_hash, &e, &extra);
    let mac = key.mac(&b);
    b[MAC_RANGE].copy_from_slice(&mac);
    commit(b)
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
    use crate::audit::format::{Slot, decode_slot};

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

    #[test]
    fn a_checkpoint_carries_its_mac_and_key_tag() {
        let key = AnchorKey::from_bytes([3; 32]);
        let (b, _) = encode_checkpoint(9, &[1; 32], 7, CheckpointKind::Periodic, 64, &key);
        let Slot::Committed(r) = decode_slot(&b) else {
            panic!("not committed")
        };
        assert_eq!(r.check(9, &[1; 32]), Ok(()));
        assert_eq!(
            r.checkpoint(),
            Some((CheckpointKind::Periodic, 64, key.tag()))
        );
        assert!(key.verifies(&b));
        assert!(!AnchorKey::from_bytes([4; 32]).verifies(&b));
    }
}
