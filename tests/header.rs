//! include/ctstack.h is what cbindgen (pinned in Cargo.toml) generates from
//! the files of src/ffi/. `CTSTACK_BLESS=1 cargo test --test header` rewrites it.

use std::path::PathBuf;

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
