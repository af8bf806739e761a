//! Resume against the naive reference pyramid, through the library and through
//! the CLI: what is kept, rebuilt and removed when inputs, the stack or
//! `min_size` change; what is never deleted; a damaged manifest; concurrent and
//! killed runs; the lock; reading a pyramid back; slabs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::Rng;
use common::pyramid::{pixels, reference_pyramid, temp_dir, tree};
use ctstack::{
    CancelFlag, ErrorKind, MANIFEST_FILE, Pyramid, PyramidBuilder, Sample, Summary, level_shapes,
    write_slice,
};

const BIN: &str = env!("CARGO_BIN_EXE_ctstack");

/// 37 x 29 slices with min size 4: levels 18x14, 9x7, 4x3.
const W: u32 = 37;
const H: u32 = 29;
const MIN_SIZE: u32 = 4;

/// An input stack in `<dir>/in` and an output folder `<dir>/out`, with the
/// pixels of every input as the reference sees them.
struct Stack {
    dir: PathBuf,
    vol: Vec<Vec<u32>>,
    rng: Rng,
    /// 8-bit inputs (else 16-bit).
    u8: bool,
}

impl Stack {
    fn new(name: &str, count: usize, seed: u64) -> Stack {
        Stack::with_depth(name, count, seed, false)
    }

    fn with_depth(name: &str, count: usize, seed: u64, u8: bool) -> Stack {
        let dir = temp_dir(name);
        std::fs::create_dir_all(dir.join("in")).unwrap();
        let mut stack = Stack {
            dir,
            vol: Vec::new(),
            rng: Rng::new(seed),
            u8,
        };
        for i in 0..count {
            stack.write_input(i);
        }
        stack
    }

    fn input(&self) -> PathBuf {
        self.dir.join("in")
    }

    fn out(&self) -> PathBuf {
        self.dir.join("out")
    }

    fn input_path(&self, i: usize) -> PathBuf {
        self.input().join(format!("s{i:03}.tif"))
    }

    /// Writes input `i` with new random pixels (appending it if `i` is the count),
    /// making sure its modification time changes, as a later rewrite's would.
    fn write_input(&mut self, i: usize) {
        let max = if self.u8 { 255 } else { 65535 };
        let img: Vec<u32> = (0..W * H)
            .map(|_| match self.rng.below(6) {
                0 => 0,
                1 => max,
                _ => self.rng.below(u64::from(max) + 1) as u32,
            })
            .collect();
        let path = self.input_path(i);
        let before = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let start = Instant::now();
        loop {
            if self.u8 {
                let samples: Vec<u8> = img.iter().map(|&v| v as u8).collect();
                write_slice(&path, W, H, &samples).unwrap();
            } else {
                let samples: Vec<u16> = img.iter().map(|&v| v as u16).collect();
                write_slice(&path, W, H, &samples).unwrap();
            }
            let now = std::fs::metadata(&path).unwrap().modified().unwrap();
            if Some(now) != before {
                break;
            }
            // The filesystem's clock has not ticked since the last write.
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "mtime never changes"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        if i == self.vol.len() {
            self.vol.push(img);
        } else {
            self.vol[i] = img;
        }
    }

    /// Removes the last `n` inputs.
    fn shorten(&mut self, n: usize) {
        for _ in 0..n {
            let i = self.vol.len() - 1;
            std::fs::remove_file(self.input_path(i)).unwrap();
            self.vol.pop();
        }
    }

    fn reference(&self, min_size: u32) -> BTreeMap<String, (u32, u32, Vec<u32>)> {
        reference_pyramid(&self.vol, W, H, min_size)
    }

    /// The output folder holds exactly the reference pyramid's files (besides
    /// `extra`, files the test put there), pixel for pixel, and the manifest.
    fn assert_matches_reference(&self, min_size: u32, extra: &[&str]) {
        let want = self.reference(min_size);
        let got: Vec<String> = tree(&self.out())
            .into_iter()
            .filter(|f| !extra.contains(&f.as_str()))
            .collect();
        assert_eq!(
            got,
            want.keys().cloned().collect::<Vec<_>>(),
            "output files differ from the reference's"
        );
        for (rel, reference) in &want {
            assert_eq!(&pixels(&self.out().join(rel)), reference, "{rel}");
        }
        assert_clean(&self.out(), extra);
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The top of an output folder holds level folders and the manifest, and the
/// top-level names in `extra`: no lock file, no temporary file.
fn assert_clean(out: &Path, extra: &[&str]) {
    for e in std::fs::read_dir(out).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_level = e.path().is_dir() && name.parse::<usize>().is_ok();
        assert!(
            is_level || name == MANIFEST_FILE || extra.contains(&name.as_str()),
            "{}: unexpected {name}",
            out.display()
        );
        if is_level {
            for f in std::fs::read_dir(e.path()).unwrap().flatten() {
                let f = f.file_name().to_string_lossy().into_owned();
                assert!(!f.ends_with(".ctstack-tmp"), "temporary file {name}/{f}");
            }
        }
    }
}

/// What identifies a file on disk: inode (on Unix) and modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    mtime: SystemTime,
}

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).unwrap();
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Stamp {
        inode,
        mtime: m.modified().unwrap(),
    }
}

/// Every file under the level folders of `out`, and the manifest, stamped.
fn stamps(out: &Path) -> BTreeMap<String, Stamp> {
    let mut all: BTreeMap<String, Stamp> = tree(out)
        .into_iter()
        .map(|rel| {
            let s = stamp(&out.join(&rel));
            (rel, s)
        })
        .collect();
    all.insert(MANIFEST_FILE.into(), stamp(&out.join(MANIFEST_FILE)));
    all
}

/// The files whose stamp differs between `before` and `after` (or that exist in
/// only one of them).
fn changed(before: &BTreeMap<String, Stamp>, after: &BTreeMap<String, Stamp>) -> BTreeSet<String> {
    before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect()
}

/// How a run is started: the library or the `ctstack` command.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Via {
    Library,
    Cli,
}

/// What a run reported.
#[derive(Debug, Clone, PartialEq)]
struct Counts {
    rebuilt: usize,
    kept: usize,
    removed: usize,
    warnings: Vec<String>,
}

