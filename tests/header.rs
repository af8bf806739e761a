//! include/ctstack.h is what cbindgen (pinned in Cargo.toml) generates from
//! the files of src/ffi/. `CTSTACK_BLESS=1 cargo test --test header` rewrites it.

mod common;

use std::path::PathBuf;

use common::toml_string;

#[test]
fn committed_header_matches_the_code() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).unwrap();
    // cbindgen follows the `mod` declarations of src/ffi/mod.rs into its files.
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/ffi/mod.rs"))
        .generate()
        .expect("cbindgen could not read src/ffi/");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();
    let path = root.join("include/ctstack.h");
    if std::env::var("CTSTACK_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/ctstack.h is stale: run `CTSTACK_BLESS=1 cargo test --test header` and commit it"
    );
}

/// A 64-bit FNV-1a hash of the header with LF line ends (a checkout with CRLF
/// hashes the same): a fingerprint, not a security measure.
fn header_fingerprint(text: &str) -> String {
    let hash = text
        .replace("\r\n", "\n")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("{hash:016x}")
}

/// The header changes only with the ABI version: include/abi-versions.txt lists
/// each ABI version with the fingerprint of its header, in increasing order; the
/// last line must be Cargo.toml's `[package.metadata.capi.library] version` (the
/// SONAME's source), the header's `CTSTACK_ABI_VERSION_*` and the header as it is.
#[test]
fn the_header_changes_only_with_the_abi_version() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let header = std::fs::read_to_string(root.join("include/ctstack.h")).unwrap();
    let cargo = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let abi = toml_string(&cargo, "package.metadata.capi.library", "version")
        .expect("Cargo.toml has no [package.metadata.capi.library] version");
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|n| n.parse().unwrap()).collect() };
    let numbers = parse(&abi);
    assert_eq!(numbers.len(), 3, "ABI version {abi}: MAJOR.MINOR.PATCH");
    for (name, n) in ["MAJOR", "MINOR", "PATCH"].iter().zip(&numbers) {
        let define = format!("#define CTSTACK_ABI_VERSION_{name} {n}\n");
        assert!(
            header.contains(&define),
            "the header's CTSTACK_ABI_VERSION_{name} is not {n} (Cargo.toml's ABI version {abi})"
        );
    }

    let history = std::fs::read_to_string(root.join("include/abi-versions.txt")).unwrap();
    let entries: Vec<(Vec<u32>, &str)> = history
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (version, fingerprint) = l.split_once(' ').expect("VERSION FINGERPRINT");
            (parse(version), fingerprint.trim())
        })
        .collect();
    assert!(
        entries.windows(2).all(|w| w[0].0 < w[1].0),
        "include/abi-versions.txt: versions must increase"
    );
    let (last_version, last_fingerprint) = entries.last().expect("no ABI version recorded");
    assert_eq!(
        *last_version, numbers,
        "Cargo.toml's ABI version {abi} is not the last one in include/abi-versions.txt"
    );
    let now = header_fingerprint(&header);
    assert_eq!(
        *last_fingerprint, now,
        "include/ctstack.h changed, but the ABI version ({abi}) did not. Choose the new version \
         (docs/ABI.md \"Versioning\": an addition bumps PATCH, a break bumps MINOR while MAJOR is 0, \
         which changes the SONAME), set it in Cargo.toml and src/ffi/mod.rs, regenerate the header, \
         and append `VERSION {now}` (the new header's fingerprint) to include/abi-versions.txt"
    );
}

#[test]
fn the_fingerprint_sees_a_one_byte_change_and_ignores_line_ends() {
    assert_ne!(
        header_fingerprint("int a;\n"),
        header_fingerprint("int b;\n")
    );
    assert_eq!(
        header_fingerprint("a\r\nb\r\n"),
        header_fingerprint("a\nb\n")
    );
    // FNV-1a 64 of "a" (the published test vector).
    assert_eq!(header_fingerprint("a"), "af63dc4c8601ec8c");
}
