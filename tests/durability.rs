//! What ctstack removes, and what it makes durable before it records it (issue 26,
//! items 0 and 5).
//!
//! Removals: a folder holding the input and a user's files (one named like an
//! output, one like a temporary file, one like a slab record, one like the lock
//! file) loses nothing, whatever the output folder (the input folder itself, its
//! default `.thumbnail`, its parent) and the flags (`--force` included), through
//! every removal site: stale outputs, temporary-file sweeps, slab records, the
//! lock file, a crop's temporaries. Inputs inside a level folder of the output
//! folder are refused.
//!
//! Durability: `ctstack pyramid`, a slab build and `ctstack crop` run under
//! `strace`; for every output the manifest (or slab record) lists, its data
//! sync and a sync of its folder come after it is renamed into place and before
//! the record's rename. Needs `strace` (Debian package `strace`): skipped with a
//! message when missing, unless `CTSTACK_REQUIRE_EXTERNAL=1` (set by .ci/run),
//! which fails it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::pyramid::temp_dir;
use ctstack::{CancelFlag, MANIFEST_FILE, Plan, PyramidBuilder, write_slice};

const BIN: &str = env!("CARGO_BIN_EXE_ctstack");

/// 9 slices of 40x30: with `--min-size 8`, levels of 5, 3 and 2 slices.
const COUNT: usize = 9;
const W: u32 = 40;
const H: u32 = 30;
const MIN_SIZE: &str = "8";

/// Writes the stack `scan_0000.tif ..` into `dir`.
fn write_stack(dir: &Path, count: usize, seed: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = common::Rng::new(seed);
    for i in 0..count {
        let v: Vec<u16> = (0..W * H).map(|_| rng.below(65536) as u16).collect();
        write_slice(&dir.join(format!("scan_{i:04}.tif")), W, H, &v).unwrap();
    }
}

/// A user's files, each named to tempt a removal: (name, bytes).
const USER_FILES: &[(&str, &[u8])] = &[
    ("analysis.csv", b"slice,mean\n0,1\n"),
    ("000003.tif", b"the user's, named like an output"),
    (".notes.ctstack-tmp", b"named like a temporary file"),
    (
        ".analysis.csv.12.3.ctstack-tmp",
        b"a temporary name of a file ctstack never writes",
    ),
    (
        ".000001.tif.x.3.ctstack-tmp",
        b"almost a temporary name of an output",
    ),
    (".ctstack-slab-notes.json", b"named like a slab record"),
    (
        ".ctstack-slab-000000016-000000024.json",
        b"a slab record's name (of no slab of these stacks), not a record",
    ),
    (".ctstack.lock", b"the user's own lock file"),
];

/// In a level folder, a name like an output but beyond the plan: a planned
/// output's name in a level folder is ctstack's (rebuilt without a manifest,
/// the way a CTHarvester thumbnail folder is taken over).
const USER_FILE_IN_LEVEL: (&str, &[u8]) = ("000099.tif", b"the user's, beyond the plan");

/// The user's files for folder `dir` (`in_level`: a level folder).
fn user_files(in_level: bool) -> Vec<(&'static str, &'static [u8])> {
    USER_FILES
        .iter()
        .copied()
        .filter(|(name, _)| !in_level || *name != "000003.tif")
        .chain(in_level.then_some(USER_FILE_IN_LEVEL))
        .collect()
}

/// Puts the user's files into `dir`.
fn put_user_files(dir: &Path) {
    put_files(dir, false);
}

fn put_files(dir: &Path, in_level: bool) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in user_files(in_level) {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// Every file directly in `dir`, with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// Asserts the user's files in `dir` are all there, unchanged.
fn assert_user_files(dir: &Path, when: &str) {
    assert_files(dir, false, when);
}

fn assert_files(dir: &Path, in_level: bool, when: &str) {
    for (name, bytes) in user_files(in_level) {
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(now) => assert_eq!(&now[..], bytes, "{when}: {} changed", path.display()),
            Err(e) => panic!("{when}: {} is gone: {e}", path.display()),
        }
    }
}

fn pyramid(input: &Path, out: Option<&Path>, force: bool) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("pyramid")
        .arg(input)
        .args(["--min-size", MIN_SIZE, "-q"]);
    if let Some(out) = out {
        cmd.arg("--out").arg(out);
    }
    if force {
        cmd.arg("--force");
    }
    cmd.output().unwrap()
}

