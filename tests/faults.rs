//! Faults and concurrency: files that change under a reader, outputs that cannot
//! be written, a disk that fills, a slice that vanishes, `kill -9` and two runs at
//! once, and slices shared between threads.
//!
//! Child processes are either the `ctstack` binary or this test binary itself,
//! re-run on one test with `CTSTACK_FAULT_CHILD` naming the role it plays (see
//! [`child`]). No assertion depends on timing: loops that wait are bounded in
//! time and fail with a message when the bound is reached.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
// Only the SIGBUS test (Unix) reads a child's output line by line.
#[cfg(unix)]
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ctstack::{
    AccessPath, CancelFlag, ErrorKind, OpenOptions, PyramidBuilder, ReadMode, Rows, Slice,
    average_pair, write_slice,
};
use rayon::prelude::*;

/// The environment variable that turns this binary into a child playing a role.
const CHILD_ENV: &str = "CTSTACK_FAULT_CHILD";
/// The file a child works on.
const PATH_ENV: &str = "CTSTACK_FAULT_PATH";
/// The checksum a child must see whenever a read succeeds.
const SUM_ENV: &str = "CTSTACK_FAULT_SUM";

/// How long any single wait may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(60);

const BIN: &str = env!("CARGO_BIN_EXE_ctstack");

// ---------------------------------------------------------------------------
// Helpers

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ctstack-faults-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `count` distinct `width` x `height` 16-bit slices `slice_0000.tif`, ...
/// into `dir` and returns their paths.
fn make_stack(dir: &Path, count: usize, width: u32, height: u32) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut pixels: Vec<u16> = (0..width * height)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 16) as u16)
        .collect();
    (0..count)
        .map(|k| {
            let step = (k as u16).wrapping_mul(977);
            for p in pixels.iter_mut() {
                *p = p.rotate_left(3).wrapping_add(step);
            }
            let path = dir.join(format!("slice_{k:04}.tif"));
            write_slice(&path, width, height, &pixels).unwrap();
            path
        })
        .collect()
}

/// Order-sensitive checksum of a slice's samples: (sum, sum of (i+1) * v).
fn checksum(rows: &Rows<'_, u16>) -> (u64, u64) {
    let mut sum = 0u64;
    let mut weighted = 0u64;
    let mut i = 0u64;
    for row in rows.iter() {
        for &v in row {
            i += 1;
            sum += u64::from(v);
            weighted = weighted.wrapping_add(i.wrapping_mul(u64::from(v)));
        }
    }
    (sum, weighted)
}

fn slice_checksum(slice: &Slice) -> (u64, u64) {
    checksum(&slice.rows::<u16>().unwrap())
}

