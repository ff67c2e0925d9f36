//! The one bounded file reader. Every file ordergate reads whole (the
//! config file, the keys file, `load`'s secret file, the journal's anchor
//! key file) is read through [`read_bounded`]: never more than its bound,
//! and into a buffer sized before the first byte arrives and never grown
//! after, so that a secret read into a `Zeroizing` buffer leaves no copy in
//! freed memory. (`/proc` and `/sys` files, which report no size, are read
//! with `std::fs`.)

use std::fs::File;
use std::io::{self, Read};

/// Why [`read_bounded`] read nothing.
#[derive(Debug)]
pub enum ReadBoundedError {
    /// Its size could not be learned (`fstat`).
    Inspect(io::Error),
    /// It is larger than the bound; nothing was read.
    TooLarge { size: u64 },
    /// Reading failed.
    Read(io::Error),
    /// Its size changed while it was read (it is being written, or it is
    /// not a file whose size means anything).
    Changed,
}

/// Reads the whole of `file`, at most `max` bytes, into `into` (replacing
/// what it held). `into` is sized to the file (one byte more, to see it
/// grow) before anything is read, and only shortened after.
///
/// # Errors
///
/// The file is larger than `max`, changed size while it was read, or
/// could not be inspected or read.
pub fn read_bounded(file: &mut File, max: u64, into: &mut Vec<u8>) -> Result<(), ReadBoundedError> {
    let size = file.metadata().map_err(ReadBoundedError::Inspect)?.len();
    if size > max {
        return Err(ReadBoundedError::TooLarge { size });
    }
    let size = usize::try_from(size).map_err(|_| ReadBoundedError::TooLarge { size })?;
    into.clear();
    into.resize(size + 1, 0);
    let mut filled = 0;
    while filled < into.len() {
        match file.read(&mut into[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                into.truncate(0);
                return Err(ReadBoundedError::Read(e));
            }
        }
    }
    into.truncate(filled.min(size));
    if filled != size {
        into.truncate(0);
        return Err(ReadBoundedError::Changed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, contents: &[u8]) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("ordergate-files-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn a_file_within_the_bound_is_read_whole_and_the_buffer_never_grows() {
        let path = temp("whole", b"listen = \"127.0.0.1:0\"\n");
        let mut into = Vec::new();
        read_bounded(&mut File::open(&path).unwrap(), 64, &mut into).unwrap();
        assert_eq!(into, b"listen = \"127.0.0.1:0\"\n");
        let capacity = into.capacity();
        assert!(capacity > into.len(), "room for the growth probe");
        // Exactly at the bound is allowed; one byte less is not.
        read_bounded(&mut File::open(&path).unwrap(), 23, &mut into).unwrap();
        assert_eq!(into.capacity(), capacity, "sized once, not grown");
        assert!(matches!(
            read_bounded(&mut File::open(&path).unwrap(), 22, &mut into),
            Err(ReadBoundedError::TooLarge { size: 23 })
        ));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_file_whose_size_is_not_its_length_is_refused() {
        // /proc files say 0 bytes and hold more: "changed" as it is read.
        let mut status = File::open("/proc/self/status").unwrap();
        let mut into = vec![1, 2, 3];
        assert!(matches!(
            read_bounded(&mut status, 1 << 20, &mut into),
            Err(ReadBoundedError::Changed)
        ));
        assert!(into.is_empty(), "nothing kept of a refused read");
    }

    #[test]
    fn an_empty_file_is_read_as_empty() {
        let path = temp("empty", b"");
        let mut into = vec![9];
        read_bounded(&mut File::open(&path).unwrap(), 0, &mut into).unwrap();
        assert!(into.is_empty());
        std::fs::remove_file(&path).unwrap();
    }
}
