//! `KeyTable::load` against real files: permissions, reading, and that the
//! errors name the file and never the secret.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ordergate::auth::keys::{KEYS_FILE_SIZE_MAX, KeyIndex, KeyTable, KeysError, KeysErrorKind};
use ordergate::auth::secret::SecretError;
use ordergate::constants::{BURST_DEFAULT, KEYS_MAX, MSGS_PER_SEC_DEFAULT};
use ordergate::wire::codes::{Environment, Scopes};

const SECRET: &str = "5eC7e75eC7e75eC7e75eC7e75eC7e75eC7e75eC7e75eC7e75eC7e75eC7e75eC7";

/// A file under the temp dir with a name no other test or process uses,
/// removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, contents: &[u8], mode: u32) -> TempFile {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "ordergate-keys-{}-{}-{}.toml",
            std::process::id(),
            tag,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn entry(id: u64) -> String {
    format!(
        "[[key]]\nid = {id}\nsecret = \"{SECRET}\"\nscopes = [\"trade\", \"cancel\"]\nenvironment = \"production\"\n"
    )
}

fn assert_no_secret(text: &str) {
    let lower = text.to_lowercase();
    let secret = SECRET.to_lowercase();
    for start in 0..=secret.len() - 8 {
        assert!(
            !lower.contains(&secret[start..start + 8]),
            "secret leaked into: {text}"
        );
    }
}

/// Loads `contents` from a 0600 file and returns the refusal, checked to
/// name the file and to hold no secret.
fn refuse(tag: &str, contents: &str) -> KeysError {
    let file = TempFile::new(tag, contents.as_bytes(), 0o600);
    let err = KeyTable::load(file.path()).expect_err("must be refused");
    check_refusal(&err, file.path());
    err
}

fn check_refusal(err: &KeysError, path: &Path) {
    let display = err.to_string();
    assert!(display.contains(&path.display().to_string()), "{display}");
    assert_eq!(err.origin(), path.display().to_string());
    assert_no_secret(&display);
    assert_no_secret(&format!("{err:?}"));
}

#[test]
fn loads_a_valid_file() {
    let text = format!(
        "{}msgs_per_sec = 500\nburst = 50\n\n{}",
        entry(1001),
        entry(42).replace("production", "sandbox")
    );
    let file = TempFile::new("valid", text.as_bytes(), 0o600);
    let table = KeyTable::load(file.path()).unwrap();
    assert_eq!(table.len(), 2);

    let (index, key) = table.get(1001).unwrap();
    assert_eq!(index, KeyIndex(1));
    assert_eq!(key.scopes, Scopes::TRADE.union(Scopes::CANCEL));
    assert_eq!(key.environment, Environment::Production);
    assert_eq!((key.msgs_per_sec, key.burst), (500, 50));
    assert_eq!(key.secret.expose()[..3], [0x5e, 0xc7, 0xe7]);

    let (index, key) = table.get(42).unwrap();
    assert_eq!(index, KeyIndex(0));
    assert_eq!(key.environment, Environment::Sandbox);
    assert_eq!(
        (key.msgs_per_sec, key.burst),
        (MSGS_PER_SEC_DEFAULT, BURST_DEFAULT)
    );
    assert!(table.get(43).is_none());

    let debug = format!("{table:?}");
    assert!(debug.contains("Secret(<redacted>)"));
    assert_no_secret(&debug);
}

#[test]
fn group_or_other_access_is_refused() {
    for mode in [0o644, 0o640, 0o604, 0o610, 0o601, 0o660, 0o777] {
        let file = TempFile::new("mode", entry(1).as_bytes(), mode);
        let err = KeyTable::load(file.path()).unwrap_err();
        check_refusal(&err, file.path());
        assert!(
            matches!(err.kind(), KeysErrorKind::Permissions { mode: m } if *m == mode),
            "{err}"
        );
        let display = err.to_string();
        assert!(display.contains(&format!("mode {mode:04o}")), "{display}");
        assert!(display.contains("chmod 600"), "{display}");
    }
}

#[test]
fn owner_only_modes_are_accepted() {
    for mode in [0o600, 0o400] {
        let file = TempFile::new("owner", entry(1).as_bytes(), mode);
        let table = KeyTable::load(file.path()).unwrap();
        assert_eq!(table.len(), 1);
    }
}

#[test]
fn missing_file_and_directory_are_refused() {
    let path = std::env::temp_dir().join(format!(
        "ordergate-keys-{}-does-not-exist.toml",
        std::process::id()
    ));
    let err = KeyTable::load(&path).unwrap_err();
    check_refusal(&err, &path);
    assert!(
        matches!(err.kind(), KeysErrorKind::Io { action: "open", .. }),
        "{err}"
    );

    let dir = std::env::temp_dir();
    let err = KeyTable::load(&dir).unwrap_err();
    assert!(err.to_string().contains(&dir.display().to_string()));
    assert!(matches!(err.kind(), KeysErrorKind::NotRegularFile), "{err}");
}

