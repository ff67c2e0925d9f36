//! An API key's secret: exactly 32 bytes (PROTOCOL.md, "Authentication").
//!
//! The bytes are readable only through [`Secret::expose`], and are wiped when
//! the value is dropped. `Debug` prints `Secret(<redacted>)`; there is no
//! `Display`, no `Serialize`, no `Clone` and no `PartialEq` (a comparison of
//! secrets would have to be constant-time, and nothing needs one).
//!
//! What wiping cannot reach: a Rust move is a byte copy whose source is not
//! wiped, so every move of a `Secret` (and the array given to
//! [`Secret::from_bytes`]) may leave a copy in a stack frame or a freed
//! buffer. Code that builds long-lived secrets should fill them in place,
//! as `KeyTable` loading does.

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Bytes in a secret.
pub const SECRET_SIZE: usize = 32;

/// Hex digits in the written form of a secret.
pub const SECRET_HEX_LEN: usize = 2 * SECRET_SIZE;

/// An API secret. Wiped on drop.
#[repr(transparent)]
pub struct Secret([u8; SECRET_SIZE]);

impl Secret {
    /// A secret from its bytes. The caller's array is a copy this type cannot
    /// wipe: zeroize it if it outlives this call.
    pub fn from_bytes(bytes: [u8; SECRET_SIZE]) -> Secret {
        Secret(bytes)
    }

    /// A secret from exactly 64 hex digits (either case).
    ///
    /// # Errors
    ///
    /// [`SecretError`] says whether the length or a character is wrong, and
    /// where; it never holds any of the input.
    pub fn from_hex(hex: &str) -> Result<Secret, SecretError> {
        let mut secret = Secret([0; SECRET_SIZE]);
        secret.fill_from_hex(hex)?;
        Ok(secret)
    }

    /// The secret bytes. The only way to read them: every caller is a place
    /// where the secret leaves this type, and is easy to find.
    #[inline]
    pub fn expose(&self) -> &[u8; SECRET_SIZE] {
        &self.0
    }

    /// Checks that `hex` is exactly 64 hex digits, without decoding it.
    pub(crate) fn check_hex(hex: &str) -> Result<(), SecretError> {
        let found = hex.chars().count();
        if found != SECRET_HEX_LEN {
            return Err(SecretError::Length { found });
        }
        // 64 chars and every one a hex digit implies 64 ASCII bytes.
        match hex.chars().position(|c| !c.is_ascii_hexdigit()) {
            Some(index) => Err(SecretError::NotHex {
                position: index + 1,
            }),
            None => Ok(()),
        }
    }

    /// Decodes `hex` straight into this secret's own bytes, so the decoded
    /// secret exists nowhere else. Nothing is written unless `hex` is valid.
    pub(crate) fn fill_from_hex(&mut self, hex: &str) -> Result<(), SecretError> {
        Secret::check_hex(hex)?;
        // `decode_to_slice` writes into the wiped buffer itself (no
        // intermediate `Vec`, unlike `hex::decode`): the one copy of the
        // secret stays the one `Drop` zeroizes. `check_hex` made it valid.
        hex::decode_to_slice(hex, &mut self.0).expect("checked: 64 hex digits");
        Ok(())
    }
}

impl Zeroize for Secret {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a written secret was refused. Holds no part of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The text is not 64 characters long.
    #[error(
        "secret has {found} characters; it must be exactly {SECRET_HEX_LEN} hex digits ({SECRET_SIZE} bytes)"
    )]
    Length { found: usize },
    /// The character at `position` (1-based, in characters) is not a hex
    /// digit; the length was right.
    #[error("secret character {position} of {SECRET_HEX_LEN} is not a hex digit (0-9, a-f, A-F)")]
    NotHex { position: usize },
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::MaybeUninit;

    const HEX: &str = "8f1c2d3e4f5061728394a5b6c7d8e9f00112233445566778899aabbccddeeff0";

    fn bytes_of(hex: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn from_hex_decodes_either_case() {
        let lower = Secret::from_hex(HEX).unwrap();
        let upper = Secret::from_hex(&HEX.to_uppercase()).unwrap();
        assert_eq!(lower.expose(), &bytes_of(HEX));
        assert_eq!(upper.expose(), lower.expose());
        assert_eq!(Secret::from_bytes(bytes_of(HEX)).expose(), lower.expose());
    }

    #[test]
    fn from_hex_refuses_wrong_length() {
        assert_eq!(
            Secret::from_hex(&HEX[..63]).unwrap_err(),
            SecretError::Length { found: 63 }
        );
        assert_eq!(
            Secret::from_hex(&format!("{HEX}0")).unwrap_err(),
            SecretError::Length { found: 65 }
        );
        assert_eq!(
            Secret::from_hex("").unwrap_err(),
            SecretError::Length { found: 0 }
        );
        // Length is counted in characters: 63 hex digits and one 2-byte char.
        let accented = format!("{}é", &HEX[..63]);
        assert_eq!(
            Secret::from_hex(&accented).unwrap_err(),
            SecretError::NotHex { position: 64 }
        );
    }

    #[test]
    fn from_hex_refuses_non_hex_with_its_position() {
        let mut bad = HEX.to_owned();
        bad.replace_range(16..17, "g");
        assert_eq!(
            Secret::from_hex(&bad).unwrap_err(),
            SecretError::NotHex { position: 17 }
        );
        let spaced = format!(" {}", &HEX[1..]);
        assert_eq!(
            Secret::from_hex(&spaced).unwrap_err(),
            SecretError::NotHex { position: 1 }
        );
    }

    #[test]
    fn errors_never_echo_input() {
        let mut bad = HEX.to_owned();
        bad.replace_range(60..61, "z");
        for err in [
            Secret::from_hex(&bad).unwrap_err(),
            Secret::from_hex(&HEX[..40]).unwrap_err(),
        ] {
            for text in [err.to_string(), format!("{err:?}")] {
                assert!(!text.contains(&HEX[..8]), "{text}");
                assert!(!text.contains('z'), "{text}");
            }
        }
    }

    #[test]
    fn debug_is_redacted() {
        let secret = Secret::from_hex(HEX).unwrap();
        let debug = format!("{secret:?}");
        assert_eq!(debug, "Secret(<redacted>)");
        let alt = format!("{secret:#?}");
        for text in [debug, alt] {
            assert!(!text.to_lowercase().contains(&HEX[..4]), "{text}");
            assert!(!text.contains("143"), "{text}"); // 0x8f as decimal
        }
    }

    #[test]
    fn zeroize_wipes_the_bytes() {
        let mut secret = Secret::from_hex(HEX).unwrap();
        secret.zeroize();
        assert_eq!(secret.expose(), &[0u8; 32]);
    }

    #[test]
    fn drop_wipes_the_bytes() {
        let mut slot = MaybeUninit::new(Secret::from_hex(HEX).unwrap());
        // SAFETY: `slot` was initialised just above and is dropped only here;
        // `MaybeUninit` never drops it again.
        unsafe { slot.assume_init_drop() };
        // SAFETY: dropping a `Secret` runs `Drop::drop`, which writes zeros
        // (volatile) and frees nothing, so all 32 bytes are initialised `u8`s;
        // `Secret` is a one-field tuple struct of `[u8; 32]`, so the cast
        // pointer is valid and aligned for `[u8; 32]`.
        let after: [u8; 32] = unsafe { slot.as_ptr().cast::<[u8; 32]>().read() };
        assert_eq!(after, [0u8; 32]);
    }
}