impl From<Summary> for Counts {
    fn from(s: Summary) -> Counts {
        Counts {
            rebuilt: s.rebuilt,
            kept: s.kept,
            removed: s.removed,
            warnings: s.warnings,
        }
    }
}

fn run(via: Via, stack: &Stack, min_size: u32, force: bool) -> Counts {
    match via {
        Via::Library => PyramidBuilder::from_dir(stack.input())
            .unwrap()
            .output_dir(stack.out())
            .min_size(min_size)
            .force(force)
            .plan()
            .unwrap()
            .run(&mut |_, _| {}, &CancelFlag::new())
            .unwrap_or_else(|e| panic!("{e}"))
            .into(),
        Via::Cli => {
            let mut cmd = Command::new(BIN);
            cmd.arg("pyramid")
                .arg(stack.input())
                .arg("--out")
                .arg(stack.out())
                .args(["--min-size", &min_size.to_string()]);
            if force {
                cmd.arg("--force");
            }
            cli_counts(&cmd.output().unwrap())
        }
    }
}

/// A run that must be refused as not in the state needed (CLI: exit 3): its
/// message (the CLI's stderr).
fn refused(via: Via, stack: &Stack, min_size: u32, force: bool) -> String {
    match via {
        Via::Library => {
            let err = PyramidBuilder::from_dir(stack.input())
                .unwrap()
                .output_dir(stack.out())
                .min_size(min_size)
                .force(force)
                .plan()
                .unwrap()
                .run(&mut |_, _| {}, &CancelFlag::new())
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::State, "{err}");
            err.to_string()
        }
        Via::Cli => {
            let mut cmd = Command::new(BIN);
            cmd.arg("pyramid")
                .arg(stack.input())
                .arg("--out")
                .arg(stack.out())
                .args(["--min-size", &min_size.to_string()]);
            if force {
                cmd.arg("--force");
            }
            let output = cmd.output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            assert_eq!(output.status.code(), Some(3), "{stderr}");
            stderr
        }
    }
}

/// Every file under `dir` and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut all = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                all.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    all
}

/// What a successful `ctstack pyramid` printed.
fn cli_counts(output: &std::process::Output) -> Counts {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "ctstack pyramid failed: {stderr}");
    // "levels 1-3 (...), 10 slices rebuilt, 4 kept, 0 removed, ..."
    let field = |suffix: &str| {
        stdout
            .split(", ")
            .find_map(|part| part.strip_suffix(suffix))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no {suffix:?} in {stdout}"))
    };
    Counts {
        rebuilt: field(" slices rebuilt"),
        kept: field(" kept"),
        removed: field(" removed"),
        warnings: stderr
            .lines()
            .filter_map(|l| l.strip_prefix("ctstack: warning: "))
            .map(String::from)
            .collect(),
    }
}

/// Outputs of the pyramid of `count` inputs.
fn outputs(count: usize, min_size: u32) -> usize {
    level_shapes(W, H, count, min_size)[1..]
        .iter()
        .map(|s| s.count)
        .sum()
}

/// The relative paths of the outputs that depend on input `i`, at every level.
fn dependants(i: usize, count: usize, min_size: u32) -> BTreeSet<String> {
    (1..level_shapes(W, H, count, min_size).len())
        .map(|k| format!("{k}/{:06}.tif", i >> k))
        .collect()
}

const VIAS: [Via; 2] = [Via::Library, Via::Cli];

#[test]
fn an_unchanged_rerun_rewrites_nothing() {
    for via in VIAS {
        let stack = Stack::new(&format!("unchanged-{via:?}"), 13, 1);
        let first = run(via, &stack, MIN_SIZE, false);
        assert_eq!((first.rebuilt, first.kept), (outputs(13, MIN_SIZE), 0));
        let before = stamps(&stack.out());
        let again = run(via, &stack, MIN_SIZE, false);
        assert_eq!(
            (again.rebuilt, again.kept, again.removed),
            (0, outputs(13, MIN_SIZE), 0),
            "{via:?}"
        );
        assert!(again.warnings.is_empty(), "{:?}", again.warnings);
        // Not an output, nor the manifest, was written again.
        assert_eq!(changed(&before, &stamps(&stack.out())), BTreeSet::new());
        stack.assert_matches_reference(MIN_SIZE, &[]);
    }
}

#[test]
fn an_unchanged_rerun_reads_no_input_pixels() {
    let stack = Stack::new("no-read", 13, 2);
    run(Via::Library, &stack, MIN_SIZE, false);
    let plan = PyramidBuilder::from_dir(stack.input())
        .unwrap()
        .output_dir(stack.out())
        .min_size(MIN_SIZE)
        .plan()
        .unwrap();
    let summary = plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    assert_eq!((summary.input_bytes, summary.rebuilt), (0, 0));
}

#[test]
fn rewritten_inputs_with_the_same_names_and_sizes_rebuild_everything() {
    for via in VIAS {
        let mut stack = Stack::new(&format!("rewritten-{via:?}"), 13, 3);
        run(via, &stack, MIN_SIZE, false);
        let size = std::fs::metadata(stack.input_path(0)).unwrap().len();
        for i in 0..13 {
            stack.write_input(i);
        }
        assert_eq!(std::fs::metadata(stack.input_path(0)).unwrap().len(), size);
        let again = run(via, &stack, MIN_SIZE, false);
        assert_eq!((again.rebuilt, again.kept), (outputs(13, MIN_SIZE), 0));
        stack.assert_matches_reference(MIN_SIZE, &[]);
    }
}

#[test]
fn one_replaced_input_rebuilds_only_its_dependants() {
    for via in VIAS {
        for victim in [0, 5, 12] {
            let mut stack = Stack::new(&format!("replaced-{via:?}-{victim}"), 13, 4);
            run(via, &stack, MIN_SIZE, false);
            let before = stamps(&stack.out());
            stack.write_input(victim);
            let again = run(via, &stack, MIN_SIZE, false);
            let mut want = dependants(victim, 13, MIN_SIZE);
            assert_eq!(again.rebuilt, want.len(), "{via:?} victim {victim}");
            assert_eq!(again.kept, outputs(13, MIN_SIZE) - want.len());
            want.insert(MANIFEST_FILE.into());
            assert_eq!(changed(&before, &stamps(&stack.out())), want, "{via:?}");
            stack.assert_matches_reference(MIN_SIZE, &[]);
        }
    }
}