/// A 64-bit FNV-1a hash of a file's bytes, by 8-byte words (fast enough in debug).
fn file_hash(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ bytes.len() as u64;
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn hashes(paths: &[PathBuf]) -> Vec<u64> {
    paths.iter().map(|p| file_hash(p)).collect()
}

/// Every file under the level directories of `out`, by relative path
/// (`"<k>/<name>"`), with its bytes; the lock file and other entries of `out`
/// itself are left out.
fn level_files(out: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let Ok(levels) = std::fs::read_dir(out) else {
        return files;
    };
    for level in levels.flatten() {
        if !level.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(level.path()).unwrap().flatten() {
            let rel = format!(
                "{}/{}",
                level.file_name().to_string_lossy(),
                f.file_name().to_string_lossy()
            );
            files.insert(rel, std::fs::read(f.path()).unwrap());
        }
    }
    files
}

/// Temporary files (`*.ctstack-tmp`) anywhere under `out`, one level deep.
fn temp_files(out: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![out.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(out) {
        dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    for dir in dirs {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().ends_with(".ctstack-tmp") {
                found.push(e.path());
            }
        }
    }
    found
}

/// `out` holds level folders and the manifest, nothing else (no lock file).
fn assert_only_outputs(out: &Path) {
    for e in std::fs::read_dir(out).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_level = e.path().is_dir() && name.parse::<usize>().is_ok();
        assert!(
            is_level || name == ctstack::MANIFEST_FILE,
            "{}: unexpected {name}",
            out.display()
        );
    }
}

fn assert_no_temps(out: &Path) {
    let temps = temp_files(out);
    assert!(temps.is_empty(), "temporary files left behind: {temps:?}");
}

/// Every file under a final name in `out` is a complete output: byte for byte the
/// file of the same name in `clean`. With `all`, `out` also has every file of
/// `clean`. Returns how many files `out` has.
fn assert_complete_outputs(out: &Path, clean: &BTreeMap<String, Vec<u8>>, all: bool) -> usize {
    let ours = level_files(out);
    for (rel, bytes) in &ours {
        let want = clean
            .get(rel)
            .unwrap_or_else(|| panic!("{}: unexpected file {rel}", out.display()));
        assert!(
            bytes == want,
            "{}: {rel} differs from a clean run's ({} bytes, want {})",
            out.display(),
            bytes.len(),
            want.len()
        );
    }
    if all {
        let missing: Vec<_> = clean.keys().filter(|k| !ours.contains_key(*k)).collect();
        assert!(missing.is_empty(), "{}: missing {missing:?}", out.display());
    }
    ours.len()
}

/// Builds the pyramid of `input` into `out` with the library; panics on error.
fn build(input: &Path, out: &Path, min_size: u32) {
    PyramidBuilder::from_dir(input)
        .unwrap()
        .output_dir(out)
        .min_size(min_size)
        .plan()
        .unwrap()
        .run(&mut |_, _| {}, &CancelFlag::new())
        .unwrap_or_else(|e| panic!("clean run of {}: {e}", input.display()));
}

/// The `ctstack pyramid` command for `input` into `out`.
fn cli_pyramid(input: &Path, out: &Path, min_size: u32) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("pyramid").arg(input).arg("--out").arg(out).args([
        "--min-size",
        &min_size.to_string(),
        "--quiet",
    ]);
    cmd
}

fn run_ok(cmd: &mut Command) -> Output {
    let output = cmd.output().expect("cannot run ctstack");
    assert!(
        output.status.success(),
        "{cmd:?} failed ({})\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Waits for `child` at most `limit`; kills it and panics if it is still running.
fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still running after {limit:?}: a hang");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// This test binary, re-run on test `test` alone, playing `role`.
fn child(test: &str, role: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, role);
    cmd
}

/// The role this process plays, if it is a child.
fn child_role() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

// ---------------------------------------------------------------------------
// Truncation while a slice is read

/// 2048 x 4096 16-bit: a 16 MiB slice.
const BIG_W: u32 = 2048;
const BIG_H: u32 = 4096;

/// Child role `buffered-reader`: opens the file at `$CTSTACK_FAULT_PATH` with
/// buffered reads over and over for a while, summing every row; every open must
/// give the checksum `$CTSTACK_FAULT_SUM` or an error. Prints a summary line.
fn buffered_reader() {
    let path = PathBuf::from(std::env::var(PATH_ENV).unwrap());
    let want = std::env::var(SUM_ENV).unwrap();
    let options = OpenOptions {
        read_mode: ReadMode::Buffered,
        ..OpenOptions::default()
    };
    let (mut ok, mut errors, mut wrong) = (0, 0, Vec::new());
    let mut kinds = BTreeMap::new();
    let start = Instant::now();
    // About 1.5 s, and until both outcomes were seen (for at most 20 s).
    let enough = |ok: usize, errors: usize| {
        let t = start.elapsed();
        (t > Duration::from_millis(1500) && ok >= 2 && errors >= 2) || t > Duration::from_secs(20)
    };
    while !enough(ok, errors) {
        match Slice::open_with(&path, &options) {
            Ok(slice) => {
                assert_eq!(slice.access().path, AccessPath::Read);
                let got = format!("{:?}", slice_checksum(&slice));
                if got == want {
                    ok += 1;
                } else {
                    wrong.push(got);
                }
            }
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::Io | ErrorKind::Format),
                    "unexpected error kind: {e}"
                );
                assert_eq!(e.path(), Some(path.as_path()), "{e}");
                errors += 1;
                *kinds.entry(e.kind().to_string()).or_insert(0) += 1;
            }
        }
    }
    println!("CHILD-RESULT ok={ok} errors={errors} kinds={kinds:?} wrong={wrong:?}");
    assert!(
        wrong.is_empty(),
        "reads that succeeded with other data: {wrong:?}"
    );
}

