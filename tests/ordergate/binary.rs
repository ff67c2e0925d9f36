//! The `ordergate` package's own integration test (crates/ordergate/Cargo.toml
//! names this file): the production binary is the runtime only (issue 11).
//!
//! It lives under the top-level `tests/` with the others, but belongs to the
//! `ordergate` package, for two reasons. `CARGO_BIN_EXE_ordergate` is given
//! only to that package's tests. And because the package has an integration
//! test, `cargo test --all-targets` at the root builds the `ordergate`
//! executable before it runs any test, so the root package's tests that run
//! the gateway binary (`tests/common/serve.rs::ordergate_bin`) find it there
//! and fresh; Cargo builds another package's binary for no one else.

use std::path::Path;
use std::process::{Command, Output};

fn ordergate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ordergate"))
        .args(args)
        .output()
        .expect("run ordergate")
}

/// `demo`, `load` and `compare` are not the gateway's commands (clap
/// refuses them as it refuses any unknown one, exit 2), its help lists its
/// own five and names none of the tools, its package depends on no
/// plotting, benchmarking or comparison crate, and none of the tools'
/// source files is in it.
#[test]
fn the_gateway_binary_carries_no_bench_tool() {
    let out = ordergate(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for command in ["serve", "stat", "audit", "keys", "admin"] {
        assert!(
            help.contains(&format!("ordergate {command}")),
            "ordergate --help does not list {command}:\n{help}"
        );
    }
    for tool in ["demo", "load", "compare", "sweep", "echo"] {
        let out = ordergate(&[tool, "--help"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{tool}: {err}");
        assert!(err.contains("unrecognized subcommand"), "{tool}: {err}");
        assert!(out.stdout.is_empty(), "{tool}");
        assert!(
            !help.contains(&format!("ordergate {tool}")),
            "ordergate --help names {tool}:\n{help}"
        );
    }

    let package = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(package.join("Cargo.toml")).unwrap();
    let table: toml::Table = manifest.parse().unwrap();
    assert_eq!(table["package"]["name"].as_str(), Some("ordergate"));
    let deps: Vec<&str> = ["dependencies", "dev-dependencies", "build-dependencies"]
        .iter()
        .filter_map(|section| table.get(*section).and_then(|d| d.as_table()))
        .flat_map(|d| d.keys().map(String::as_str))
        .collect();
    assert!(deps.contains(&"io-uring"), "{deps:?}");
    for dep in deps {
        assert!(
            !dep.contains("plot")
                && !dep.contains("svg")
                && !["criterion", "hdrhistogram-plot", "ordergate-bench"].contains(&dep),
            "crates/ordergate depends on {dep}"
        );
    }
    for tool in [
        "load",
        "demo",
        "compare",
        "echo",
        "plot",
        "taskstat",
        "inprocess",
    ] {
        let file = format!("{tool}.rs");
        assert!(
            !package.join("src").join(&file).exists(),
            "crates/ordergate/src/{file}"
        );
        assert!(
            package.join("../../src").join(&file).exists(),
            "src/{file} (ordergate-bench)"
        );
    }
}