/// A pyramid built on Linux and run again through Windows (a lab share seen from
/// both, a disk moved between them) sees every time truncated to NTFS's 100 ns;
/// one built on Windows and run again on Linux sees the reverse. Neither rebuilds.
#[test]
fn a_manifest_made_on_another_os_is_trusted_when_times_agree_at_100_ns() {
    let stack = Stack::new("other-os", 9, 21);
    run(Via::Library, &stack, MIN_SIZE, false);
    let path = stack.out().join(MANIFEST_FILE);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let truncate = |record: &mut serde_json::Value| {
        let ns = record["mtime_ns"].as_i64().unwrap();
        record["mtime_ns"] = (ns - ns.rem_euclid(100)).into();
    };
    manifest["inputs"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .for_each(truncate);
    for level in manifest["levels"].as_array_mut().unwrap() {
        level["files"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .for_each(truncate);
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    let again = run(Via::Library, &stack, MIN_SIZE, false);
    assert_eq!(
        (again.rebuilt, again.kept),
        (0, outputs(9, MIN_SIZE)),
        "{:?}",
        again.warnings
    );
    // A time a whole 100 ns step away is a changed input: its dependants are rebuilt.
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let first = &mut manifest["inputs"][0]["mtime_ns"];
    *first = (first.as_i64().unwrap() - 100).into();
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    let again = run(Via::Library, &stack, MIN_SIZE, false);
    assert_eq!(again.rebuilt, dependants(0, 9, MIN_SIZE).len());
}

#[test]
fn a_shortened_stack_removes_the_outputs_it_no_longer_has() {
    for via in VIAS {
        let mut stack = Stack::new(&format!("shortened-{via:?}"), 13, 5);
        run(via, &stack, MIN_SIZE, false);
        let before = stamps(&stack.out());
        stack.shorten(4);
        let again = run(via, &stack, MIN_SIZE, false);
        // 13 -> 9: level 1 has 5 slices (was 7), level 2 has 3 (4), level 3 has 2.
        assert_eq!(again.removed, (7 - 5) + (4 - 3), "{via:?}");
        // Slice 4 of level 1 was inputs 8..10, now input 8 alone: rebuilt, as are
        // its dependants above; everything from inputs 0..8 is kept.
        let want: BTreeSet<String> = ["1/000004.tif", "2/000002.tif", "3/000001.tif"]
            .map(String::from)
            .into();
        assert_eq!(again.rebuilt, want.len());
        assert_eq!(again.kept, outputs(9, MIN_SIZE) - want.len());
        let diff = changed(&before, &stamps(&stack.out()));
        for rel in &want {
            assert!(diff.contains(rel), "{rel} not rebuilt: {diff:?}");
        }
        stack.assert_matches_reference(MIN_SIZE, &[]);
    }
}

#[test]
fn a_lengthened_stack_rebuilds_only_what_the_new_inputs_change() {
    for via in VIAS {
        let mut stack = Stack::new(&format!("lengthened-{via:?}"), 13, 6);
        run(via, &stack, MIN_SIZE, false);
        let before = stamps(&stack.out());
        for i in 13..19 {
            stack.write_input(i);
        }
        let again = run(via, &stack, MIN_SIZE, false);
        // Everything made from inputs 0..12 alone stays: level 1 slices 0..6,
        // level 2 slices 0..3 (inputs 0..12), level 3 slice 0 (inputs 0..8).
        let kept = 6 + 3 + 1;
        assert_eq!(again.kept, kept, "{via:?}");
        assert_eq!(again.rebuilt, outputs(19, MIN_SIZE) - kept);
        assert_eq!(again.removed, 0);
        let diff = changed(&before, &stamps(&stack.out()));
        assert!(!diff.contains("1/000005.tif") && diff.contains("1/000006.tif"));
        stack.assert_matches_reference(MIN_SIZE, &[]);
    }
}

#[test]
fn raising_and_lowering_min_size_keeps_the_shared_levels() {
    for via in VIAS {
        let stack = Stack::new(&format!("min-size-{via:?}"), 13, 7);
        run(via, &stack, MIN_SIZE, false);
        let all = outputs(13, MIN_SIZE);
        // Raised to 10: levels 18x14 and 9x7 only; level 3 goes, folder and all.
        let raised = run(via, &stack, 10, false);
        assert_eq!(
            (raised.rebuilt, raised.kept),
            (0, outputs(13, 10)),
            "{via:?}"
        );
        assert_eq!(raised.removed, all - outputs(13, 10));
        assert!(!stack.out().join("3").exists());
        stack.assert_matches_reference(10, &[]);
        // Lowered again: only level 3 is built.
        let lowered = run(via, &stack, MIN_SIZE, false);
        assert_eq!(
            (lowered.rebuilt, lowered.kept, lowered.removed),
            (all - outputs(13, 10), outputs(13, 10), 0)
        );
        stack.assert_matches_reference(MIN_SIZE, &[]);
    }
}

#[test]
fn force_rebuilds_everything() {
    for via in VIAS {
        let stack = Stack::new(&format!("force-{via:?}"), 13, 8);
        run(via, &stack, MIN_SIZE, false);
        let before = stamps(&stack.out());
        let forced = run(via, &stack, MIN_SIZE, true);
        assert_eq!((forced.rebuilt, forced.kept), (outputs(13, MIN_SIZE), 0));
        let diff = changed(&before, &stamps(&stack.out()));
        let levels: BTreeSet<String> = tree(&stack.out()).into_iter().collect();
        assert!(levels.is_subset(&diff), "not all rewritten: {diff:?}");
        stack.assert_matches_reference(MIN_SIZE, &[]);
    }
}

#[test]
fn files_the_user_put_in_the_output_folder_are_kept_and_reported() {
    for via in VIAS {
        let mut stack = Stack::new(&format!("user-files-{via:?}"), 13, 9);
        run(via, &stack, MIN_SIZE, false);
        let out = stack.out();
        std::fs::write(out.join("notes.txt"), b"mine").unwrap();
        std::fs::write(out.join("1/notes.txt"), b"mine too").unwrap();
        // Named like an output, beyond the plan, never listed in the manifest.
        std::fs::write(out.join("1/000099.tif"), b"not ctstack's").unwrap();
        // An output the manifest lists, replaced by the user's own file.
        std::fs::write(out.join("1/000006.tif"), b"the user's now").unwrap();
        // Shortening removes stale outputs, but only ctstack's, unchanged.
        stack.shorten(4);
        let again = run(via, &stack, MIN_SIZE, false);
        assert_eq!(again.removed, 2, "{via:?}");
        for f in ["notes.txt", "1/notes.txt", "1/000099.tif", "1/000006.tif"] {
            assert!(out.join(f).exists(), "{via:?}: {f} was deleted");
        }
        assert!(
            again
                .warnings
                .iter()
                .any(|w| w.contains("3 files not written by ctstack") && w.contains("000006.tif")),
            "{via:?}: {:?}",
            again.warnings
        );
        assert!(
            again
                .warnings
                .iter()
                .any(|w| w.contains("000006.tif: changed since ctstack wrote it")),
            "{via:?}: {:?}",
            again.warnings
        );
        let extra = ["notes.txt", "1/notes.txt", "1/000099.tif", "1/000006.tif"];
        stack.assert_matches_reference(MIN_SIZE, &extra);
    }
}

#[test]
fn an_output_folder_made_by_another_tool_loses_nothing() {
    for via in VIAS {
        let stack = Stack::new(&format!("foreign-{via:?}"), 13, 10);
        let out = stack.out();
        // Another tool's pyramid: other names, other sizes, deeper levels.
        let mut theirs = Vec::new();
        for (rel, bytes) in [
            ("1/000000.tif", &b"their level 1"[..]),
            ("1/thumb_0001.tif", b"theirs"),
            ("4/000000.tif", b"a level we do not make"),
            ("readme.txt", b"made by another tool"),
        ] {
            let path = out.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
            theirs.push(rel);
        }
        // A file at an output name that is not a level slice of this stack
        // is not ctstack's to replace, forced or not: refused, nothing changed.
        let before = snapshot(&out);
        for force in [false, true] {
            let message = refused(via, &stack, MIN_SIZE, force);
            assert!(
                message.contains(
                    "1/000000.tif is at an output name of the pyramid, and ctstack did not write it"
                ) && message.contains("choose another output folder, or move it away"),
                "{via:?}: {message}"
            );
            assert_eq!(snapshot(&out), before, "{via:?}");
        }
        let moved = out.join("1/000000.tif");
        std::fs::remove_file(&moved).unwrap();
        let first = run(via, &stack, MIN_SIZE, false);
        // Nothing trusted: every planned file built, nothing removed.
        assert_eq!(
            (first.rebuilt, first.kept, first.removed),
            (outputs(13, MIN_SIZE), 0, 0)
        );
        for rel in &theirs[1..] {
            assert!(out.join(rel).exists(), "{via:?}: {rel} deleted");
        }
        assert_eq!(first.warnings.len(), 2, "{:?}", first.warnings);
        stack.assert_matches_reference(MIN_SIZE, &theirs[1..]);
    }
}

/// Files at output names that no manifest lists are taken over only if they
/// are an earlier pyramid of this stack (a TIFF of the level's width, height
/// and sample type: CTHarvester's own thumbnails) or hold nothing (empty, or
/// zero bytes: what a power loss leaves of an unsynced output); anything else
/// refuses the run, whole or slab, before anything is written.
#[test]
fn files_at_output_names_are_taken_over_only_when_they_are_an_earlier_pyramid() {
    let stack = Stack::new("takeover", 13, 14);
    let out = stack.out();
    let shapes = level_shapes(W, H, 13, MIN_SIZE);
    let (w1, h1) = (shapes[1].width, shapes[1].height);
    std::fs::create_dir_all(out.join("1")).unwrap();
    std::fs::create_dir_all(out.join("2")).unwrap();
    // What CTHarvester's own thumbnails are: level slices at the same names.
    write_slice::<u16>(
        &out.join("1/000000.tif"),
        w1,
        h1,
        &vec![7; (w1 * h1) as usize],
    )
    .unwrap();
    std::fs::write(out.join("1/000001.tif"), b"").unwrap();
    std::fs::write(out.join("1/000002.tif"), [0u8; 300]).unwrap();
    let first = run(Via::Library, &stack, MIN_SIZE, false);
    assert_eq!((first.rebuilt, first.kept), (outputs(13, MIN_SIZE), 0));
    stack.assert_matches_reference(MIN_SIZE, &[]);

    // Not an earlier pyramid of this stack: another sample type, another shape.
    std::fs::remove_file(out.join(MANIFEST_FILE)).unwrap();
    write_slice::<u8>(
        &out.join("1/000003.tif"),
        w1,
        h1,
        &vec![7; (w1 * h1) as usize],
    )
    .unwrap();
    write_slice::<u16>(
        &out.join("2/000000.tif"),
        w1,
        h1,
        &vec![7; (w1 * h1) as usize],
    )
    .unwrap();
    let before = snapshot(&out);
    for via in VIAS {
        let message = refused(via, &stack, MIN_SIZE, true);
        assert!(
            message.contains(
                "2 files are at output names of the pyramid (1/000003.tif, 2/000000.tif)"
            ) && message.contains("nor are they an earlier pyramid of this stack"),
            "{via:?}: {message}"
        );
        assert_eq!(snapshot(&out), before, "{via:?}");
    }
    // A slab refuses the foreign files among its own outputs only.
    let plan = slab_plan(&stack);
    let err = plan
        .run_slab(0..8, &mut |_, _| {}, &CancelFlag::new())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State, "{err}");
    assert!(err.to_string().contains("1/000003.tif"), "{err}");
    assert_eq!(snapshot(&out), before);
    plan.run_slab(8..13, &mut |_, _| {}, &CancelFlag::new())
        .unwrap();
    std::fs::remove_file(out.join("1/000003.tif")).unwrap();
    std::fs::remove_file(out.join("2/000000.tif")).unwrap();
    plan.run_slab(0..8, &mut |_, _| {}, &CancelFlag::new())
        .unwrap();
    plan.finish_slabs(&CancelFlag::new()).unwrap();
    stack.assert_matches_reference(MIN_SIZE, &[]);
}

/// Writes `bytes` as the manifest.
fn damage_manifest(out: &Path, bytes: &[u8]) {
    std::fs::write(out.join(MANIFEST_FILE), bytes).unwrap();
}

/// A manifest file that is not ctstack's (not JSON, not an object, no
/// `"format": "ctstack-pyramid"`) proves nothing and is not ctstack's to
/// replace: the run is refused, naming it and saying what to do, and nothing
/// changes; once it is moved away the outputs (earlier level slices of this
/// stack) are taken over.
#[test]
fn a_manifest_file_that_is_not_ctstacks_is_refused_and_kept() {
    for via in VIAS {
        let stack = Stack::new(&format!("foreign-manifest-{via:?}"), 13, 11);
        run(via, &stack, MIN_SIZE, false);
        let good = std::fs::read(stack.out().join(MANIFEST_FILE)).unwrap();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated", good[..good.len() / 2].to_vec()),
            ("empty", Vec::new()),
            ("garbage", (0..=255u8).cycle().take(5000).collect()),
            ("not an object", b"[1, 2, 3]".to_vec()),
            (
                "another tool's",
                br#"{"format": "mine", "version": 1}"#.to_vec(),
            ),
        ];
        for (what, bytes) in cases {
            damage_manifest(&stack.out(), &bytes);
            let before = snapshot(&stack.out());
            for force in [false, true] {
                let message = refused(via, &stack, MIN_SIZE, force);
                assert!(
                    message.contains(MANIFEST_FILE)
                        && message.contains("not a ctstack manifest")
                        && message.contains("move it away"),
                    "{via:?} {what}: {message}"
                );
                assert_eq!(snapshot(&stack.out()), before, "{via:?} {what}");
            }
        }
        std::fs::remove_file(stack.out().join(MANIFEST_FILE)).unwrap();
        let again = run(via, &stack, MIN_SIZE, false);
        assert_eq!((again.rebuilt, again.kept), (outputs(13, MIN_SIZE), 0));
        stack.assert_matches_reference(MIN_SIZE, &[]);
    }
}

/// A manifest of ctstack's own that this version cannot trust (another
/// version, damaged) vouches for nothing: treated as absent, with a warning,
/// and replaced.
#[test]
fn a_ctstack_manifest_it_cannot_trust_is_treated_as_absent() {
    let mut stack = Stack::new("corrupt-manifest", 13, 11);
    run(Via::Library, &stack, MIN_SIZE, false);
    let good = std::fs::read(stack.out().join(MANIFEST_FILE)).unwrap();
    let text = String::from_utf8(good.clone()).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "another version",
            text.replace("\"version\": 1", "\"version\": 99").into(),
        ),
        (
            "counts that lie",
            text.replacen("\"count\": 7", "\"count\": 18446744073709551615", 1)
                .into(),
        ),
    ];
    for (what, bytes) in cases {
        assert_ne!(bytes, good, "{what}: not damaged");
        damage_manifest(&stack.out(), &bytes);
        let again = run(Via::Library, &stack, MIN_SIZE, false);
        assert_eq!(
            (again.rebuilt, again.kept, again.removed),
            (outputs(13, MIN_SIZE), 0, 0),
            "{what}"
        );
        assert!(
            again
                .warnings
                .iter()
                .any(|w| w.contains("treated as absent")),
            "{what}: {:?}",
            again.warnings
        );
        stack.assert_matches_reference(MIN_SIZE, &[]);
        assert!(Pyramid::open(stack.out()).is_ok(), "{what}: rewritten");
    }
    // Untrusted, it removes nothing: shortened under a damaged manifest, the
    // outputs beyond the plan stay (and are reported).
    damage_manifest(
        &stack.out(),
        text.replace("\"version\": 1", "\"version\": 99").as_bytes(),
    );
    stack.shorten(4);
    let again = run(Via::Library, &stack, MIN_SIZE, false);
    assert_eq!(again.removed, 0);
    assert!(stack.out().join("1/000006.tif").exists());
    assert!(stack.out().join("2/000003.tif").exists());
    stack.assert_matches_reference(MIN_SIZE, &["1/000005.tif", "1/000006.tif", "2/000003.tif"]);
}

