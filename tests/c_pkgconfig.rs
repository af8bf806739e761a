//! ctstack as C users get it: `cargo cinstall` (cargo-c) into a temporary prefix,
//! then examples/c_thumbnails.c built through `pkg-config --cflags --libs ctstack`
//! and run against the installed library, as docs/c.md "Building and linking from C"
//! says. Fails when cargo-c, pkg-config or cc is missing, saying how to install
//! them, or skips with CTSTACK_ALLOW_SKIPS=1 (.ci/run installs them).

#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether `program args` runs and succeeds.
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run_ok(cmd: &mut Command) -> Output {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The C ABI's version: `version` of Cargo.toml's `[package.metadata.capi.library]`,
/// which cargo-c names the library file after (not the crate's version).
fn abi_version() -> String {
    let cargo = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let mut in_section = false;
    for line in cargo.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == "[package.metadata.capi.library]";
        } else if in_section && let Some(v) = line.strip_prefix("version =") {
            return v.trim().trim_matches('"').to_string();
        }
    }
    panic!("Cargo.toml has no [package.metadata.capi.library] version");
}

/// The SONAME suffix cargo-c gives a version: the minor number counts for 0.x
/// (0.1.0 -> "0.1"), only the major one from 1.0 on.
fn soname_version(version: &str) -> String {
    let parts: Vec<&str> = version.split('.').collect();
    match parts[..] {
        ["0", "0", patch, ..] => format!("0.0.{patch}"),
        ["0", minor, ..] => format!("0.{minor}"),
        [major, ..] => major.to_string(),
        [] => unreachable!("a version has a major number"),
    }
}

#[test]
fn sonames_follow_semver() {
    assert_eq!(soname_version("0.1.0"), "0.1");
    assert_eq!(soname_version("0.0.3"), "0.0.3");
    assert_eq!(soname_version("2.4.1"), "2");
}

#[test]
fn example_builds_against_the_installed_library_through_pkg_config() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let missing: Vec<&str> = [
        (
            "cargo-c (cargo install cargo-c)",
            runs(env!("CARGO"), &["cinstall", "--version"]),
        ),
        ("pkg-config", runs("pkg-config", &["--version"])),
        ("a C compiler (cc)", runs(&cc, &["--version"])),
    ]
    .into_iter()
    .filter(|(_, found)| !found)
    .map(|(name, _)| name)
    .collect();
    if !missing.is_empty() {
        common::missing_tool(
            &missing.join(", "),
            "cargo install cargo-c (built from source once per machine, see .ci/run), \
             apt-get install pkg-config gcc",
        );
        return;
    }

    let scratch = std::env::temp_dir().join(format!("ctstack-c-pkgconfig-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let prefix = scratch.join("prefix");
    let libdir = prefix.join("lib");
    // docs/c.md's command, in debug mode and without the static library to save
    // build time; --libdir because cargo-c picks lib/<triplet> on Debian.
    run_ok(
        Command::new(env!("CARGO"))
            .args([
                "cinstall",
                "--debug",
                "--no-default-features",
                "--library-type",
                "cdylib",
            ])
            .arg("--prefix")
            .arg(&prefix)
            .arg("--libdir")
            .arg(&libdir)
            .current_dir(root()),
    );

    // The header installed is the committed one.
    let header = prefix.join("include/ctstack/ctstack.h");
    assert_eq!(
        std::fs::read(&header).unwrap_or_else(|e| panic!("{}: {e}", header.display())),
        std::fs::read(root().join("include/ctstack.h")).unwrap(),
        "the installed header differs from include/ctstack.h"
    );
    check_shared_library(&libdir);

    let pkg = |args: &[&str]| {
        let out = run_ok(
            Command::new("pkg-config")
                .args(args)
                .arg("ctstack")
                .env("PKG_CONFIG_PATH", libdir.join("pkgconfig")),
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(pkg(&["--modversion"]).trim(), env!("CARGO_PKG_VERSION"));
    let flags = pkg(&["--cflags", "--libs"]);
    assert!(flags.contains("-lctstack"), "{flags}");

    let exe = scratch.join("c_thumbnails");
    run_ok(
        Command::new(&cc)
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
            .arg(root().join("examples/c_thumbnails.c"))
            .args(flags.split_whitespace())
            .arg("-o")
            .arg(&exe),
    );
    // No rpath in the program: it finds the library only through the prefix.
    let loader_path = if cfg!(target_os = "macos") {
        "DYLD_LIBRARY_PATH"
    } else {
        "LD_LIBRARY_PATH"
    };
    let out = run_ok(
        Command::new(&exe)
            .arg(root().join("fixtures/stack"))
            .arg(scratch.join("out"))
            .arg("80")
            .env(loader_path, &libdir),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "level 2: volume of 6 x 50 x 75, 16-bit, 45000 bytes"
    );
    std::fs::remove_dir_all(&scratch).unwrap();
}

/// On Linux: `libctstack.so` -> `libctstack.so.<soversion>` -> `libctstack.so.<version>`,
/// the real file carrying the SONAME `libctstack.so.<soversion>`.
fn check_shared_library(libdir: &Path) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let version = abi_version();
    let version = version.as_str();
    let sover = soname_version(version);
    let soname = format!("libctstack.so.{sover}");
    let real = libdir.join(format!("libctstack.so.{version}"));
    assert!(real.is_file(), "{} is not installed", real.display());
    for link in ["libctstack.so".to_string(), soname.clone()] {
        let path = libdir.join(&link);
        let resolved = std::fs::canonicalize(&path).unwrap_or_else(|e| panic!("{link}: {e}"));
        assert_eq!(resolved, std::fs::canonicalize(&real).unwrap(), "{link}");
    }
    if !runs("readelf", &["--version"]) {
        common::missing_tool("readelf, to check the SONAME", "apt-get install binutils");
        return;
    }
    let dynamic = run_ok(Command::new("readelf").arg("-d").arg(&real));
    let dynamic = String::from_utf8_lossy(&dynamic.stdout);
    assert!(
        dynamic.contains(&format!("Library soname: [{soname}]")),
        "no SONAME {soname}:\n{dynamic}"
    );
}
