//! The Python package (python/ctstack/, used from the source tree) and its tests, against the cdylib.
//!
//! Builds the shared library with `cargo build --lib`, then runs
//! `python -m unittest discover -s python/tests -v` and
//! `examples/python_thumbnails.py` with `CTSTACK_LIBRARY` pointing at it.
//!
//! Python is `CTSTACK_PYTHON` (default `python3`). When it is missing (or, for the
//! example, lacks numpy) the test fails saying how to install it, or skips with
//! `CTSTACK_ALLOW_SKIPS=1` ([`common::missing_tool`]). The Python tests themselves
//! skip the parts whose packages (numpy, tifffile, Pillow, dask, zarr, ...) or C
//! compiler are missing only when run alone (pytest lists its skips); run from here
//! they get `CTSTACK_REQUIRE_EXTERNAL=1`, which fails those parts, unless
//! `CTSTACK_ALLOW_SKIPS=1`.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

fn python() -> String {
    std::env::var("CTSTACK_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The file name of the shared library on this platform.
fn library_name() -> &'static str {
    if cfg!(target_os = "windows") {
        "ctstack.dll"
    } else if cfg!(target_os = "macos") {
        "libctstack.dylib"
    } else {
        "libctstack.so"
    }
}

/// Builds the cdylib once per test process and returns its path.
fn library() -> &'static Path {
    static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--lib"])
            .current_dir(manifest_dir())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .expect("cannot run cargo build --lib");
        assert!(status.success(), "cargo build --lib failed: {status}");
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => manifest_dir().join(dir),
            None => manifest_dir().join("target"),
        };
        let lib = target.join("debug").join(library_name());
        assert!(
            lib.is_file(),
            "the built library is not at {}",
            lib.display()
        );
        lib
    })
}

/// Whether `python` runs (and, with `module`, can import it); otherwise fails, or
/// skips (returns false) with CTSTACK_ALLOW_SKIPS=1.
fn have_python(module: Option<&str>) -> bool {
    let mut cmd = Command::new(python());
    match module {
        Some(m) => cmd.args(["-c", &format!("import {m}")]),
        None => cmd.arg("--version"),
    };
    let ok = cmd.output().is_ok_and(|o| o.status.success());
    if !ok {
        let what = match module {
            Some(m) => format!("{} with {m}", python()),
            None => python(),
        };
        common::missing_tool(&what, common::PYTHON_PACKAGES);
    }
    ok
}

/// A `python` command in the repository with the binding importable and the
/// freshly built library selected.
fn python_command() -> Command {
    let mut pythonpath: Vec<PathBuf> = vec![manifest_dir().join("python")];
    if let Some(existing) = std::env::var_os("PYTHONPATH") {
        pythonpath.extend(std::env::split_paths(&existing));
    }
    let pythonpath: OsString = std::env::join_paths(pythonpath).expect("PYTHONPATH");
    let mut cmd = Command::new(python());
    cmd.current_dir(manifest_dir())
        .env("CTSTACK_LIBRARY", library())
        .env("PYTHONPATH", pythonpath)
        // No __pycache__ directories in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1");
    if !common::skips_allowed() {
        // The Python tests skip what lacks its package; cargo would hide that.
        cmd.env("CTSTACK_REQUIRE_EXTERNAL", "1");
    }
    cmd
}

fn assert_success(what: &str, output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let hint = if stderr.contains("CTSTACK_REQUIRE_EXTERNAL=1") {
        format!(
            "\nA package or tool those tests need is missing: {}; a C compiler (cc). Or \
             skip those tests: CTSTACK_ALLOW_SKIPS=1 cargo test",
            common::PYTHON_PACKAGES
        )
    } else {
        String::new()
    };
    assert!(
        output.status.success(),
        "{what} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{stderr}{hint}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
    );
}

#[test]
fn python_unittests() {
    if !have_python(None) {
        return;
    }
    let output = python_command()
        .args(["-m", "unittest", "discover", "-s", "python/tests", "-v"])
        .output()
        .expect("cannot run python");
    assert_success("python -m unittest discover -s python/tests", &output);
    // unittest reports on stderr; show the summary in `cargo test -- --nocapture`.
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn python_thumbnails_example() {
    if !have_python(Some("numpy")) {
        return;
    }
    let out = std::env::temp_dir().join(format!("ctstack-python-example-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let output = python_command()
        .arg("examples/python_thumbnails.py")
        .arg("fixtures/stack")
        .args(["--min-size", "80", "--out"])
        .arg(&out)
        .output()
        .expect("cannot run python");
    let _ = std::fs::remove_dir_all(&out);
    assert_success("examples/python_thumbnails.py", &output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("level 2: shape (6, 50, 75), dtype uint16"),
        "unexpected output:\n{stdout}"
    );
}
