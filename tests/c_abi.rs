//! Compiles tests/c/abi_test.c with `cc -Wall -Werror` against include/ctstack.h,
//! links it to the freshly built shared library and runs it on the fixtures.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the cdylib (debug profile) and returns the directory holding it.
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

#[test]
#[cfg(unix)]
fn c_program_uses_the_abi() {
    let lib_dir = build_library();
    let scratch = std::env::temp_dir().join(format!("ctstack-c-abi-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let exe = scratch.join("abi_test");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let output = Command::new(&cc)
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-D_POSIX_C_SOURCE=200809L",
        ])
        .arg("-I")
        .arg(root().join("include"))
        .arg(root().join("tests/c/abi_test.c"))
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(&lib_dir)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .args(["-lctstack", "-lpthread"])
        .output()
        .expect("a C compiler (cc) is needed for this test");
    assert!(
        output.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
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
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let output = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(root().join("include"))
        .arg(root().join("examples/c_thumbnails.c"))
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(&lib_dir)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-lctstack")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
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
