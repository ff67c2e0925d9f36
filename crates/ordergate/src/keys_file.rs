//! Reading the keys file: the part of loading keys that touches the file
//! system and the kernel, kept out of the sans-I/O core. The file is opened
//! without following a symlink or waiting on a FIFO, checked on the opened
//! handle (a regular file, mode 0600 or stricter, owned by the gateway's
//! user or root, at most `KEYS_FILE_SIZE_MAX` bytes), read into one wiped
//! buffer of exactly its size, and parsed by
//! `ordergate_core::auth::keys::KeyTable::from_toml_str_protected` with the
//! table's pages kept out of core dumps and swap
//! ([`protect_secret_memory`]) before any secret is decoded into them.
//! `docs/KEYS.md` is the operators' reference; the rules of the file are
//! `ordergate_core::auth::keys`'s module docs.
//!
//! The audit journal's anchor key file is read here too
//! ([`load_anchor_key`]), with the same checks.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use zeroize::Zeroizing;

use crate::auth::keys::{KEYS_FILE_SIZE_MAX, KeyTable, KeysError, KeysErrorKind};
use crate::auth::secret::{SECRET_HEX_LEN, Secret};
use crate::constants::ANCHOR_KEY_FILE_SIZE_MAX;
use crate::journal::AnchorKey;
use crate::sys::{euid, protect_secret_memory};

/// `KeyTable::load(path)`: the keys file loader as an associated function of
/// the table, where callers have always found it (bring the trait into
/// scope: `use ordergate::auth::keys::KeysFile`).
pub trait KeysFile: Sized {
    /// Reads, checks and parses the keys file at `path`.
    ///
    /// # Errors
    ///
    /// See [`load`]: every refusal names the file.
    fn load(path: &Path) -> Result<Self, KeysError>;
}

impl KeysFile for KeyTable {
    fn load(path: &Path) -> Result<KeyTable, KeysError> {
        load(path)
    }
}

/// Reads, checks and parses the keys file at `path`.
///
/// The permission check is made on the opened file (`fstat` of the
/// handle that is then read), so the file checked is the file read.
///
/// # Errors
///
/// See the module docs: every refusal names the file.
pub fn load(path: &Path) -> Result<KeyTable, KeysError> {
    let origin = path.display().to_string();
    let fail = |kind| KeysError::new(&origin, None, None, kind);

    // O_NOFOLLOW: a symlink is refused, not followed (whoever can
    // write the directory must not redirect the gateway to a file of
    // their choosing). O_NONBLOCK: a FIFO is opened without waiting for
    // a writer, then refused by the regular-file check below, instead
    // of hanging the start-up or the reload.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| {
            fail(if source.raw_os_error() == Some(libc::ELOOP) {
                KeysErrorKind::Symlink
            } else {
                KeysErrorKind::Io {
                    action: "open",
                    source,
                }
            })
        })?;
    let metadata = file.metadata().map_err(|source| {
        fail(KeysErrorKind::Io {
            action: "inspect",
            source,
        })
    })?;
    if !metadata.is_file() {
        return Err(fail(KeysErrorKind::NotRegularFile));
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(fail(KeysErrorKind::Permissions { mode }));
    }
    // Only the gateway's own user or root may own the secrets: a file
    // another user owns is one that user can rewrite (chmod it back).
    let owner = metadata.uid();
    let me = euid();
    if owner != me && owner != 0 {
        return Err(fail(KeysErrorKind::Owner { owner, me }));
    }
    // Sized to the file before a byte is read and never grown, so no
    // copy of the text is left in a freed buffer; wiped on drop.
    let mut bytes = Zeroizing::new(Vec::new());
    crate::files::read_bounded(&mut file, KEYS_FILE_SIZE_MAX, &mut bytes).map_err(|e| {
        use crate::files::ReadBoundedError as E;
        fail(match e {
            E::Inspect(source) => KeysErrorKind::Io {
                action: "inspect",
                source,
            },
            E::TooLarge { size } => KeysErrorKind::TooLarge {
                size,
                max: KEYS_FILE_SIZE_MAX,
            },
            E::Read(source) => KeysErrorKind::Io {
                action: "read",
                source,
            },
            E::Changed => KeysErrorKind::ChangedWhileReading,
        })
    })?;

    let text = core::str::from_utf8(&bytes).map_err(|e| {
        fail(KeysErrorKind::NotUtf8 {
            offset: e.valid_up_to(),
        })
    })?;
    KeyTable::from_toml_str_protected(text, &origin, protect_secret_memory)
}

/// Reads the key from `path`: 64 hex digits (surrounding whitespace
/// allowed), as a keys file's secret. Refused, naming the path: a file
/// group or others may access in any way (`mode & 0o077`, chmod 600),
/// a symbolic link (not followed), anything but a regular file (a FIFO
/// is opened without blocking and refused), a file owned by another
/// user than the caller or root, or a larger one. Errors never hold key
/// material.
pub fn load_anchor_key(path: &Path) -> Result<AnchorKey, String> {
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
    let (owner, me) = (meta.uid(), euid());
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
            format!("anchor key file {name}: not text; it must hold {SECRET_HEX_LEN} hex digits")
        })?
        .trim();
    let secret = Secret::from_hex(trimmed).map_err(|e| format!("anchor key file {name}: {e}"))?;
    Ok(AnchorKey::from_secret(secret))
}
