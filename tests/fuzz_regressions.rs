//! Every hostile file kept under fixtures/malformed/ is refused with a typed
//! error naming it: the hand-made files at its top level, and the regression
//! inputs for crashes, hangs and runaway allocations (found by fuzzing, the
//! mutation test or review) in its subfolders, one per failure class
//! (`malformed/oom/`, `malformed/panic/`, `malformed/timeout/`, ...).
//!
//! Each file is opened memory-mapped, buffered and from bytes, with default and
//! with small limits, under `catch_unwind` and against a clock.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ctstack::{ErrorKind, Limits, OpenOptions, ReadMode, Slice};

/// The slowest any open of a hostile file may be (debug build).
const MAX_OPEN_TIME: Duration = Duration::from_secs(2);

fn malformed() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/malformed")
}

/// The `.tif` files directly in `dir`, sorted.
fn tifs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "tif"))
        .collect();
    out.sort();
    out
}

/// The failure-class subfolders of fixtures/malformed/, sorted.
fn classes() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(malformed())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

fn small_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_pixels = 1 << 16;
    limits.max_decoded_bytes = 1 << 17;
    limits.max_ifd_entries = 64;
    limits.max_compression_ratio = 64;
    limits.max_pages = 64;
    limits
}

/// Opens `path` every way there is; returns one line per way that misbehaved.
fn check(path: &Path) -> Vec<String> {
    let name = path.strip_prefix(malformed()).unwrap_or(path).display();
    let bytes = std::fs::read(path).unwrap();
    let mut problems = Vec::new();
    for limits in [Limits::default(), small_limits()] {
        for mode in [ReadMode::Mmap, ReadMode::Buffered] {
            let options = OpenOptions {
                read_mode: mode,
                limits,
                ..OpenOptions::default()
            };
            for from_bytes in [false, true] {
                if from_bytes && mode == ReadMode::Buffered {
                    continue; // from_bytes ignores the read mode
                }
                let how = format!(
                    "{}, {} limits",
                    if from_bytes {
                        "from_bytes"
                    } else if mode == ReadMode::Mmap {
                        "mmap"
                    } else {
                        "buffered"
                    },
                    if limits == Limits::default() {
                        "default"
                    } else {
                        "small"
                    }
                );
                let start = Instant::now();
                let result = catch_unwind(AssertUnwindSafe(|| {
                    if from_bytes {
                        Slice::from_bytes(path, &bytes, &options)
                    } else {
                        Slice::open_with(path, &options)
                    }
                }));
                let elapsed = start.elapsed();
                if elapsed > MAX_OPEN_TIME {
                    problems.push(format!("{name} ({how}): took {elapsed:?}"));
                }
                match result {
                    Err(_) => problems.push(format!("{name} ({how}): panicked")),
                    Ok(Ok(slice)) => problems.push(format!(
                        "{name} ({how}): opened as {}x{} {}-bit ({}), expected an error",
                        slice.width(),
                        slice.height(),
                        slice.bits(),
                        slice.access()
                    )),
                    Ok(Err(e)) => {
                        if !matches!(
                            e.kind(),
                            ErrorKind::Format | ErrorKind::Unsupported | ErrorKind::LimitsExceeded
                        ) {
                            problems
                                .push(format!("{name} ({how}): error kind {:?}: {e}", e.kind()));
                        }
                        let file = path.file_name().unwrap().to_string_lossy();
                        if e.path() != Some(path) || !e.to_string().contains(&*file) {
                            problems.push(format!("{name} ({how}): error names no file: {e}"));
                        }
                    }
                }
            }
        }
    }
    problems
}

#[test]
fn hand_made_malformed_files_are_typed_errors() {
    let files = tifs(&malformed());
    assert!(
        files.len() >= 20,
        "fixtures/malformed/ holds {} files",
        files.len()
    );
    let problems: Vec<String> = files.iter().flat_map(|p| check(p)).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn fuzz_regressions_are_typed_errors() {
    let mut n = 0;
    let mut problems = Vec::new();
    for class in classes() {
        for file in tifs(&class) {
            n += 1;
            problems.extend(check(&file));
        }
    }
    eprintln!("fuzz regressions: {n} files in {} classes", classes().len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The regressions for the bugs fixed with this suite fail for the right reason.
#[test]
fn regressions_fail_for_the_reason_they_were_fixed() {
    let cases = [
        (
            "oom/overlapping_strips_be_8192x4096.tif",
            ErrorKind::Format,
            "overlap",
        ),
        (
            "oom/overlapping_strips_le_8192x4096.tif",
            ErrorKind::Format,
            "overlap",
        ),
        (
            "oom/deflate_shared_strips_4096x4096.tif",
            ErrorKind::LimitsExceeded,
            "ratio",
        ),
        (
            "differential/duplicate_strip_tags_deflate.tif",
            ErrorKind::Format,
            "more than once",
        ),
        (
            "differential/duplicate_width_ascii_deflate.tif",
            ErrorKind::Format,
            "more than once",
        ),
        (
            "stderr/extrasamples_ascii_huge_deflate.tif",
            ErrorKind::Format,
            "ASCII tag claims",
        ),
    ];
    for (file, kind, words) in cases {
        let err = Slice::open(malformed().join(file)).expect_err(file);
        assert_eq!(err.kind(), kind, "{file}: {err}");
        assert!(err.to_string().contains(words), "{file}: {err}");
    }
}

/// Opening a hostile file prints nothing: the `tiff` crate (0.11.3) has a stray
/// `dbg!` on its ASCII-over-limit path, which ctstack keeps it from reaching. The
/// command line is the observer: its stderr must hold nothing but nothing.
#[test]
fn hostile_files_print_nothing_to_stderr() {
    let mut files = tifs(&malformed());
    for class in classes() {
        files.extend(tifs(&class));
    }
    for file in files {
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_ctstack"))
            .arg("info")
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(1), "{}", file.display());
        assert!(
            run.stderr.is_empty(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&run.stderr)
        );
    }
}