/// What a `kill -9` while the manifest is written leaves (its writes go to a
/// temporary file renamed into place): the old manifest and a partial temporary
/// file. The next run is correct and removes the temporary file.
#[test]
fn a_run_killed_while_writing_the_manifest_is_harmless() {
    let mut stack = Stack::new("killed-manifest", 13, 12);
    run(Via::Library, &stack, MIN_SIZE, false);
    let good = std::fs::read(stack.out().join(MANIFEST_FILE)).unwrap();
    let temp = stack
        .out()
        .join(format!(".{MANIFEST_FILE}.4242.0.ctstack-tmp"));
    std::fs::write(&temp, &good[..good.len() / 3]).unwrap();
    stack.write_input(3);
    let again = run(Via::Library, &stack, MIN_SIZE, false);
    assert_eq!(again.rebuilt, dependants(3, 13, MIN_SIZE).len());
    assert!(!temp.exists(), "the temporary file stays");
    stack.assert_matches_reference(MIN_SIZE, &[]);
}

/// `kill -9` of `ctstack pyramid` at many points of a run (before, while and
/// after the manifest is written), each followed by a full run: always the
/// reference pyramid, no temporary or lock file.
#[cfg(unix)]
#[test]
fn kill_9_at_any_point_then_a_rerun_is_correct() {
    let mut stack = Stack::new("kill-loop", 13, 13);
    for round in 0..12u64 {
        stack.write_input((round as usize * 5) % 13);
        let mut child = Command::new(BIN)
            .arg("pyramid")
            .arg(stack.input())
            .arg("--out")
            .arg(stack.out())
            .args(["--min-size", &MIN_SIZE.to_string(), "--quiet"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(round * 700));
        let _ = child.kill();
        child.wait().unwrap();
        run(Via::Cli, &stack, MIN_SIZE, false);
        stack.assert_matches_reference(MIN_SIZE, &[]);
    }
}

#[test]
fn two_concurrent_runs_are_both_correct_and_leave_no_lock_file() {
    let stack = Stack::new("concurrent", 19, 14);
    // Two processes at once, started from two threads.
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (input, out) = (stack.input(), stack.out());
            std::thread::spawn(move || {
                Command::new(BIN)
                    .arg("pyramid")
                    .arg(input)
                    .arg("--out")
                    .arg(out)
                    .args(["--min-size", &MIN_SIZE.to_string()])
                    .output()
                    .unwrap()
            })
        })
        .collect();
    let rebuilt: usize = handles
        .into_iter()
        .map(|h| cli_counts(&h.join().unwrap()).rebuilt)
        .sum();
    // They took turns: the second kept what the first wrote.
    assert_eq!(rebuilt, outputs(19, MIN_SIZE));
    stack.assert_matches_reference(MIN_SIZE, &[]);
}