/// Buffered reads are immune to truncation: a child reads a 16 MiB slice in a loop
/// while this process truncates it (to 0, 100 bytes, half, all but one byte) and
/// writes it back; every read is the original data or an error, and the child
/// exits normally (not by a signal).
#[test]
fn buffered_reads_survive_truncation() {
    if child_role().as_deref() == Some("buffered-reader") {
        buffered_reader();
        return;
    }
    let dir = scratch("truncate-buffered");
    let path = dir.join("big.tif");
    let pixels: Vec<u16> = (0..BIG_W * BIG_H).map(|i| (i % 65_521) as u16).collect();
    write_slice(&path, BIG_W, BIG_H, &pixels).unwrap();
    let original = std::fs::read(&path).unwrap();
    let want = format!("{:?}", slice_checksum(&Slice::open(&path).unwrap()));

    let mut reader = child("buffered_reads_survive_truncation", "buffered-reader")
        .env(PATH_ENV, &path)
        .env(SUM_ENV, &want)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let cuts = [0, 100, original.len() as u64 / 2, original.len() as u64 - 1];
    let start = Instant::now();
    let mut rounds = 0;
    while reader.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < HANG, "the reader child hangs");
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(cuts[rounds % cuts.len()]).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        // Written back from the start: the file only ever holds a prefix of the original.
        file.write_all(&original).unwrap();
        drop(file);
        rounds += 1;
        // Whole for a while, so that some reads succeed.
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = reader.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the buffered reader failed ({}) while the file was truncated {rounds} times:\n{stdout}",
        output.status
    );
    let summary = stdout
        .lines()
        .find(|l| l.contains("CHILD-RESULT"))
        .unwrap_or_else(|| panic!("no summary from the child:\n{stdout}"));
    eprintln!("{rounds} truncations; child: {summary}");
    assert!(rounds > 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Child role `mapped-reader`: maps the file, says so, waits for the parent to
/// truncate it, then reads every row. Expected to die of SIGBUS (Unix only: on
/// Windows the truncation itself fails while the file is mapped).
#[cfg(unix)]
fn mapped_reader() {
    let path = PathBuf::from(std::env::var(PATH_ENV).unwrap());
    let options = OpenOptions {
        read_mode: ReadMode::Mmap,
        ..OpenOptions::default()
    };
    let slice = Slice::open_with(&path, &options).unwrap();
    assert_eq!(slice.access().path, AccessPath::Mapped);
    println!("CHILD-MAPPED");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let sum = slice_checksum(&slice);
    println!("CHILD-SURVIVED {sum:?}");
}

/// What a map cannot survive, documented by a test: a child maps a 16 MiB slice
/// (`ReadMode::Mmap`), this process truncates the file to 0, and the child's next
/// read of the pixels kills it with SIGBUS. No library can turn that into an
/// error; `ReadMode::Buffered` (above) is the remedy.
#[cfg(unix)]
#[test]
fn mapped_read_of_a_truncated_file_dies_by_sigbus() {
    use std::os::unix::process::ExitStatusExt;

    if child_role().as_deref() == Some("mapped-reader") {
        mapped_reader();
        return;
    }
    let dir = scratch("truncate-mapped");
    let path = dir.join("big.tif");
    let pixels: Vec<u16> = (0..BIG_W * BIG_H).map(|i| (i % 65_521) as u16).collect();
    write_slice(&path, BIG_W, BIG_H, &pixels).unwrap();

    let mut reader = child(
        "mapped_read_of_a_truncated_file_dies_by_sigbus",
        "mapped-reader",
    )
    .env(PATH_ENV, &path)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(reader.stdout.take().unwrap()).lines();
    let mapped = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("CHILD-MAPPED"));
    assert!(mapped, "the child did not map the file");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    writeln!(reader.stdin.take().unwrap(), "go").unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = wait_bounded(&mut reader, HANG, "the mapped reader");
    assert_eq!(
        status.signal(),
        Some(libc::SIGBUS),
        "expected the mapped reader to die of SIGBUS; it ended with {status}: {rest:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The length is checked when a file is mapped: a file that is shorter than its
/// TIFF structure says is an error, in every mode.
#[test]
fn truncated_files_are_errors_in_every_mode() {
    let dir = scratch("truncated-modes");
    let path = dir.join("cut.tif");
    let pixels: Vec<u16> = (0..512 * 512).map(|i| i as u16).collect();
    write_slice(&path, 512, 512, &pixels).unwrap();
    let full = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(full / 2)
        .unwrap();
    for mode in [ReadMode::Auto, ReadMode::Mmap, ReadMode::Buffered] {
        let options = OpenOptions {
            read_mode: mode,
            ..OpenOptions::default()
        };
        let err = Slice::open_with(&path, &options).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Format, "{mode:?}: {err}");
        assert_eq!(err.path(), Some(path.as_path()));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------
// Output faults

/// A small stack (16 slices of 64 x 48) and its clean pyramid (min size 8:
/// levels of 32x24, 16x12, 8x6).
struct Small {
    dir: PathBuf,
    inputs: Vec<PathBuf>,
    clean: BTreeMap<String, Vec<u8>>,
}

impl Small {
    const MIN_SIZE: u32 = 8;

    fn new(name: &str) -> Small {
        let dir = scratch(name);
        let inputs = make_stack(&dir.join("in"), 16, 64, 48);
        build(&dir.join("in"), &dir.join("clean"), Small::MIN_SIZE);
        let clean = level_files(&dir.join("clean"));
        assert_eq!(clean.len(), 8 + 4 + 2);
        Small { dir, inputs, clean }
    }

    fn input(&self) -> PathBuf {
        self.dir.join("in")
    }

    fn plan(&self, out: &Path) -> ctstack::Plan {
        PyramidBuilder::from_dir(self.input())
            .unwrap()
            .output_dir(out)
            .min_size(Small::MIN_SIZE)
            .plan()
            .unwrap()
    }
}

/// An output directory that cannot be written (as root, permissions do not stop
/// writes, so a level directory's name is taken by a regular file instead): a
/// clear I/O error naming the path, nothing under a final name, no temporary file,
/// inputs untouched.
#[test]
fn unwritable_output_directory_is_a_clear_error() {
    let small = Small::new("unwritable");
    let before = hashes(&small.inputs);

    // Root-proof: a regular file where the level-2 directory must go.
    let out = small.dir.join("out-file");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("2"), b"not a directory").unwrap();
    let err = small
        .plan(&out)
        .run(&mut |_, _| {}, &CancelFlag::new())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert_eq!(err.path(), Some(out.join("2").as_path()), "{err}");
    assert!(
        err.to_string().contains("cannot create output directory"),
        "{err}"
    );
    assert_eq!(assert_complete_outputs(&out, &small.clean, false), 0);
    assert_no_temps(&out);

    // Read-only permissions, where they bind (not for root).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let out = small.dir.join("out-ro");
        std::fs::create_dir_all(out.join("1")).unwrap();
        std::fs::set_permissions(out.join("1"), std::fs::Permissions::from_mode(0o555)).unwrap();
        let probe = out.join("1").join("probe");
        if std::fs::write(&probe, b"").is_ok() {
            let _ = std::fs::remove_file(&probe);
            eprintln!("skipped the chmod 0555 case: permissions do not bind (running as root)");
        } else {
            let err = small
                .plan(&out)
                .run(&mut |_, _| {}, &CancelFlag::new())
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Io, "{err}");
            assert_eq!(err.path(), Some(out.join("1").join("000000.tif").as_path()));
            assert!(err.to_string().contains("Permission denied"), "{err}");
            assert_eq!(assert_complete_outputs(&out, &small.clean, false), 0);
            assert_no_temps(&out);
        }
        std::fs::set_permissions(out.join("1"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    // The CLI says the same on stderr and exits 1.
    let out = small.dir.join("out-cli");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("1"), b"not a directory").unwrap();
    let output = cli_pyramid(&small.input(), &out, Small::MIN_SIZE)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error:") && stderr.contains(&out.join("1").display().to_string()),
        "{stderr}"
    );
    assert_no_temps(&out);

    assert_eq!(hashes(&small.inputs), before, "inputs changed");
    std::fs::remove_dir_all(&small.dir).unwrap();
}

/// A level directory that becomes unwritable in the middle of a run (replaced by
/// a regular file after the first output): the write fails with an I/O error that
/// names the output file; the outputs already written are complete; no temporary
/// file is left.
#[test]
fn output_failing_mid_run_leaves_only_complete_files() {
    let small = Small::new("midrun");
    let before = hashes(&small.inputs);
    let out = small.dir.join("out");
    let level2 = out.join("2");
    let mut sabotaged = false;
    let err = small
        .plan(&out)
        .run(
            &mut |done, _| {
                if done == 1 && !sabotaged {
                    std::fs::remove_dir(&level2).unwrap();
                    std::fs::write(&level2, b"not a directory any more").unwrap();
                    sabotaged = true;
                }
            },
            &CancelFlag::new(),
        )
        .unwrap_err();
    assert!(sabotaged);
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert_eq!(
        err.path(),
        Some(level2.join("000000.tif").as_path()),
        "{err}"
    );
    let written = assert_complete_outputs(&out, &small.clean, false);
    assert!(written >= 1, "the first level-1 slice was written");
    assert_no_temps(&out);
    assert_eq!(hashes(&small.inputs), before, "inputs changed");
    std::fs::remove_dir_all(&small.dir).unwrap();
}

/// A disk that fills, simulated with RLIMIT_FSIZE in the CLI's process (SIGXFSZ
/// ignored, so a write past the limit fails with EFBIG): the first four level-1
/// outputs exist already (kept), the level-2 and level-3 slices they make fit
/// under the limit, the next level-1 slice does not. Exit status 1, a message
/// naming the file, only complete files under final names, no temporary file.
#[cfg(unix)]
#[test]
fn disk_full_leaves_only_complete_files() {
    use std::os::unix::process::CommandExt;

    let dir = scratch("disk-full");
    let inputs = make_stack(&dir.join("in"), 16, 512, 512);
    let before = hashes(&inputs);
    // Levels: 256x256 (128 KiB + header), 128x128, 64x64.
    build(&dir.join("in"), &dir.join("clean"), 64);
    let clean = level_files(&dir.join("clean"));
    assert_eq!(clean.len(), 8 + 4 + 2);

    // A complete run whose outputs were then lost, but for the first four of
    // level 1 (the manifest vouches for those).
    let out = dir.join("out");
    build(&dir.join("in"), &out, 64);
    for rel in clean.keys() {
        if !(rel.starts_with("1/") && rel.as_str() < "1/000004.tif") {
            std::fs::remove_file(out.join(rel)).unwrap();
        }
    }
    let limit: libc::rlim_t = 64 * 1024;
    let mut cmd = cli_pyramid(&dir.join("in"), &out, 64);
    // SAFETY: between fork and exec the closure only calls async-signal-safe
    // functions (signal, setrlimit) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("File too large") || stderr.contains("os error 27"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&out.join("1").join("000004.tif").display().to_string()),
        "the message names the output file: {stderr}"
    );
    let present = assert_complete_outputs(&out, &clean, false);
    let files = level_files(&out);
    for rel in [
        "1/000000.tif",
        "1/000003.tif",
        "2/000000.tif",
        "2/000001.tif",
        "3/000000.tif",
    ] {
        assert!(
            files.contains_key(rel),
            "{rel} is missing ({present} files)"
        );
    }
    assert!(!files.contains_key("1/000004.tif"));
    assert_no_temps(&out);

    // Once there is room again, a rerun completes the pyramid.
    run_ok(&mut cli_pyramid(&dir.join("in"), &out, 64));
    assert_complete_outputs(&out, &clean, true);
    assert_no_temps(&out);
    assert_only_outputs(&out);
    assert_eq!(hashes(&inputs), before, "inputs changed");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A slice that vanishes, or is cut to 100 bytes, while the run is under way
/// (after the first output): the run fails with an error naming that file, every
/// output under a final name is complete, no temporary file is left, and the other
/// inputs are untouched.
#[test]
fn slice_vanishing_mid_run_is_named() {
    let small = Small::new("vanish");
    for (case, mode) in [
        ("deleted", ReadMode::Auto),
        ("truncated", ReadMode::Mmap),
        ("truncated", ReadMode::Buffered),
    ] {
        let input = small.dir.join(format!("in-{case}-{mode:?}"));
        std::fs::create_dir_all(&input).unwrap();
        for p in &small.inputs {
            std::fs::copy(p, input.join(p.file_name().unwrap())).unwrap();
        }
        // Pair 6 (slices 12 and 13): never open before the callback runs, which
        // happens after output 1, while at most pair 1 is open ahead.
        let victim = input.join("slice_0012.tif");
        let others: Vec<PathBuf> = small
            .inputs
            .iter()
            .map(|p| input.join(p.file_name().unwrap()))
            .filter(|p| *p != victim)
            .collect();
        let before = hashes(&others);
        let out = small.dir.join(format!("out-{case}-{mode:?}"));
        let plan = PyramidBuilder::from_dir(&input)
            .unwrap()
            .output_dir(&out)
            .min_size(Small::MIN_SIZE)
            .read_mode(mode)
            .plan()
            .unwrap();
        let mut struck = false;
        let err = plan
            .run(
                &mut |done, _| {
                    if done == 1 && !struck {
                        struck = true;
                        match case {
                            "deleted" => std::fs::remove_file(&victim).unwrap(),
                            _ => std::fs::OpenOptions::new()
                                .write(true)
                                .open(&victim)
                                .unwrap()
                                .set_len(100)
                                .unwrap(),
                        }
                    }
                },
                &CancelFlag::new(),
            )
            .unwrap_err();
        let what = format!("{case} ({mode:?})");
        assert!(struck, "{what}");
        let want_kind = if case == "deleted" {
            ErrorKind::Io
        } else {
            ErrorKind::Format
        };
        assert_eq!(err.kind(), want_kind, "{what}: {err}");
        assert_eq!(err.path(), Some(victim.as_path()), "{what}: {err}");
        assert!(err.to_string().contains("slice_0012.tif"), "{what}: {err}");
        let written = assert_complete_outputs(&out, &small.clean, false);
        assert!(
            (1..small.clean.len()).contains(&written),
            "{what}: {written} outputs"
        );
        assert_no_temps(&out);
        assert_only_outputs(&out);
        assert_eq!(hashes(&others), before, "{what}: inputs changed");
    }
    std::fs::remove_dir_all(&small.dir).unwrap();
}

// ---------------------------------------------------------------------------
// kill -9 and concurrent runs: a stack that takes about a second

/// 64 slices of 1024 x 1024 16-bit (128 MiB), kept under the target directory
/// between test runs (it is made the same way every time: change the `-v1` in its
/// name when [`make_stack`] changes), and the pyramid of a clean run of it made by
/// this process (min size 64: 32 + 16 + 8 + 4 outputs).
struct Big {
    input: PathBuf,
    clean: BTreeMap<String, Vec<u8>>,
}

const BIG_MIN_SIZE: u32 = 64;

fn big() -> &'static Big {
    static BIG: OnceLock<Big> = OnceLock::new();
    BIG.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let input = root.join("ctstack-faults-stack-64x1024x1024-v1");
        if !input.join("complete").exists() {
            // Made under a private name and renamed, so a concurrent test process
            // never sees half a stack.
            let partial = root.join(format!(
                "ctstack-faults-stack-partial-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&partial);
            make_stack(&partial, 64, 1024, 1024);
            std::fs::write(partial.join("complete"), b"").unwrap();
            if std::fs::rename(&partial, &input).is_err() {
                // Another process won the race; its stack is the same.
                std::fs::remove_dir_all(&partial).unwrap();
            }
        }
        let out = scratch("big-clean");
        build(&input, &out, BIG_MIN_SIZE);
        let clean = level_files(&out);
        assert_eq!(clean.len(), 32 + 16 + 8 + 4);
        std::fs::remove_dir_all(&out).unwrap();
        Big { input, clean }
    })
}