#[test]
fn oversized_and_non_utf8_files_are_refused() {
    let big = vec![b'#'; usize::try_from(KEYS_FILE_SIZE_MAX).unwrap() + 1];
    let file = TempFile::new("big", &big, 0o600);
    let err = KeyTable::load(file.path()).unwrap_err();
    check_refusal(&err, file.path());
    assert!(
        matches!(err.kind(), KeysErrorKind::TooLarge { .. }),
        "{err}"
    );

    let mut bytes = entry(1).into_bytes();
    bytes.extend_from_slice(b"# \xff\n");
    let file = TempFile::new("utf8", &bytes, 0o600);
    let err = KeyTable::load(file.path()).unwrap_err();
    check_refusal(&err, file.path());
    let offset = entry(1).len() + 2;
    assert!(
        matches!(err.kind(), KeysErrorKind::NotUtf8 { offset: o } if *o == offset),
        "{err}"
    );
}

#[test]
fn every_refusal_names_the_file_and_the_key_and_not_the_secret() {
    // `extra` lands in key 7, the first entry.
    let with = |extra: &str| format!("{}{extra}{}", entry(7), entry(1001));
    type Expect = fn(&KeysErrorKind) -> bool;
    let key_cases: Vec<(&str, String, Expect)> = vec![
        ("unknown", with("burts = 5\n"), |k| {
            matches!(k, KeysErrorKind::UnknownField { .. })
        }),
        (
            "secret-length",
            with("").replacen(
                &format!("\"{SECRET}\""),
                &format!("\"{}\"", &SECRET[..62]),
                2,
            ),
            |k| matches!(k, KeysErrorKind::Secret(SecretError::Length { found: 62 })),
        ),
        (
            "secret-char",
            with("").replace(&format!("{}\"", &SECRET[60..]), "5eCz\""),
            |k| {
                matches!(
                    k,
                    KeysErrorKind::Secret(SecretError::NotHex { position: 64 })
                )
            },
        ),
        (
            "scope",
            with("").replace("\"cancel\"", "\"withdraw\""),
            |k| matches!(k, KeysErrorKind::UnknownScope { name: Some(n) } if n == "withdraw"),
        ),
        (
            "scopes-empty",
            with("").replace("[\"trade\", \"cancel\"]", "[]"),
            |k| matches!(k, KeysErrorKind::EmptyScopes),
        ),
        ("env", with("").replace("production", "staging"), |k| {
            matches!(k, KeysErrorKind::UnknownEnvironment { .. })
        }),
        ("rate", with("msgs_per_sec = 0\n"), |k| {
            matches!(
                k,
                KeysErrorKind::OutOfRange {
                    field: "msgs_per_sec",
                    ..
                }
            )
        }),
        ("burst", with("burst = 2000000\n"), |k| {
            matches!(k, KeysErrorKind::OutOfRange { field: "burst", .. })
        }),
        (
            "dup",
            format!("{}{}{}", entry(1001), entry(7), entry(1001)),
            |k| matches!(k, KeysErrorKind::DuplicateId { id: 1001, first: 1 }),
        ),
    ];
    for (tag, text, expected) in key_cases {
        let err = refuse(tag, &text);
        assert!(expected(err.kind()), "{tag}: {err:?}");
        // The first bad entry in file order is named, and in every case
        // here that is key 7 unless it is the duplicate.
        let id = if tag == "dup" { 1001 } else { 7 };
        assert_eq!(err.key().and_then(|k| k.id), Some(id), "{tag}: {err}");
        assert!(
            err.to_string().contains(&format!("key {id} (#")),
            "{tag}: {err}"
        );
    }

    for field in ["secret", "scopes", "environment"] {
        let text: String = entry(1001)
            .lines()
            .filter(|l| !l.starts_with(field))
            .map(|l| format!("{l}\n"))
            .collect();
        let err = refuse("missing", &text);
        assert!(
            matches!(err.kind(), KeysErrorKind::MissingField { field: f } if *f == field),
            "{err}"
        );
        assert!(err.to_string().contains("key 1001 (#1)"), "{err}");
    }

    let no_id = format!("{}[[key]]\nsecret = \"{SECRET}\"\n", entry(5));
    let err = refuse("no-id", &no_id);
    assert!(matches!(
        err.kind(),
        KeysErrorKind::MissingField { field: "id" }
    ));
    assert!(err.to_string().contains("key #2:"), "{err}");

    let err = refuse("syntax", &format!("[[key]]\nid = 1\nsecret = \"{SECRET}\n"));
    assert!(matches!(err.kind(), KeysErrorKind::Syntax { .. }), "{err}");
    assert!(err.to_string().contains("line 3"), "{err}");

    let err = refuse("top", &format!("admin = true\n{}", entry(1)));
    assert!(
        matches!(err.kind(), KeysErrorKind::UnknownField { .. }),
        "{err}"
    );

    let err = refuse("empty", "# no keys\n");
    assert!(matches!(err.kind(), KeysErrorKind::Empty), "{err}");
}

#[test]
fn more_than_keys_max_is_refused() {
    let text: String = (0..=KEYS_MAX as u64).map(entry).collect();
    let err = refuse("max", &text);
    assert!(
        matches!(err.kind(), KeysErrorKind::TooManyKeys { count, max } if *count == KEYS_MAX + 1 && *max == KEYS_MAX),
        "{err}"
    );
}
