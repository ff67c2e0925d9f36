//! `KeyTable::load` against real files: permissions, reading, every field
//! of an entry, and that the errors name the file and the key and never a
//! secret.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroU64};

use ordergate::auth::keys::{
    KEYS_FILE_SIZE_MAX, KeyIndex, KeyTable, KeyWarningKind, KeysError, KeysErrorKind, KeysFile,
    new_key_entry_toml,
};
use ordergate::auth::policy::{
    CidrError, KeyDisabled, KeyStatus, RiskReject, TimestampError, parse_rfc3339,
};
use ordergate::auth::secret::{Secret, SecretError};
use ordergate::constants::{BURST_DEFAULT, KEYS_MAX, MSGS_PER_SEC_DEFAULT};
use ordergate::wire::codes::{Environment, Scopes};

const SECRET: &str = "5eC7e75eC7e75eC7e75eC7e75eC7e75eC7e75eC7e75eC7e75eC7e75eC7e75eC7";
/// The `secret_next` of rotating keys, as recognisable.
const NEXT: &str = "babe5eedbabe5eedbabe5eedbabe5eedbabe5eedbabe5eedbabe5eedbabe5eed";

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
    for secret in [SECRET.to_lowercase(), NEXT.to_owned()] {
        for start in 0..=secret.len() - 8 {
            assert!(
                !lower.contains(&secret[start..start + 8]),
                "secret leaked into: {text}"
            );
        }
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
    assert_no_secret(&format!("{err:#?}"));
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
fn a_symlink_is_refused_not_followed() {
    let target = TempFile::new("link-target", entry(1).as_bytes(), 0o600);
    let link =
        std::env::temp_dir().join(format!("ordergate-keys-{}-link.toml", std::process::id()));
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(target.path(), &link).unwrap();
    let err = KeyTable::load(&link).unwrap_err();
    let _ = fs::remove_file(&link);
    check_refusal(&err, &link);
    assert!(matches!(err.kind(), KeysErrorKind::Symlink), "{err}");
    assert!(err.to_string().contains("symbolic link"), "{err}");
}

#[test]
fn a_fifo_is_refused_without_waiting_for_a_writer() {
    let path =
        std::env::temp_dir().join(format!("ordergate-keys-{}-fifo.toml", std::process::id()));
    let _ = fs::remove_file(&path);
    let made = std::process::Command::new("mkfifo")
        .arg("-m")
        .arg("600")
        .arg(&path)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    // Loaded on another thread: before the fix the open blocked for ever
    // waiting for a writer. A bounded wait, then the verdict.
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.clone();
    std::thread::spawn(move || {
        let _ = tx.send(
            KeyTable::load(&p)
                .map(|t| t.len())
                .map_err(|e| e.to_string()),
        );
    });
    let got = rx.recv_timeout(std::time::Duration::from_secs(5));
    if got.is_err() {
        // Unblock the stuck open so the thread can end, then fail.
        let _ = fs::OpenOptions::new().write(true).open(&path);
    }
    let _ = fs::remove_file(&path);
    let err = got
        .expect("loading a FIFO must not hang")
        .expect_err("a FIFO is not a keys file");
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn a_file_owned_by_another_user_is_refused() {
    if !ordergate::sys::is_root() {
        eprintln!("skipped: only root can give a file to another user");
        return;
    }
    let file = TempFile::new("owner", entry(1).as_bytes(), 0o600);
    std::os::unix::fs::chown(file.path(), Some(54_321), None).unwrap();
    let err = KeyTable::load(file.path()).unwrap_err();
    check_refusal(&err, file.path());
    assert!(
        matches!(
            err.kind(),
            KeysErrorKind::Owner {
                owner: 54_321,
                me: 0
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("uid 54321"), "{err}");
    // Root's own file and the gateway user's own file load.
    std::os::unix::fs::chown(file.path(), Some(0), None).unwrap();
    assert_eq!(KeyTable::load(file.path()).unwrap().len(), 1);
}

#[test]
fn a_loaded_table_keeps_its_secrets_out_of_dumps() {
    let file = TempFile::new("dump", entry(1).as_bytes(), 0o600);
    let table = KeyTable::load(file.path()).unwrap();
    let memory = table.secret_memory();
    assert!(memory.excluded_from_dumps);
    if ordergate::sys::is_root() {
        assert!(memory.locked, "root may always mlock");
    }
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
            "next-length",
            with(&format!("secret_next = \"{}\"\n", &NEXT[..60])),
            |k| {
                matches!(
                    k,
                    KeysErrorKind::SecretNext(SecretError::Length { found: 60 })
                )
            },
        ),
        (
            "next-char",
            with(&format!("secret_next = \"{}x\"\n", &NEXT[..63])),
            |k| {
                matches!(
                    k,
                    KeysErrorKind::SecretNext(SecretError::NotHex { position: 64 })
                )
            },
        ),
        (
            "next-same",
            with(&format!("secret_next = \"{}\"\n", SECRET.to_lowercase())),
            |k| matches!(k, KeysErrorKind::SecretNextSameAsSecret),
        ),
        (
            "cidr-address",
            with("allow = [\"10.0.0.0/8\", \"300.0.0.0/8\"]\n"),
            |k| {
                matches!(
                    k,
                    KeysErrorKind::BadCidr { item: 2, text: Some(t), problem: CidrError::BadAddress }
                        if t == "300.0.0.0/8"
                )
            },
        ),
        ("cidr-prefix", with("allow = [\"2001:db8::/200\"]\n"), |k| {
            matches!(
                k,
                KeysErrorKind::BadCidr {
                    item: 1,
                    problem: CidrError::PrefixTooLong {
                        prefix_len: 200,
                        max: 128
                    },
                    ..
                }
            )
        }),
        (
            "cidr-host-bits",
            with("allow = [\"192.0.2.1/24\"]\n"),
            |k| {
                matches!(
                    k,
                    KeysErrorKind::BadCidr {
                        problem: CidrError::HostBitsSet { .. },
                        ..
                    }
                )
            },
        ),
        (
            "cidr-secret",
            with(&format!("allow = [\"{SECRET}\"]\n")),
            |k| matches!(k, KeysErrorKind::BadCidr { text: None, .. }),
        ),
        ("allow-empty", with("allow = []\n"), |k| {
            matches!(k, KeysErrorKind::EmptyAllow)
        }),
        (
            "date",
            with("not_after = \"2027-02-29T00:00:00Z\"\n"),
            |k| {
                matches!(
                    k,
                    KeysErrorKind::BadTimestamp {
                        field: "not_after",
                        problem: TimestampError::NoSuchDay {
                            year: 2027,
                            month: 2,
                            day: 29
                        }
                    }
                )
            },
        ),
        ("date-shape", with("not_before = \"23/11/2026\"\n"), |k| {
            matches!(
                k,
                KeysErrorKind::BadTimestamp {
                    field: "not_before",
                    problem: TimestampError::Format { position: 3, .. }
                }
            )
        }),
        (
            "window",
            with("not_before = \"2027-01-01T00:00:00Z\"\nnot_after = \"2026-01-01T00:00:00Z\"\n"),
            |k| matches!(k, KeysErrorKind::EmptyWindow { .. }),
        ),
        (
            "status",
            with("status = \"suspended\"\n"),
            |k| matches!(k, KeysErrorKind::UnknownStatus { name: Some(n) } if n == "suspended"),
        ),
        ("max-sessions", with("max_sessions = 0\n"), |k| {
            matches!(
                k,
                KeysErrorKind::OutOfRange {
                    field: "max_sessions",
                    value: 0,
                    ..
                }
            )
        }),
        ("max-qty", with("max_order_qty = 0\n"), |k| {
            matches!(
                k,
                KeysErrorKind::OutOfRange {
                    field: "max_order_qty",
                    value: 0,
                    ..
                }
            )
        }),
        ("max-notional", with("max_order_notional = 0\n"), |k| {
            matches!(
                k,
                KeysErrorKind::OutOfRange {
                    field: "max_order_notional",
                    value: 0,
                    ..
                }
            )
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

/// Key 1001 with every field, rotating; key 42 with none of the optional ones.
fn full_file() -> String {
    format!(
        "{}secret_next = \"{NEXT}\"\n\
         allow = [\"203.0.113.0/24\", \"2001:db8:1::/48\", \"198.51.100.7\"]\n\
         msgs_per_sec = 500\n\
         burst = 50\n\
         not_before = \"2026-01-01T00:00:00Z\"\n\
         not_after = 2027-01-01T01:00:00+01:00\n\
         max_sessions = 2\n\
         max_order_qty = 10000\n\
         max_order_notional = 5000000000\n\
         status = \"active\"\n\n{}",
        entry(1001),
        entry(42)
    )
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn loads_every_policy_field_and_checks_with_it() {
    let file = TempFile::new("policy", full_file().as_bytes(), 0o600);
    let table = KeyTable::load(file.path()).unwrap();
    let (_, key) = table.get(1001).unwrap();

    let (current, next) = key.secrets();
    assert_eq!(current.expose()[..3], [0x5e, 0xc7, 0xe7]);
    assert_eq!(next.unwrap().expose()[..4], [0xba, 0xbe, 0x5e, 0xed]);
    let signed_with_next = |s: &[u8; 32]| s[0] == 0xba;
    assert_eq!(
        key.secret_matching(signed_with_next).unwrap().expose()[0],
        0xba
    );

    assert!(key.allows(ip("203.0.113.200")));
    assert!(key.allows(ip("::ffff:203.0.113.200")));
    assert!(key.allows(ip("2001:db8:1:ffff::1")));
    assert!(key.allows(ip("198.51.100.7")));
    assert!(!key.allows(ip("198.51.100.8")));
    assert!(!key.allows(ip("2001:db8:2::1")));

    let start = parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    let end = parse_rfc3339("2027-01-01T00:00:00Z").unwrap();
    assert_eq!(
        (key.not_before_ns, key.not_after_ns),
        (Some(start), Some(end))
    );
    assert_eq!(key.valid_at(start - 1), Err(KeyDisabled::NotYetValid));
    assert_eq!(key.valid_at(start), Ok(()));
    assert_eq!(key.valid_at(end - 1), Ok(()));
    assert_eq!(key.valid_at(end), Err(KeyDisabled::Expired));

    assert_eq!(key.max_sessions, NonZeroU32::new(2));
    assert!(!key.session_limit_reached(1));
    assert!(key.session_limit_reached(2));
    assert_eq!(key.max_order_qty, NonZeroU32::new(10_000));
    assert_eq!(key.max_order_notional, NonZeroU64::new(5_000_000_000));
    assert_eq!(key.check_order(500_000, 10_000), Ok(()));
    assert_eq!(key.check_order(-500_000, 10_000), Ok(()));
    assert_eq!(key.check_order(1, 10_001), Err(RiskReject::MaxQty));
    assert_eq!(
        key.check_order(500_001, 10_000),
        Err(RiskReject::MaxNotional)
    );
    assert_eq!(key.status, KeyStatus::Active);

    let (_, plain) = table.get(42).unwrap();
    assert!(plain.secrets().1.is_none());
    assert!(plain.allow.is_empty());
    assert!(!plain.allows(ip("127.0.0.1")));
    assert_eq!(plain.valid_at(0), Ok(()));
    assert_eq!(plain.check_order(i64::MIN, u32::MAX), Ok(()));
    assert!(!plain.session_limit_reached(u32::MAX));

    // Start-up warns about the key that connects from nowhere, naming the
    // file; never a secret.
    let warnings: Vec<_> = table.warnings(start).collect();
    assert_eq!(warnings.len(), 1);
    assert_eq!(
        (warnings[0].id, warnings[0].kind),
        (42, KeyWarningKind::NoAllowList)
    );
    let line = warnings[0].to_string();
    assert!(
        line.starts_with(&format!("keys file {}, key 42: ", file.path().display())),
        "{line}"
    );
    assert_eq!(table.origin(), file.path().display().to_string());
    // In id order.
    let at_end: Vec<_> = table.warnings(end).map(|w| (w.id, w.kind)).collect();
    assert_eq!(
        at_end,
        [
            (42, KeyWarningKind::NoAllowList),
            (1001, KeyWarningKind::Expired { not_after_ns: end })
        ]
    );

    let debug = format!("{table:?} {table:#?}");
    assert_eq!(debug.matches("Secret(<redacted>)").count(), 6, "{debug}");
    assert_no_secret(&debug);
}

#[test]
fn a_new_key_entry_appended_to_a_file_loads() {
    let secret = Secret::from_hex(NEXT).unwrap();
    let text = format!(
        "{}\n{}",
        entry(1),
        new_key_entry_toml(77, &["trade", "read"], "sandbox", &secret)
    );
    assert!(text.contains(&format!("secret = \"{NEXT}\"")), "{text}");
    let file = TempFile::new("new", text.as_bytes(), 0o600);
    let table = KeyTable::load(file.path()).unwrap();
    let (_, key) = table.get(77).unwrap();
    assert_eq!(key.secret.expose(), secret.expose());
    assert_eq!(key.scopes, Scopes::TRADE.union(Scopes::READ));
    assert_eq!(key.environment, Environment::Sandbox);
    assert!(key.allow.is_empty());
    // Uncommenting the example line opens the key to those addresses.
    let opened = text.replace("\n# allow = ", "\nallow = ");
    let file = TempFile::new("new-allow", opened.as_bytes(), 0o600);
    let table = KeyTable::load(file.path()).unwrap();
    let key = table.get(77).unwrap().1;
    assert!(!key.allow.is_empty());
    assert_eq!(table.warnings(0).count(), 1, "only key 1 has no allow list");
}