/// `kill -9` in the middle of `ctstack pyramid`, then the same command again: the
/// result is byte for byte a clean run's, and no temporary file remains.
#[cfg(unix)]
#[test]
fn kill_9_then_rerun_is_byte_identical_to_a_clean_run() {
    let big = big();
    let out = scratch("kill9");
    let mut run = cli_pyramid(&big.input, &out, BIG_MIN_SIZE)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let first = out.join("1").join("000000.tif");
    let start = Instant::now();
    let mut killed = false;
    loop {
        if run.try_wait().unwrap().is_some() {
            // Finished before the first output was seen: nothing to kill.
            break;
        }
        if first.exists() {
            run.kill().unwrap(); // SIGKILL on Unix
            killed = true;
            break;
        }
        assert!(start.elapsed() < HANG, "no output after {HANG:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
    let status = run.wait().unwrap();
    let present = assert_complete_outputs(&out, &big.clean, false);
    eprintln!(
        "killed: {killed} ({status}); {present} of {} outputs existed, {} temporary files",
        big.clean.len(),
        temp_files(&out).len()
    );

    run_ok(&mut cli_pyramid(&big.input, &out, BIG_MIN_SIZE));
    assert_complete_outputs(&out, &big.clean, true);
    assert_no_temps(&out);
    assert_only_outputs(&out);
    std::fs::remove_dir_all(&out).unwrap();
}

/// Two `ctstack pyramid` runs on the same input and output directory at once:
/// both succeed (the lock makes them take turns; the second keeps what the first
/// wrote, so between them they write each output once) and every output equals a
/// clean run's, byte for byte.
#[test]
fn two_concurrent_runs_both_succeed_with_complete_outputs() {
    let big = big();
    let out = scratch("concurrent");
    let runs: Vec<Child> = (0..2)
        .map(|_| {
            // Not --quiet: the summary line says how many slices each run wrote.
            Command::new(BIN)
                .arg("pyramid")
                .arg(&big.input)
                .arg("--out")
                .arg(&out)
                .args(["--min-size", &BIG_MIN_SIZE.to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut written = 0;
    for mut run in runs {
        // The output is a line or two, well within a pipe's buffer.
        wait_bounded(&mut run, HANG, "a concurrent run");
        let output = run.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "a concurrent run failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        // "levels 1-4 (...), 60 slices rebuilt, 0 kept, 0 removed, ..."
        let count = stdout
            .split(", ")
            .find_map(|part| part.strip_suffix(" slices rebuilt"))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no summary: {stdout}"));
        written += count;
    }
    assert_eq!(
        written,
        big.clean.len(),
        "each output is written exactly once"
    );
    assert_complete_outputs(&out, &big.clean, true);
    assert_no_temps(&out);
    assert_only_outputs(&out);
    std::fs::remove_dir_all(&out).unwrap();
}

// ---------------------------------------------------------------------------
// Slices shared between threads

/// One `Slice` read from 64 rayon tasks at once gives the same checksum every
/// time: mapped, read, copied (big-endian), decoded (LZW) and scattered strips
/// (whose contiguous copy is made once, on first request, by whichever task is
/// first).
#[test]
fn a_shared_slice_reads_identically_from_many_threads() {
    let dir = scratch("shared");
    let big = dir.join("big.tif");
    let pixels: Vec<u16> = (0..1024 * 1024).map(|i| (i * 7 % 65_536) as u16).collect();
    write_slice(&big, 1024, 1024, &pixels).unwrap();
    let slices = common::fixtures().join("slices");
    let mmap = OpenOptions {
        read_mode: ReadMode::Mmap,
        ..OpenOptions::default()
    };
    let cases = [
        (Slice::open_with(&big, &mmap).unwrap(), AccessPath::Mapped),
        (
            Slice::open_with(
                slices.join("tifffile_u16_le_1strip.tif"),
                &OpenOptions {
                    read_mode: ReadMode::Buffered,
                    ..OpenOptions::default()
                },
            )
            .unwrap(),
            AccessPath::Read,
        ),
        (
            Slice::open(slices.join("tifffile_u16_be.tif")).unwrap(),
            AccessPath::Copied,
        ),
        (
            Slice::open(slices.join("tifffile_u16_lzw.tif")).unwrap(),
            AccessPath::Decoded,
        ),
        (
            Slice::open_with(slices.join("hand_u16_strips_reversed_gaps.tif"), &mmap).unwrap(),
            AccessPath::Mapped,
        ),
    ];
    for (slice, path) in &cases {
        assert_eq!(slice.access().path, *path, "{}", slice.path().display());
        let want = slice_checksum(slice);
        let contiguous: Vec<u16> = slice
            .rows::<u16>()
            .unwrap()
            .iter()
            .flatten()
            .copied()
            .collect();
        let got: Vec<((u64, u64), bool)> = (0..64)
            .into_par_iter()
            .map(|_| {
                (
                    slice_checksum(slice),
                    slice.contiguous::<u16>().unwrap() == contiguous.as_slice(),
                )
            })
            .collect();
        assert!(
            got.iter().all(|&(sum, same)| sum == want && same),
            "{}: {got:?}",
            slice.path().display()
        );
    }
    // Windows refuses to delete a mapped file: unmap before the folder goes.
    drop(cases);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `average_pair` on one shared pair of slices from several threads at once (each
/// of which also uses rayon inside) gives the single-threaded result every time.
#[test]
fn average_pair_on_shared_slices_from_several_threads() {
    let dir = scratch("average-shared");
    let inputs = make_stack(&dir, 2, 1024, 768);
    let a = Slice::open(&inputs[0]).unwrap();
    let b = Slice::open(&inputs[1]).unwrap();
    let (ra, rb) = (a.rows::<u16>().unwrap(), b.rows::<u16>().unwrap());
    let mut want = vec![0u16; 512 * 384];
    average_pair(&ra, &rb, &mut want).unwrap();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..6)
            .map(|t| {
                let (a, b, want) = (&a, &b, &want);
                s.spawn(move || {
                    for _ in 0..4 {
                        let (ra, rb) = (a.rows::<u16>().unwrap(), b.rows::<u16>().unwrap());
                        let mut out = vec![0u16; 512 * 384];
                        // Half the threads average a pair, half a slice with itself.
                        if t % 2 == 0 {
                            average_pair(&ra, &rb, &mut out).unwrap();
                            assert!(out == *want, "thread {t}: a different average");
                        } else {
                            average_pair(&ra, &ra, &mut out).unwrap();
                            let mut solo = vec![0u16; 512 * 384];
                            average_pair(&ra, &ra, &mut solo).unwrap();
                            assert!(out == solo, "thread {t}: a different self-average");
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    });
    // Windows refuses to delete a mapped file: unmap before the folder goes.
    drop((a, b));
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------
// The policy on the command line

/// `--mmap auto|always|never` and `--no-mmap` give the same pyramid; a bad policy
/// is a usage error (exit status 2); `ctstack info --mmap` reports the access path
/// each policy gives.
#[test]
fn cli_mmap_policies() {
    let small = Small::new("cli-mmap");
    for flags in [
        &["--mmap", "auto"][..],
        &["--mmap", "always"],
        &["--mmap", "never"],
        &["--no-mmap"],
    ] {
        let out = small.dir.join(format!("out{}", flags.join("")));
        run_ok(cli_pyramid(&small.input(), &out, Small::MIN_SIZE).args(flags));
        assert_complete_outputs(&out, &small.clean, true);
    }
    let bad = cli_pyramid(&small.input(), &small.dir.join("bad"), Small::MIN_SIZE)
        .args(["--mmap", "sometimes"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("[possible values: auto, always, never]")
    );

    let file = &small.inputs[0];
    for (policy, want) in [
        ("auto", "mapped: one strip"),
        ("always", "mapped: one strip"),
        ("never", "read: one strip"),
    ] {
        let output = run_ok(Command::new(BIN).args(["info", "--mmap", policy]).arg(file));
        let line = String::from_utf8_lossy(&output.stdout);
        assert!(line.trim_end().ends_with(want), "{policy}: {line}");
    }
    std::fs::remove_dir_all(&small.dir).unwrap();
}