#[test]
fn the_lock_leaves_nothing_when_a_run_is_done_fails_or_is_cancelled() {
    let mut stack = Stack::new("lock", 13, 15);
    let (input, out) = (stack.input(), stack.out());
    let plan = || {
        PyramidBuilder::from_dir(&input)
            .unwrap()
            .output_dir(&out)
            .min_size(MIN_SIZE)
            .plan()
            .unwrap()
    };
    // Cancelled after two outputs.
    let cancel = CancelFlag::new();
    let err = plan()
        .run(
            &mut |done, _| {
                if done == 2 {
                    cancel.cancel();
                }
            },
            &cancel,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_clean(&stack.out(), &[]);
    // Failed: an input vanished between plan and run.
    let doomed = plan();
    let moved = stack.dir.join("s005.tif");
    std::fs::rename(stack.input_path(5), &moved).unwrap();
    let err = doomed.run(&mut |_, _| {}, &CancelFlag::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert_clean(&stack.out(), &[]);
    std::fs::rename(&moved, stack.input_path(5)).unwrap();
    // Done, resuming what the cancelled run wrote.
    stack.write_input(0);
    let summary = plan().run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    assert!(summary.kept > 0, "{summary:?}");
    stack.assert_matches_reference(MIN_SIZE, &[]);
}

fn read_back<T: Sample + Into<u32>>(stack: &Stack, min_size: u32) {
    let pyramid = Pyramid::open(stack.out()).unwrap();
    let shapes = level_shapes(W, H, stack.vol.len(), min_size);
    assert_eq!(pyramid.levels().len(), shapes.len() - 1);
    let reference = stack.reference(min_size);
    for (level, shape) in pyramid.levels().iter().zip(&shapes[1..]) {
        assert_eq!(
            (level.width, level.height, level.count, level.sample_type),
            (shape.width, shape.height, shape.count, T::TYPE)
        );
        let volume: Vec<T> = pyramid.read_level(level.k).unwrap();
        let want: Vec<u32> = (0..level.count)
            .flat_map(|j| reference[&format!("{}/{j:06}.tif", level.k)].2.clone())
            .collect();
        let got: Vec<u32> = volume.into_iter().map(Into::into).collect();
        assert!(got == want, "level {} differs from the reference", level.k);
        let mut buffer = vec![T::default(); want.len()];
        pyramid.read_level_into(level.k, &mut buffer).unwrap();
        assert!(buffer.into_iter().map(Into::into).eq(want));
    }
}

#[test]
fn read_back_gives_the_reference_volumes() {
    let stack = Stack::new("read-back", 13, 16);
    run(Via::Library, &stack, MIN_SIZE, false);
    read_back::<u16>(&stack, MIN_SIZE);
    let pyramid = Pyramid::open(stack.out()).unwrap();
    // Wrong buffer length, wrong sample type, no such level.
    let len = pyramid.levels()[0].samples().unwrap();
    let mut short = vec![0u16; len - 1];
    assert_eq!(
        pyramid.read_level_into(1, &mut short).unwrap_err().kind(),
        ErrorKind::Mismatch
    );
    assert_eq!(
        pyramid.read_level::<u8>(1).unwrap_err().kind(),
        ErrorKind::Mismatch
    );
    assert_eq!(
        pyramid.read_level::<u16>(4).unwrap_err().kind(),
        ErrorKind::Usage
    );
    assert_eq!(
        pyramid.read_level::<u16>(0).unwrap_err().kind(),
        ErrorKind::Usage
    );
    // An output replaced behind ctstack's back is refused, not served.
    let victim = stack.out().join("2/000001.tif");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() - 2]).unwrap();
    let err = pyramid.read_level::<u16>(2).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State);
    assert_eq!(err.path(), Some(victim.as_path()));
    assert!(err.to_string().contains("build it again"), "{err}");
    // No manifest: no pyramid there, a state error naming the manifest.
    let err = Pyramid::open(stack.dir.join("nowhere")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State);
    assert!(err.to_string().contains(MANIFEST_FILE), "{err}");
}