/// The plan of `input`'s pyramid in `out` (minimum size 8).
fn plan(input: &Path, out: &Path, force: bool) -> Plan {
    PyramidBuilder::from_dir(input)
        .unwrap()
        .output_dir(out)
        .min_size(8)
        .force(force)
        .plan()
        .unwrap()
}

/// Runs every slab task of `plan` in turn (as a Dask map would, in parallel).
fn run_every_slab(plan: &Plan, cancel: &CancelFlag) {
    let (count, align) = (plan.levels()[0].count, plan.slab_alignment());
    for start in (0..count).step_by(align) {
        let slab = start..(start + align).min(count);
        plan.run_slab(slab, &mut |_, _| {}, cancel).unwrap();
    }
}

fn assert_ok(output: &std::process::Output, when: &str) {
    assert!(
        output.status.success(),
        "{when}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Stale outputs, temporary-file sweeps, empty level folders and the lock file,
/// with the output folder equal to the input folder, inside it (the default)
/// and its parent, with and without `--force`, the stack unchanged, shortened
/// (stale outputs removed) and lengthened again: the user's files and the
/// inputs are never touched, while the removals still happen for what is
/// ctstack's (a stale output, a real temporary file of a killed run).
#[test]
fn a_pyramid_never_removes_the_users_files_or_the_inputs() {
    for placement in ["input", "default", "parent"] {
        let root = temp_dir(&format!("durability-removals-{placement}"));
        let input = root.join("scan");
        write_stack(&input, COUNT, 1);
        put_user_files(&input);
        let inputs = files(&input);
        let (out, out_arg) = match placement {
            "input" => (input.clone(), Some(input.clone())),
            "default" => (input.join(".thumbnail"), None),
            _ => (root.clone(), Some(root.clone())),
        };
        put_user_files(&out);
        put_files(&out.join("1"), true);
        let check = |when: &str| {
            for dir in [&input, &out] {
                assert_user_files(dir, &format!("{placement}, {when}"));
            }
            assert_files(&out.join("1"), true, &format!("{placement}, {when}"));
        };
        let stash = root.join("stash");
        std::fs::create_dir_all(&stash).unwrap();
        for (step, force) in [("first", false), ("again", false), ("forced", true)] {
            assert_ok(&pyramid(&input, out_arg.as_deref(), force), step);
            check(step);
            assert!(out.join("3/000001.tif").exists(), "{placement}: not built");
        }
        // A temporary file a killed run left: ours by its exact name, swept.
        let leftover = out.join("1").join(".000001.tif.4242.0.ctstack-tmp");
        std::fs::write(&leftover, b"partial").unwrap();
        // Shortened to 7 slices: level 1 has 4, so 000004.tif is stale.
        for i in [7, 8] {
            let name = format!("scan_{i:04}.tif");
            std::fs::rename(input.join(&name), stash.join(&name)).unwrap();
        }
        for (step, force) in [("shortened", false), ("shortened, forced", true)] {
            assert_ok(&pyramid(&input, out_arg.as_deref(), force), step);
            check(step);
            assert!(
                !out.join("1/000004.tif").exists(),
                "{placement}: stale kept"
            );
        }
        assert!(
            !leftover.exists(),
            "{placement}: a temporary file of ours kept"
        );
        for i in [7, 8] {
            let name = format!("scan_{i:04}.tif");
            std::fs::rename(stash.join(&name), input.join(&name)).unwrap();
        }
        assert_ok(&pyramid(&input, out_arg.as_deref(), false), "lengthened");
        check("lengthened");
        // The inputs and the user's files beside them, byte for byte; nothing else
        // appeared there but what ctstack writes (the manifest when out = input).
        let mut now = files(&input);
        now.remove(MANIFEST_FILE);
        assert_eq!(now, inputs, "{placement}: the input folder changed");
        std::fs::remove_dir_all(&root).unwrap();
    }
}

/// `ctstack pyramid OUT/1 --out OUT` (a level of an earlier pyramid as the
/// input): its outputs would replace the inputs and stale-output removal would
/// delete some. Refused, with and without `--force`, and nothing changes.
#[test]
fn inputs_inside_a_level_folder_of_the_output_are_refused() {
    let root = temp_dir("durability-inputs-in-level");
    let input = root.join("scan");
    write_stack(&input, COUNT, 2);
    let out = input.join(".thumbnail");
    assert_ok(&pyramid(&input, None, false), "first");
    let level1 = out.join("1");
    let before = files(&level1);
    assert_eq!(before.len(), 5);
    for force in [false, true] {
        let refused = pyramid(&level1, Some(&out), force);
        assert_eq!(refused.status.code(), Some(2), "force {force}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("level folder 1"), "{stderr}");
        assert_eq!(files(&level1), before, "force {force}: level 1 changed");
    }
    // Through the library, slabs included.
    let plan = plan(&level1, &out, false);
    let cancel = CancelFlag::new();
    for result in [
        plan.run(&mut |_, _| {}, &cancel).map(|_| ()),
        plan.run_slab(0..plan.levels()[0].count, &mut |_, _| {}, &cancel)
            .map(|_| ()),
        plan.finish_slabs(&cancel).map(|_| ()),
    ] {
        assert_eq!(result.unwrap_err().kind(), ctstack::ErrorKind::Usage);
    }
    assert_eq!(files(&level1), before);
    // A level folder that is a link to the inputs' folder (Unix only: creating a
    // symbolic link on Windows needs a privilege a user's account does not have).
    #[cfg(unix)]
    {
        let linked = root.join("linked");
        std::fs::create_dir_all(&linked).unwrap();
        std::os::unix::fs::symlink(&input, linked.join("1")).unwrap();
        let inputs = files(&input);
        let refused = pyramid(&input, Some(&linked), true);
        assert_eq!(refused.status.code(), Some(2));
        assert_eq!(files(&input), inputs, "the inputs' folder changed");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

/// Slab tasks and their finish in a folder holding the user's files: the slab
/// records ctstack wrote are removed, a file named like one is not.
#[test]
fn finishing_slabs_removes_only_ctstacks_records() {
    let root = temp_dir("durability-slab-removals");
    let input = root.join("scan");
    write_stack(&input, COUNT, 3);
    put_user_files(&input);
    for force in [false, true] {
        let plan = plan(&input, &input, force);
        let cancel = CancelFlag::new();
        run_every_slab(&plan, &cancel);
        let records = |dir: &Path| {
            files(dir)
                .into_keys()
                .filter(|n| n.starts_with(".ctstack-slab-0"))
                .count()
        };
        // Two slabs (0..8, 8..9), and the user's file named like a record.
        assert_eq!(records(&input), 3, "force {force}");
        let summary = plan.finish_slabs(&cancel).unwrap();
        assert_eq!(summary.rebuilt, 10, "force {force}");
        assert_user_files(&input, &format!("slabs, force {force}"));
        assert_eq!(
            records(&input),
            1,
            "force {force}: only the user's file is left"
        );
    }
    std::fs::remove_dir_all(&root).unwrap();
}

/// A crop written into its source folder (PNG, so no name is a source's),
/// twice: the user's files stay, a temporary file a killed crop left is
/// removed, one only named like it is not.
#[test]
fn a_crop_into_its_source_folder_never_removes_the_users_files() {
    let root = temp_dir("durability-crop-removals");
    let input = root.join("scan");
    write_stack(&input, COUNT, 4);
    // 16-bit PNG holds the samples; the outputs are scan_0002.png ...
    put_user_files(&input);
    let theirs = input.join(".scan_0003.png.x.y.ctstack-tmp");
    std::fs::write(&theirs, b"named like a crop's temporary").unwrap();
    let leftover = input.join(".scan_0003.png.4242.7.ctstack-tmp");
    for step in ["first", "again"] {
        std::fs::write(&leftover, b"partial").unwrap();
        let output = Command::new(BIN)
            .arg("crop")
            .arg(&input)
            .args([
                "--box",
                "2:30,3:20",
                "--slices",
                "2:6",
                "--format",
                "png",
                "-q",
            ])
            .arg("--out")
            .arg(&input)
            .output()
            .unwrap();
        assert_ok(&output, step);
        assert_user_files(&input, step);
        assert!(theirs.exists(), "{step}: the user's file was removed");
        assert!(!leftover.exists(), "{step}: a killed crop's temporary kept");
        assert!(input.join("scan_0005.png").exists());
    }
    std::fs::remove_dir_all(&root).unwrap();
}

// ---------------------------------------------------------------------------
// Durability, checked with strace (Linux).

#[cfg(target_os = "linux")]
mod strace {
    use super::*;
    use ctstack::CROP_RECORD_FILE;
    use std::path::PathBuf;

    fn require() -> bool {
        std::env::var("CTSTACK_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
    }

    /// Whether strace runs; if not, skip (or fail under CTSTACK_REQUIRE_EXTERNAL=1).
    fn have_strace() -> bool {
        let ok = Command::new("strace")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            assert!(
                !require(),
                "CTSTACK_REQUIRE_EXTERNAL=1 but strace is missing (Debian: apt-get install strace)"
            );
            eprintln!("skipped: strace is not installed (Debian: apt-get install strace)");
        }
        ok
    }

    /// One traced system call: where its line starts and ends in the trace (a call
    /// interrupted by another thread's is split over two lines).
    #[derive(Debug, Clone)]
    struct Call {
        name: String,
        /// The quoted strings among the arguments (paths).
        paths: Vec<String>,
        /// The first argument (a descriptor, for the syncs).
        first: String,
        ret: i64,
        start: usize,
        end: usize,
    }

    /// Runs `cmd` under `strace -f` for the calls that matter and returns them.
    fn trace(
        program: &Path,
        args: &[&std::ffi::OsStr],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Vec<Call> {
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "-qq", "-s", "4096", "-e"])
            .arg("trace=fsync,fdatasync,rename,renameat,renameat2,openat")
            .arg("-o")
            .arg(log)
            .arg("--")
            .arg(program)
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let output = cmd.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        parse(&std::fs::read_to_string(log).unwrap())
    }

    /// The calls of an `strace -f` log.
    fn parse(log: &str) -> Vec<Call> {
        let mut calls = Vec::new();
        let mut pending: BTreeMap<String, (String, usize)> = BTreeMap::new();
        for (i, line) in log.lines().enumerate() {
            let Some((pid, rest)) = line.split_once(' ') else {
                continue;
            };
            let rest = rest.trim_start();
            let (text, start) = if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
                pending.insert(pid.to_string(), (head.to_string(), i));
                continue;
            } else if let Some(tail) = rest.strip_prefix("<... ") {
                let Some((_, tail)) = tail.split_once(" resumed>") else {
                    continue;
                };
                let Some((head, start)) = pending.remove(pid) else {
                    continue;
                };
                (format!("{head}{tail}"), start)
            } else {
                (rest.to_string(), i)
            };
            let Some((name, args)) = text.split_once('(') else {
                continue;
            };
            // `name(args)` padded with spaces, then ` = ret ...`.
            let Some((args, ret)) = args.rsplit_once(" = ") else {
                continue;
            };
            let Some(args) = args.trim_end().strip_suffix(')') else {
                continue;
            };
            let ret = ret
                .split_whitespace()
                .next()
                .and_then(|r| r.parse().ok())
                .unwrap_or(-1);
            calls.push(Call {
                name: name.to_string(),
                paths: args
                    .split('"')
                    .skip(1)
                    .step_by(2)
                    .map(String::from)
                    .collect(),
                first: args.split(',').next().unwrap_or("").trim().to_string(),
                ret,
                start,
                end: i,
            });
        }
        calls
    }

    /// The calls, with each sync's file resolved from the `openat` that returned
    /// its descriptor (the latest before it: a descriptor is not reused while open).
    struct Trace {
        calls: Vec<Call>,
    }

    impl Trace {
        fn new(calls: Vec<Call>) -> Trace {
            Trace { calls }
        }

        /// Syncs (fsync, fdatasync) that succeeded, with the path synced.
        fn syncs(&self) -> Vec<(String, &Call)> {
            let mut out = Vec::new();
            for call in &self.calls {
                if !matches!(call.name.as_str(), "fsync" | "fdatasync") || call.ret != 0 {
                    continue;
                }
                let fd: i64 = call.first.parse().unwrap();
                let opened = self
                    .calls
                    .iter()
                    .filter(|c| c.name == "openat" && c.ret == fd && c.end < call.start)
                    .max_by_key(|c| c.end)
                    .unwrap_or_else(|| panic!("no openat gave fd {fd}: {call:?}"));
                out.push((opened.paths.last().unwrap().clone(), call));
            }
            out
        }

        /// Renames that succeeded, as (from, to, call).
        fn renames(&self) -> Vec<(&str, &str, &Call)> {
            self.calls
                .iter()
                .filter(|c| c.name.starts_with("rename") && c.ret == 0 && c.paths.len() == 2)
                .map(|c| (c.paths[0].as_str(), c.paths[1].as_str(), c))
                .collect()
        }

        /// The last rename onto `to` that ended before line `before`.
        fn last_rename_onto(&self, to: &Path, before: usize) -> Option<(&str, &Call)> {
            let to = to.to_str().unwrap();
            self.renames()
                .into_iter()
                .filter(|(_, t, c)| *t == to && c.end < before)
                .max_by_key(|(_, _, c)| c.end)
                .map(|(from, _, c)| (from, c))
        }

        /// Asserts that `file` was made durable between its rename into place and
        /// line `before` (the rename of the record that lists it): its data synced
        /// (through its temporary name before the rename, or its name after it),
        /// and its folder synced after the rename.
        fn assert_durable_before(&self, file: &Path, before: usize, what: &str) {
            let (temp, renamed) = self
                .last_rename_onto(file, before)
                .unwrap_or_else(|| panic!("{what}: {} never renamed into place", file.display()));
            let syncs = self.syncs();
            let name = file.to_str().unwrap();
            let data = syncs.iter().any(|(path, s)| {
                s.end < before
                    && ((path == temp && s.end < renamed.start)
                        || (path == name && s.start > renamed.end))
            });
            assert!(
                data,
                "{what}: the data of {} is not synced before its record (line {before})",
                file.display()
            );
            let folder = file.parent().unwrap().to_str().unwrap();
            let dir = syncs
                .iter()
                .any(|(path, s)| path == folder && s.start > renamed.end && s.end < before);
            assert!(
                dir,
                "{what}: the folder of {} is not synced between its rename (line {}) and its record \
                 (line {before})",
                file.display(),
                renamed.end
            );
        }

        /// Asserts the record at `path` itself was written durably by its last
        /// rename: data synced before, folder synced after. Returns that rename's
        /// first line.
        fn assert_record_durable(&self, path: &Path, what: &str) -> usize {
            let (temp, renamed) = self
                .last_rename_onto(path, usize::MAX)
                .unwrap_or_else(|| panic!("{what}: {} never written", path.display()));
            let syncs = self.syncs();
            assert!(
                syncs
                    .iter()
                    .any(|(p, s)| p == temp && s.end < renamed.start),
                "{what}: {} renamed before its data was synced",
                path.display()
            );
            let folder = path.parent().unwrap().to_str().unwrap();
            assert!(
                syncs
                    .iter()
                    .any(|(p, s)| p == folder && s.start > renamed.end),
                "{what}: {}'s folder not synced after its rename",
                path.display()
            );
            renamed.start
        }
    }

    /// Every output the manifest in `out` lists.
    fn listed_outputs(out: &Path) -> Vec<PathBuf> {
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(MANIFEST_FILE)).unwrap()).unwrap();
        let mut listed = Vec::new();
        for level in manifest["levels"].as_array().unwrap() {
            let k = level["k"].as_u64().unwrap();
            for (j, file) in level["files"].as_array().unwrap().iter().enumerate() {
                if !file.is_null() {
                    listed.push(out.join(k.to_string()).join(format!("{j:06}.tif")));
                }
            }
        }
        listed
    }

    /// `ctstack pyramid` (a first build, a resume after one input changed, a forced
    /// rebuild): every output the manifest lists is synced, and its folder, after
    /// its rename and before the manifest's rename; the manifest itself is synced
    /// before its rename and its folder after.
    #[test]
    fn the_manifest_is_renamed_only_after_every_output_it_lists_is_durable() {
        if !have_strace() {
            return;
        }
        let root = temp_dir("durability-strace-pyramid");
        let input = root.join("scan");
        write_stack(&input, COUNT, 5);
        let out = root.join("out");
        let log = root.join("trace.log");
        let run = |force: bool| {
            let mut args: Vec<&std::ffi::OsStr> = vec![
                "pyramid".as_ref(),
                input.as_os_str(),
                "--out".as_ref(),
                out.as_os_str(),
                "--min-size".as_ref(),
                MIN_SIZE.as_ref(),
                "-q".as_ref(),
            ];
            if force {
                args.push("--force".as_ref());
            }
            Trace::new(trace(Path::new(BIN), &args, &[], &log))
        };
        for step in ["first build", "one input changed", "forced"] {
            if step == "one input changed" {
                // Rewritten with other pixels: its dependants are rebuilt.
                let v: Vec<u16> = (0..W * H).map(|i| i as u16).collect();
                write_slice(&input.join("scan_0004.tif"), W, H, &v).unwrap();
            }
            let trace = run(step == "forced");
            let manifest = trace.assert_record_durable(&out.join(MANIFEST_FILE), step);
            let listed = listed_outputs(&out);
            assert_eq!(listed.len(), 10, "{step}");
            let mut rebuilt = 0;
            for file in &listed {
                // Kept outputs were made durable by an earlier run.
                if trace.last_rename_onto(file, manifest).is_some() {
                    trace.assert_durable_before(file, manifest, step);
                    rebuilt += 1;
                }
            }
            // Scan 4 feeds level-1 slice 2, level-2 slice 1 and level-3 slice 0.
            let expected = if step == "one input changed" { 3 } else { 10 };
            assert_eq!(rebuilt, expected, "{step}");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// Slab tasks and their finish (run by this test's own binary under strace):
    /// each output is synced, with its folder, before the next slab record is
    /// renamed into place (the record that lists it), and before the manifest.
    #[test]
    fn slab_records_and_the_manifest_come_after_their_outputs_are_durable() {
        const CHILD: &str = "CTSTACK_DURABILITY_SLAB_CHILD";
        if let Ok(dir) = std::env::var(CHILD) {
            let root = PathBuf::from(dir);
            let plan = super::plan(&root.join("scan"), &root.join("out"), false);
            let cancel = CancelFlag::new();
            super::run_every_slab(&plan, &cancel);
            plan.finish_slabs(&cancel).unwrap();
            return;
        }
        if !have_strace() {
            return;
        }
        let root = temp_dir("durability-strace-slabs");
        write_stack(&root.join("scan"), COUNT, 6);
        let exe = std::env::current_exe().unwrap();
        let log = root.join("trace.log");
        let args: Vec<&std::ffi::OsStr> = vec![
            "--exact".as_ref(),
            "strace::slab_records_and_the_manifest_come_after_their_outputs_are_durable".as_ref(),
            "--test-threads=1".as_ref(),
        ];
        let trace = Trace::new(trace(&exe, &args, &[(CHILD, root.to_str().unwrap())], &log));
        let out = root.join("out");
        let manifest = trace.assert_record_durable(&out.join(MANIFEST_FILE), "finish");
        let listed = listed_outputs(&out);
        assert_eq!(listed.len(), 10);
        let record_renames: Vec<usize> = trace
            .renames()
            .into_iter()
            .filter(|(_, to, _)| {
                Path::new(to)
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".ctstack-slab-"))
            })
            .map(|(_, _, c)| c.start)
            .collect();
        assert!(record_renames.len() >= 4, "{record_renames:?}");
        for file in &listed {
            let (_, renamed) = trace.last_rename_onto(file, manifest).unwrap();
            // The first record saved after the output was written lists it.
            let record = record_renames
                .iter()
                .copied()
                .find(|&r| r > renamed.end)
                .unwrap_or_else(|| panic!("no slab record saved after {}", file.display()));
            trace.assert_durable_before(file, record, "slab record");
            trace.assert_durable_before(file, manifest, "finish");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// `ctstack crop`: each output's data is synced before its rename, and the
    /// output folder after the last rename, all before the crop's record that
    /// vouches for them is written (itself synced with its folder).
    #[test]
    fn a_crop_syncs_each_output_and_its_folder() {
        if !have_strace() {
            return;
        }
        let root = temp_dir("durability-strace-crop");
        let input = root.join("scan");
        write_stack(&input, COUNT, 7);
        let out = root.join("crop");
        let log = root.join("trace.log");
        let args: Vec<&std::ffi::OsStr> = vec![
            "crop".as_ref(),
            input.as_os_str(),
            "--box".as_ref(),
            "2:30,3:20".as_ref(),
            "--slices".as_ref(),
            "1:8".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
            "-q".as_ref(),
        ];
        let trace = Trace::new(trace(Path::new(BIN), &args, &[], &log));
        let mut written = files(&out);
        assert!(written.remove(CROP_RECORD_FILE).is_some());
        assert_eq!(written.len(), 7);
        // The crop's record, which says these files are ctstack's, comes last.
        let end = trace.assert_record_durable(&out.join(CROP_RECORD_FILE), "crop");
        for name in written.keys() {
            let file = out.join(name);
            trace.assert_durable_before(&file, end, "crop");
            let (temp, renamed) = trace.last_rename_onto(&file, end).unwrap();
            assert!(
                trace
                    .syncs()
                    .iter()
                    .any(|(p, s)| p == temp && s.end < renamed.start),
                "{name}: renamed before its data was synced"
            );
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}
