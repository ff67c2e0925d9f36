//! Reading a key's secret from a file, as `ordergate keys new
//! --secret-file` writes it and `ordergate load --secret-file` reads it:
//! 64 hex digits, mode 0600.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ordergate_core::auth::secret::{SECRET_HEX_LEN, Secret};
use ordergate_core::constants::SECRET_FILE_SIZE_MAX;
use zeroize::Zeroizing;

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
    if meta.len() > SECRET_FILE_SIZE_MAX {
        return Err(format!(
            "secret file {name} is {} bytes: a secret file holds 64 hex digits",
            meta.len()
        ));
    }
    let mut text = Zeroizing::new(Vec::with_capacity(SECRET_FILE_SIZE_MAX as usize));
    (&mut file)
        .take(SECRET_FILE_SIZE_MAX)
        .read_to_end(&mut text)
        .map_err(|e| format!("secret file {name}: cannot read: {e}"))?;
    let trimmed = std::str::from_utf8(&text)
        .map_err(|_| {
            format!("secret file {name}: not text; it must hold {SECRET_HEX_LEN} hex digits")
        })?
        .trim();
    let secret = Secret::from_hex(trimmed).map_err(|e| format!("secret file {name}: {e}"))?;
    Ok(*secret.expose())
}
