//! Reading a key's secret from a file, as `ordergate keys new
//! --secret-file` writes it and `ordergate-bench load --secret-file` reads it:
//! 64 hex digits, mode 0600.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ordergate_core::auth::secret::{SECRET_HEX_LEN, Secret};
use ordergate_core::constants::SECRET_FILE_SIZE_MAX;
use zeroize::Zeroizing;

use crate::files::{ReadBoundedError, read_bounded};

/// Reads an API secret from a file holding its 64 hex digits (surrounding
/// whitespace allowed). Refuses a file group or others may access, naming
/// its mode. Errors never contain the secret.
pub fn read_secret_file(path: &Path) -> Result<[u8; 32], String> {
    let name = path.display();
    let mut file = File::open(path).map_err(|e| format!("secret file {name}: cannot open: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("secret file {name}: cannot inspect: {e}"))?;
    if !meta.is_file() {
        return Err(format!("secret file {name}: not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "secret file {name} has mode {mode:04o}: it must not be accessible by group or others (chmod 600)"
        ));
    }
    let mut text = Zeroizing::new(Vec::new());
    read_bounded(&mut file, SECRET_FILE_SIZE_MAX, &mut text).map_err(|e| {
        use ReadBoundedError as E;
        match e {
            E::Inspect(e) => format!("secret file {name}: cannot inspect: {e}"),
            E::TooLarge { size } => {
                format!("secret file {name} is {size} bytes: a secret file holds 64 hex digits")
            }
            E::Read(e) => format!("secret file {name}: cannot read: {e}"),
            E::Changed => format!("secret file {name}: it changed size while being read"),
        }
    })?;
    let trimmed = std::str::from_utf8(&text)
        .map_err(|_| {
            format!("secret file {name}: not text; it must hold {SECRET_HEX_LEN} hex digits")
        })?
        .trim();
    let secret = Secret::from_hex(trimmed).map_err(|e| format!("secret file {name}: {e}"))?;
    Ok(*secret.expose())
}
