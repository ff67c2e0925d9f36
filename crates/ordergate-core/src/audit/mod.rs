//! What the audit journal records, without the journal: the event a reactor
//! hands over ([`event`]), the on-disk record and header encoding and its
//! hashes ([`format`](mod@format)), and the reactor's end of the audit ring with the
//! health flag and figures it reads ([`sink`]). Storage, the journal thread,
//! recovery and `ordergate audit` are the runtime's (`ordergate::journal`);
//! the layout is documented there and in `docs/JOURNAL.md`.

pub mod anchor;
pub mod event;
pub mod format;
pub mod sink;

pub use anchor::AnchorKey;
pub use event::{ADDR_NONE, AuditEvent, AuditKind, OpenKind, from_ip, to_ip};
pub use format::{Extra, HEADER_INDEX, Hash, hex, parse_hash};
pub use sink::{AuditSink, FailReason, JournalFigures, JournalHealth};
