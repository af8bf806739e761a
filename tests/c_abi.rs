//! Compiles tests/c/abi_test.c with `cc -Wall -Werror` against include/ctstack.h,
//! links it to the freshly built shared library and runs it on the fixtures.
//!
//! The C tests are Unix only: no C compiler runs inside the CI's Wine;
//! .ci/windows builds the C example with the host's MinGW against ctstack.dll
//! and runs it under Wine instead. The documentation check runs everywhere.

mod common;

#[cfg(unix)]
use std::path::{Path, PathBuf};
#[cfg(unix)]
use std::process::Command;

use common::docs::root;

/// Builds the cdylib (debug profile) and returns the directory holding it.
#[cfg(unix)]
fn build_library() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--lib"])
        .current_dir(root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build --lib failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    target.join("debug")
}

/// Compiles `source` with `cc -std=c11 -Wall -Wextra -Werror` (and `flags`) against
/// include/ctstack.h into `exe`, linked to the library in `lib_dir`; panics with
/// the compiler's output, naming `what`, if it fails.
#[cfg(unix)]
fn compile_c(what: &str, source: &Path, exe: &Path, lib_dir: &Path, flags: &[&str]) {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let output = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .args(flags)
        .arg("-I")
        .arg(root().join("include"))
        .arg(source)
        .arg("-o")
        .arg(exe)
        .arg("-L")
        .arg(lib_dir)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .args(["-lctstack", "-lpthread"])
        .output()
        .expect("a C compiler (cc) is needed for this test");
    assert!(
        output.status.success(),
        "{what} does not compile:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
#[cfg(unix)]
fn c_program_uses_the_abi() {
    let lib_dir = build_library();
    let scratch = std::env::temp_dir().join(format!("ctstack-c-abi-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let exe = scratch.join("abi_test");
    compile_c(
        "tests/c/abi_test.c",
        &root().join("tests/c/abi_test.c"),
        &exe,
        &lib_dir,
        &["-D_POSIX_C_SOURCE=200809L"],
    );

    let run = Command::new(&exe)
        .arg(root().join("fixtures"))
        .arg(&scratch)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&run.stderr));
    assert!(
        run.status.success() && stdout.contains(", 0 failed"),
        "the C test failed"
    );
    std::fs::remove_dir_all(&scratch).unwrap();
}

#[test]
#[cfg(unix)]
fn c_example_builds_and_runs() {
    let lib_dir = build_library();
    let scratch = std::env::temp_dir().join(format!("ctstack-c-example-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let exe = scratch.join("c_thumbnails");
    let example = root().join("examples/c_thumbnails.c");
    compile_c("examples/c_thumbnails.c", &example, &exe, &lib_dir, &[]);
    let run = Command::new(&exe)
        .arg(root().join("fixtures/stack"))
        .arg(scratch.join("out"))
        .arg("80")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        stdout.trim(),
        "level 2: volume of 6 x 50 x 75, 16-bit, 45000 bytes"
    );
    std::fs::remove_dir_all(&scratch).unwrap();
}

/// The documentation's C examples (every ```c block of README.md and docs/*.md),
/// each as the body of `main` with the header and stdio included, compiled with
/// -Wall -Wextra -Werror and run from a folder holding a copy of fixtures/stack
/// (the examples' paths are the checkout's): each must exit 0, and the one that
/// builds target/c-pyramid must leave that pyramid.
#[test]
#[cfg(unix)]
fn doc_c_examples_compile_and_run() {
    let mut examples = Vec::new();
    for page in common::docs::pages() {
        let text = common::docs::read(&page);
        for (line, block) in common::docs::fenced_blocks(&text, "c") {
            examples.push((format!("{}:{line}", page.display()), block));
        }
    }
    assert!(!examples.is_empty(), "no ```c block in the documentation");
    let lib_dir = build_library();
    for (n, (place, block)) in examples.iter().enumerate() {
        let scratch =
            std::env::temp_dir().join(format!("ctstack-c-doc-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        let stack = scratch.join("fixtures/stack");
        std::fs::create_dir_all(&stack).unwrap();
        std::fs::create_dir_all(scratch.join("target")).unwrap();
        for entry in std::fs::read_dir(root().join("fixtures/stack")).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, stack.join(path.file_name().unwrap())).unwrap();
            }
        }
        let source = scratch.join("example.c");
        std::fs::write(
            &source,
            format!("#include \"ctstack.h\"\n#include <stdio.h>\n\nint main(void) {{\n{block}}}\n"),
        )
        .unwrap();
        let exe = scratch.join("example");
        compile_c(
            &format!("{place}: the C example"),
            &source,
            &exe,
            &lib_dir,
            &[],
        );
        let run = Command::new(&exe).current_dir(&scratch).output().unwrap();
        assert!(
            run.status.success(),
            "{place}: the C example failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        if block.contains("\"target/c-pyramid\"") {
            let pyramid = ctstack::Pyramid::open(scratch.join("target/c-pyramid")).unwrap();
            assert_eq!(pyramid.levels().len(), 2, "{place}");
        }
        std::fs::remove_dir_all(&scratch).unwrap();
    }
}

/// docs/ABI.md names exactly the functions and constants of the header: a
/// function removed from the ABI but still documented (or added but not
/// documented) fails.
#[test]
fn abi_md_names_the_header_functions_and_constants() {
    let header = std::fs::read_to_string(root().join("include/ctstack.h")).unwrap();
    let doc = std::fs::read_to_string(root().join("docs/ABI.md")).unwrap();
    let words = |text: &str, prefix: &str, call: bool| -> std::collections::BTreeSet<String> {
        let mut found = std::collections::BTreeSet::new();
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            if !call || tail[end..].starts_with('(') {
                found.insert(tail[..end].to_string());
            }
            rest = &tail[end..];
        }
        found
    };
    // Functions: `ctstack_name(` in both.
    let in_header = words(&header, "ctstack_", true);
    let in_doc = words(&doc, "ctstack_", true);
    assert_eq!(
        in_doc.difference(&in_header).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "docs/ABI.md documents functions the header does not have"
    );
    assert_eq!(
        in_header.difference(&in_doc).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "the header has functions docs/ABI.md does not document"
    );
    // Constants and status codes: every CTSTACK_ name the doc uses exists.
    let constants = words(&header, "CTSTACK_", false);
    let missing: Vec<String> = words(&doc, "CTSTACK_", false)
        .into_iter()
        .filter(|c| !constants.contains(c) && !c.ends_with('_') && c != "CTSTACK_UNKNOWN_STATUS")
        .collect();
    assert!(
        missing.is_empty(),
        "docs/ABI.md names unknown constants: {missing:?}"
    );
}