#[test]
fn read_back_of_an_8_bit_pyramid() {
    let stack = Stack::with_depth("read-back-u8", 7, 17, true);
    run(Via::Library, &stack, MIN_SIZE, false);
    read_back::<u8>(&stack, MIN_SIZE);
}

#[test]
fn an_interrupted_build_cannot_be_read_back() {
    let stack = Stack::new("read-incomplete", 13, 18);
    let cancel = CancelFlag::new();
    let plan = PyramidBuilder::from_dir(stack.input())
        .unwrap()
        .output_dir(stack.out())
        .min_size(MIN_SIZE)
        .plan()
        .unwrap();
    let _ = plan.run(
        &mut |done, _| {
            if done == 3 {
                cancel.cancel()
            }
        },
        &cancel,
    );
    let err = Pyramid::open(stack.out()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State, "{err}");
    assert_eq!(err.path(), Some(stack.out().as_path()));
    assert!(err.to_string().contains("incomplete"), "{err}");
}

/// The bytes of every output file, by relative path.
fn output_bytes(out: &Path) -> BTreeMap<String, Vec<u8>> {
    tree(out)
        .into_iter()
        .map(|rel| {
            let bytes = std::fs::read(out.join(&rel)).unwrap();
            (rel, bytes)
        })
        .collect()
}

