//! What users install is built without debug info, and developers keep a profile
//! with it: Cargo.toml's `[profile.release]` strips debug info (the binary and
//! libctstack.so were 70 and 65 MB with line tables), `[profile.profiling]` keeps
//! line tables and symbols for perf. .ci/run checks the built files with readelf.

mod common;

use common::toml_string;

fn manifest() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap()
}

#[test]
fn release_builds_carry_no_debug_info() {
    let text = manifest();
    let release = |key| toml_string(&text, "profile.release", key);
    assert_eq!(release("strip").as_deref(), Some("debuginfo"));
    assert!(
        matches!(release("debug").as_deref(), None | Some("false" | "0")),
        "[profile.release] debug = {:?}: compiled, then stripped",
        release("debug")
    );
    // The wheel and cargo-c build the release profile; benchmarks inherit it.
    assert!(toml_string(&text, "profile.bench", "debug").is_none());
}

#[test]
fn the_profiling_profile_keeps_line_tables_and_symbols() {
    let text = manifest();
    let profiling = |key| toml_string(&text, "profile.profiling", key);
    assert_eq!(profiling("inherits").as_deref(), Some("release"));
    assert_eq!(profiling("debug").as_deref(), Some("line-tables-only"));
    assert_eq!(profiling("strip").as_deref(), Some("none"));
}