/// The plan of `stack` into its output folder, at MIN_SIZE.
fn slab_plan(stack: &Stack) -> ctstack::Plan {
    PyramidBuilder::from_dir(stack.input())
        .unwrap()
        .output_dir(stack.out())
        .min_size(MIN_SIZE)
        .plan()
        .unwrap()
}

/// Every file name directly in `dir` (not in level folders).
fn top_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Runs every slab of `size` inputs (in reverse order, the first one twice: a
/// retried task); returns the slabs' summed rebuilt count.
fn run_all_slabs(plan: &ctstack::Plan, size: usize) -> usize {
    let count = plan.inputs().len();
    let mut starts: Vec<usize> = (0..count).step_by(size).collect();
    starts.reverse();
    starts.push(0);
    starts
        .into_iter()
        .map(|start| {
            plan.run_slab(
                start..(start + size).min(count),
                &mut |_, _| {},
                &CancelFlag::new(),
            )
            .unwrap()
            .rebuilt
        })
        .sum()
}

#[test]
fn slabs_build_byte_identical_outputs() {
    for count in [19usize, 24, 13, 37] {
        let stack = Stack::new(&format!("slabs-{count}"), count, 19);
        let whole = stack.dir.join("whole");
        let whole_summary = PyramidBuilder::from_dir(stack.input())
            .unwrap()
            .output_dir(&whole)
            .min_size(MIN_SIZE)
            .plan()
            .unwrap()
            .run(&mut |_, _| {}, &CancelFlag::new())
            .unwrap();
        let want = output_bytes(&whole);
        let plan = PyramidBuilder::from_dir(stack.input())
            .unwrap()
            .output_dir(stack.out())
            .min_size(MIN_SIZE)
            .plan()
            .unwrap();
        let align = plan.slab_alignment();
        assert_eq!(align, 8);
        // Misaligned slabs are refused.
        for bad in [1..9, 0..3, 8..8, 0..count + 1] {
            let err = plan
                .run_slab(bad.clone(), &mut |_, _| {}, &CancelFlag::new())
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Usage, "{bad:?}");
        }
        for size in [align, 3 * align, 64] {
            std::fs::remove_dir_all(stack.out()).ok();
            let rebuilt = run_all_slabs(&plan, size);
            assert_eq!(
                rebuilt,
                outputs(count, MIN_SIZE),
                "the retry rebuilt nothing"
            );
            // Slabs write no manifest, only their records.
            let top = top_files(&stack.out());
            assert!(!top.contains(MANIFEST_FILE), "{top:?}");
            assert_eq!(top.len(), count.div_ceil(size), "{top:?}");
            let summary = plan.finish_slabs(&CancelFlag::new()).unwrap();
            assert_eq!(
                (summary.kept, summary.rebuilt, summary.removed),
                (
                    whole_summary.kept,
                    whole_summary.rebuilt,
                    whole_summary.removed
                )
            );
            assert_eq!(summary.levels, whole_summary.levels);
            // The first slab ran twice; the retry kept everything and read nothing.
            assert_eq!(summary.input_bytes, whole_summary.input_bytes);
            assert_eq!(
                output_bytes(&stack.out()),
                want,
                "{count} inputs, slabs of {size}"
            );
            assert_eq!(
                top_files(&stack.out()),
                BTreeSet::from([MANIFEST_FILE.to_string()])
            );
            stack.assert_matches_reference(MIN_SIZE, &[]);
            assert!(Pyramid::open(stack.out()).is_ok());
        }
        // The finished folder resumes as a whole run's: nothing to do.
        let again = plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
        assert_eq!((again.kept, again.rebuilt), (whole_summary.rebuilt, 0));
    }
}

#[test]
fn a_missing_slab_fails_finish_and_changes_nothing() {
    let stack = Stack::new("slabs-missing", 24, 5);
    let plan = slab_plan(&stack);
    for slab in [0..8, 16..24] {
        plan.run_slab(slab, &mut |_, _| {}, &CancelFlag::new())
            .unwrap();
    }
    let before = (top_files(&stack.out()), output_bytes(&stack.out()));
    let err = plan.finish_slabs(&CancelFlag::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State);
    assert!(err.to_string().contains("inputs 8..10"), "{err}");
    assert_eq!(
        (top_files(&stack.out()), output_bytes(&stack.out())),
        before
    );
    plan.run_slab(8..16, &mut |_, _| {}, &CancelFlag::new())
        .unwrap();
    plan.finish_slabs(&CancelFlag::new()).unwrap();
    stack.assert_matches_reference(MIN_SIZE, &[]);
}

/// After a finished slab build: deleted outputs, a replaced input and a shorter
/// stack are handled by slabs + finish exactly as by a whole run.
#[test]
fn slabs_resume_from_the_manifest_and_finish_removes_stale_outputs() {
    let mut stack = Stack::new("slabs-resume", 37, 11);
    let plan = slab_plan(&stack);
    run_all_slabs(&plan, 16);
    plan.finish_slabs(&CancelFlag::new()).unwrap();
    // Deleted outputs: only those are rebuilt.
    for rel in ["1/000003.tif", "2/000009.tif", "3/000004.tif"] {
        std::fs::remove_file(stack.out().join(rel)).unwrap();
    }
    let before = output_bytes(&stack.out());
    assert_eq!(run_all_slabs(&plan, 16), 3);
    let summary = plan.finish_slabs(&CancelFlag::new()).unwrap();
    assert_eq!(
        (summary.rebuilt, summary.kept),
        (3, outputs(37, MIN_SIZE) - 3)
    );
    let after = output_bytes(&stack.out());
    assert_eq!(after.len(), before.len() + 3);
    // A replaced input: its dependants at every level, nothing else.
    stack.write_input(20);
    run_all_slabs(&slab_plan(&stack), 16);
    let summary = slab_plan(&stack).finish_slabs(&CancelFlag::new()).unwrap();
    assert_eq!(summary.rebuilt, dependants(20, 37, MIN_SIZE).len());
    stack.assert_matches_reference(MIN_SIZE, &[]);
    // A shorter stack: finish removes the outputs of the plan no longer has.
    stack.shorten(6);
    let plan = slab_plan(&stack);
    run_all_slabs(&plan, 8);
    let summary = plan.finish_slabs(&CancelFlag::new()).unwrap();
    assert_eq!(
        summary.removed,
        outputs(37, MIN_SIZE) - outputs(31, MIN_SIZE)
    );
    stack.assert_matches_reference(MIN_SIZE, &[]);
    // A user's file in a level folder is never removed.
    std::fs::write(stack.out().join("1").join("notes.txt"), b"mine").unwrap();
    run_all_slabs(&plan, 8);
    let summary = plan.finish_slabs(&CancelFlag::new()).unwrap();
    assert!(stack.out().join("1").join("notes.txt").exists());
    assert!(
        summary.warnings.iter().any(|w| w.contains("left in place")),
        "{:?}",
        summary.warnings
    );
}

/// Slabs built at once by several threads on one folder (each its own run, as
/// distributed workers are), then the finishing step: the result is byte for
/// byte a single run's, with no temporary file and no slab record.
#[test]
fn concurrent_slabs_then_finish_give_the_whole_pyramid() {
    let count = 45;
    let stack = Stack::with_depth("slabs-concurrent", count, 20, true);
    let whole = stack.dir.join("whole");
    let builder = |out: &Path| {
        PyramidBuilder::from_dir(stack.input())
            .unwrap()
            .output_dir(out)
            .min_size(MIN_SIZE)
            .threads(1)
    };
    let single = builder(&whole)
        .plan()
        .unwrap()
        .run(&mut |_, _| {}, &CancelFlag::new())
        .unwrap();
    let plan = builder(&stack.out()).plan().unwrap();
    let align = plan.slab_alignment();
    let slabs: Vec<_> = (0..count)
        .step_by(align)
        .map(|start| start..(start + align).min(count))
        .collect();
    let rebuilt: usize = std::thread::scope(|scope| {
        let tasks: Vec<_> = slabs
            .iter()
            .map(|slab| {
                let plan = &plan;
                scope.spawn(move || {
                    plan.run_slab(slab.clone(), &mut |_, _| {}, &CancelFlag::new())
                        .unwrap()
                        .rebuilt
                })
            })
            .collect();
        tasks.into_iter().map(|t| t.join().unwrap()).sum()
    });
    assert_eq!(rebuilt, outputs(count, MIN_SIZE));
    let finish = plan.finish_slabs(&CancelFlag::new()).unwrap();
    assert_eq!(
        (finish.rebuilt, finish.kept, finish.input_bytes),
        (outputs(count, MIN_SIZE), 0, single.input_bytes),
    );
    assert_eq!(output_bytes(&stack.out()), output_bytes(&whole));
    stack.assert_matches_reference(MIN_SIZE, &[]);
    // force on one slab rebuilds that slab's outputs only.
    let forced_plan = builder(&stack.out()).force(true).plan().unwrap();
    let forced = forced_plan
        .run_slab(slabs[1].clone(), &mut |_, _| {}, &CancelFlag::new())
        .unwrap();
    let slab_outputs: usize = (1..level_shapes(W, H, count, MIN_SIZE).len())
        .map(|k| (slabs[1].end.div_ceil(1 << k)) - (slabs[1].start >> k))
        .sum();
    assert_eq!((forced.rebuilt, forced.kept), (slab_outputs, 0));
    // Finished without force: the other slabs' outputs are kept.
    let finish = plan.finish_slabs(&CancelFlag::new()).unwrap();
    assert_eq!(
        (finish.rebuilt, finish.kept),
        (slab_outputs, outputs(count, MIN_SIZE) - slab_outputs)
    );
    let again = plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    assert_eq!(again.rebuilt, 0);
    assert_eq!(output_bytes(&stack.out()), output_bytes(&whole));
}

/// A slab task checks only its own slices' headers (and the first one's): a
/// slice of another slab that does not match fails that slab and the finish
/// (which checks the whole stack), not this one.
#[test]
fn a_slab_task_checks_only_its_own_slices() {
    let stack = Stack::new("slabs-own-headers", 24, 9);
    let plan = slab_plan(&stack);
    // Buffered: the plan keeps the headers it parsed, by input index.
    let builder = PyramidBuilder::from_dir(stack.input())
        .unwrap()
        .output_dir(stack.out())
        .min_size(MIN_SIZE)
        .read_mode(ctstack::ReadMode::Buffered);
    for start in [16, 0, 8] {
        let summary = builder
            .run_slab(start..start + 8, &mut |_, _| {}, &CancelFlag::new())
            .unwrap();
        assert_eq!(summary.levels, plan.levels());
    }
    plan.finish_slabs(&CancelFlag::new()).unwrap();
    stack.assert_matches_reference(MIN_SIZE, &[]);
    write_slice::<u16>(
        &stack.input_path(20),
        W / 2,
        H,
        &vec![7; (W / 2 * H) as usize],
    )
    .unwrap();
    let err = builder
        .run_slab(16..24, &mut |_, _| {}, &CancelFlag::new())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Mismatch, "{err}");
    builder
        .run_slab(0..8, &mut |_, _| {}, &CancelFlag::new())
        .unwrap();
    assert_eq!(builder.plan().unwrap_err().kind(), ErrorKind::Mismatch);
    // Misaligned or out-of-range slabs are still refused as usage errors.
    for bad in [3..8, 0..25, 30..40] {
        let err = builder
            .run_slab(bad.clone(), &mut |_, _| {}, &CancelFlag::new())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage, "{bad:?}");
    }
}
