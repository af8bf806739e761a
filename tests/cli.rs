//! The `ctstack` command as a user meets it: help and version, `--opt=value`,
//! the exit status of every kind of bad command line, a failed run, Ctrl-C in the
//! middle of a run, and `info` on a folder and on a file that is not a TIFF.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ctstack::{Slice, write_slice};

const BIN: &str = env!("CARGO_BIN_EXE_ctstack");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ctstack-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ctstack(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("cannot run ctstack")
}

/// The stdout of a run that must succeed with nothing on stderr.
fn ctstack_ok(args: &[&str]) -> String {
    let out = ctstack(args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    assert!(stderr.is_empty(), "{args:?}: {stderr}");
    text(&out.stdout)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn stack_dir() -> String {
    common::fixtures().join("stack").display().to_string()
}

#[test]
fn help_is_there_for_every_command() {
    // The top-level list says what `info` reads: slices, folders, pyramids, stores.
    let top = ctstack_ok(&["--help"]);
    let info = top
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("info"))
        .take(2);
    let info = info.collect::<Vec<_>>().join(" ");
    assert!(
        info.contains("pyramid") && info.contains("OME-Zarr store"),
        "{top}"
    );
    for args in [
        &["--help"][..],
        &["-h"],
        &["pyramid", "--help"],
        &["pyramid", "-h"],
        &["info", "--help"],
        &["help", "pyramid"],
    ] {
        let help = ctstack_ok(args);
        assert!(help.contains("Usage: ctstack"), "{args:?}: {help}");
    }
    let pyramid = text(&ctstack(&["pyramid", "--help"]).stdout);
    for option in [
        "--out",
        "--min-size",
        "--threads",
        "--strict",
        "--quiet",
        "--mmap",
        "--no-mmap",
    ] {
        assert!(
            pyramid.contains(option),
            "pyramid --help lacks {option}:\n{pyramid}"
        );
    }
    assert!(pyramid.contains("[default: 500]"), "{pyramid}");
    // What a map risks is said per OS: SIGBUS is Unix's; on Windows a dropped share.
    assert_eq!(pyramid.contains("SIGBUS"), cfg!(unix), "{pyramid}");
    assert_eq!(
        pyramid.contains("network shares"),
        cfg!(windows),
        "{pyramid}"
    );
    let info = text(&ctstack(&["info", "--help"]).stdout);
    assert!(
        info.contains("Usage: ctstack info [OPTIONS] <FILE|DIR>..."),
        "{info}"
    );
    assert!(
        !info.contains("--min-size"),
        "info --help shows pyramid's options:\n{info}"
    );
}

#[test]
fn version_is_printed() {
    let version = env!("CARGO_PKG_VERSION");
    for (args, want) in [
        (&["--version"][..], format!("ctstack {version}\n")),
        (&["-V"], format!("ctstack {version}\n")),
        // clap's convention for a subcommand's version.
        (
            &["pyramid", "--version"],
            format!("ctstack-pyramid {version}\n"),
        ),
    ] {
        assert_eq!(ctstack_ok(args), want, "{args:?}");
    }
}

/// Every file under `out`, by relative path, with its bytes.
fn tree(out: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![out.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                // `/` between components on every OS (Windows' paths use `\`).
                let rel = path.strip_prefix(out).unwrap().components();
                let rel: Vec<_> = rel.map(|c| c.as_os_str().to_string_lossy()).collect();
                let rel = rel.join("/");
                files.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn equals_forms_mean_the_same_as_separate_values() {
    let dir = scratch("equals");
    let (a, b) = (dir.join("a"), dir.join("b"));
    let a_arg = format!("--out={}", a.display());
    let stack = stack_dir();
    let joined = ctstack(&[
        "pyramid",
        &stack,
        &a_arg,
        "--min-size=80",
        "--threads=1",
        "--mmap=never",
        "--quiet",
    ]);
    assert_eq!(joined.status.code(), Some(0), "{}", text(&joined.stderr));
    let b_arg = b.display().to_string();
    let split = ctstack(&[
        "pyramid",
        "--quiet",
        "--min-size",
        "80",
        "--threads",
        "1",
        "--mmap",
        "never",
        "-o",
        &b_arg,
        &stack,
    ]);
    assert_eq!(split.status.code(), Some(0), "{}", text(&split.stderr));
    let (ta, tb) = (tree(&a), tree(&b));
    // 21 slices of 301x203 to 80 px: level 1 has 11 slices, level 2 has 6.
    let levels = |t: &BTreeMap<String, Vec<u8>>, k: &str| {
        t.keys().filter(|p| p.starts_with(&format!("{k}/"))).count()
    };
    assert_eq!(
        (levels(&ta, "1"), levels(&ta, "2")),
        (11, 6),
        "{:?}",
        ta.keys()
    );
    for (rel, bytes) in &ta {
        if rel.ends_with(".tif") {
            assert_eq!(
                Some(bytes),
                tb.get(rel),
                "{rel} differs between the two forms"
            );
        }
    }
    // And the same as the committed numpy reference.
    let reference = common::fixtures().join("stack_reference");
    for rel in ta.keys().filter(|r| r.ends_with(".tif")) {
        let ours = Slice::open(a.join(rel)).unwrap();
        let theirs = Slice::open(reference.join(rel)).unwrap();
        assert_eq!(
            ours.contiguous::<u16>().unwrap(),
            theirs.contiguous::<u16>().unwrap(),
            "{rel}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_bad_command_line_exits_2_with_a_short_message() {
    let dir = scratch("usage");
    let stack = stack_dir();
    let out = dir.join("out").display().to_string();
    let s = stack.as_str();
    let cases: &[(&[&str], &str)] = &[
        (&[], "Usage"),
        (&["frobnicate"], "frobnicate"),
        (&["pyramid"], "INPUT"),
        (&["pyramid", s, "extra"], "extra"),
        (&["pyramid", s, "--bogus"], "--bogus"),
        (&["pyramid", s, "--min-size", "0"], "--min-size"),
        (&["pyramid", s, "--min-size=0"], "at least 1"),
        (&["pyramid", s, "--min-size", "-1"], "--min-size"),
        (&["pyramid", s, "--min-size", "abc"], "--min-size"),
        (&["pyramid", s, "--min-size", "99999999999"], "--min-size"),
        (&["pyramid", s, "--min-size"], "--min-size"),
        (&["pyramid", s, "--threads", "0"], "--threads"),
        (&["pyramid", s, "--threads=2.5"], "--threads"),
        (&["pyramid", s, "--mmap", "sometimes"], "--mmap"),
        (&["pyramid", s, "--mmap=never", "--no-mmap"], "--no-mmap"),
        (&["pyramid", s, "--out"], "--out"),
        (&["info"], "FILE|DIR"),
        (&["info", "--min-size", "80", s], "--min-size"),
        // Understood, but the library blames the argument.
        (&["pyramid", s, "--out", &out, "--min-size=0"], "at least 1"),
    ];
    for (args, mention) in cases {
        let run = ctstack(args);
        let stderr = text(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(mention),
            "{args:?} does not mention {mention}: {stderr}"
        );
        if !args.is_empty() {
            // Short: the problem and a pointer to --help, not the whole help text.
            assert!(stderr.contains("--help"), "{args:?}: {stderr}");
            assert!(stderr.lines().count() <= 8, "{args:?}: too long:\n{stderr}");
            assert!(!stderr.contains("Possible values"), "{args:?}: {stderr}");
        }
        assert!(run.stdout.is_empty(), "{args:?}: {}", text(&run.stdout));
    }
    assert!(
        !Path::new(&out).exists(),
        "a refused command line wrote output"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A right command line on a folder in the wrong state (no slices in it) exits 3
/// with the error, and no pointer to --help: the fix is in the folder.
#[test]
fn a_folder_without_slices_exits_3_and_does_not_blame_the_command_line() {
    let dir = scratch("state");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let empty = empty.display().to_string();
    let out = dir.join("out").display().to_string();
    for args in [
        &["pyramid", &empty, "--out", &out][..],
        &["info", &empty][..],
    ] {
        let run = ctstack(args);
        let stderr = text(&run.stderr);
        assert_eq!(run.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("ctstack: error: ") && stderr.contains(&empty),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("no slice files"), "{args:?}: {stderr}");
        assert!(!stderr.contains("--help"), "{args:?}: {stderr}");
    }
    assert!(!Path::new(&out).exists(), "a refused run wrote output");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A slice beyond the limits (a decompression bomb) fails the run: exit 1, and the
/// message says it is a limit, naming the file.
#[test]
fn a_slice_beyond_the_limits_exits_1_and_says_so() {
    let dir = scratch("limits");
    let stack = dir.join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    std::fs::copy(
        common::fixtures().join("malformed/bomb_deflate_60000x60000.tif"),
        stack.join("bomb_0001.tif"),
    )
    .unwrap();
    let run = ctstack(&["pyramid", &stack.display().to_string()]);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("bomb_0001.tif: limit exceeded"), "{stderr}");
    assert!(!stderr.contains("--help"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The summary counts levels in English, and a run with nothing to halve says why
/// and which --min-size would give levels.
#[test]
fn the_summary_says_level_levels_and_why_there_are_none() {
    let dir = scratch("summary");
    let out = |name: &str| dir.join(name).display().to_string();
    let none = ctstack_ok(&["pyramid", &stack_dir(), "--out", &out("none")]);
    assert!(
        none.starts_with("0 levels: 301x203 slices are within --min-size 500 already"),
        "{none}"
    );
    assert!(
        none.contains("--min-size 300 or less gives at least one level"),
        "{none}"
    );
    let one = ctstack_ok(&[
        "pyramid",
        &stack_dir(),
        "--out",
        &out("one"),
        "--min-size",
        "300",
    ]);
    assert!(
        one.starts_with("level 1 (150x101), 11 slices rebuilt"),
        "{one}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_run_exits_1_and_names_the_file() {
    let dir = scratch("failed");
    // A missing INPUT is the disk's state, not a failed run: 3 (docs/cli.md).
    let missing = dir.join("no-such-dir").display().to_string();
    let run = ctstack(&["pyramid", &missing]);
    assert_eq!(run.status.code(), Some(3), "{}", text(&run.stderr));
    assert!(
        text(&run.stderr).contains("no-such-dir"),
        "{}",
        text(&run.stderr)
    );

    // A stack with one slice of another size.
    let stack = dir.join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    write_slice::<u16>(&stack.join("s1.tif"), 8, 8, &[1; 64]).unwrap();
    write_slice::<u16>(&stack.join("s2.tif"), 4, 4, &[1; 16]).unwrap();
    let run = ctstack(&["pyramid", &stack.display().to_string(), "--min-size", "1"]);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("ctstack: error: ") && stderr.contains("s2.tif"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn too_many_threads_are_capped_with_a_note() {
    let dir = scratch("threads");
    let out = dir.join("out").display().to_string();
    let run = ctstack(&[
        "pyramid",
        &stack_dir(),
        "--out",
        &out,
        "--min-size",
        "80",
        "--threads",
        "100000",
    ]);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("note: --threads 100000 capped at"),
        "{stderr}"
    );
    // Not a terminal: no progress bar on stderr, only the note; the summary on stdout.
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let stdout = text(&run.stdout);
    assert!(
        stdout.starts_with(
            "levels 1-2 (150x101 down to 75x50), 17 slices rebuilt, 0 kept, 0 removed"
        ),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn info_describes_a_stack_folder() {
    let run = ctstack(&["info", &stack_dir()]);
    let stdout = text(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "{stdout}{}", text(&run.stderr));
    for line in [
        ": 21 slices\n",
        "  size: 301x203 uint16 (as slice_0000.tif), 2.6 MB of pixels\n",
        "  access paths: mapped 21\n",
        "  compression: none 21\n",
        "  numbering: no gaps\n",
        "  skipped: none\n",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }

    let mixed = text(
        &ctstack(&[
            "info",
            &common::fixtures().join("stack_mixed").display().to_string(),
        ])
        .stdout,
    );
    assert!(
        mixed.contains("  access paths: copied 2, decoded 2, mapped 1\n"),
        "{mixed}"
    );
    assert!(
        mixed.contains("  compression: Deflate 1, LZW 1, none 3\n"),
        "{mixed}"
    );
}

/// The first bytes of a PNG file: its signature and the start of its header chunk.
const PNG_HEAD: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10";

#[test]
fn info_explains_gaps_skipped_files_and_refused_slices() {
    let dir = scratch("info-mixed");
    for k in [0, 1, 3] {
        write_slice::<u16>(&dir.join(format!("scan_{k:04}.tif")), 6, 4, &[7; 24]).unwrap();
    }
    write_slice::<u16>(&dir.join("scan_0004.tif"), 3, 4, &[7; 12]).unwrap();
    std::fs::write(dir.join("scan_0005.tif"), PNG_HEAD).unwrap();
    std::fs::write(dir.join("notes.txt"), b"scanned on Tuesday\n").unwrap();
    std::fs::write(dir.join("preview.png"), PNG_HEAD).unwrap();
    std::fs::create_dir_all(dir.join(".thumbnail")).unwrap();
    std::fs::create_dir_all(dir.join("raw")).unwrap();

    let run = ctstack(&["info", &dir.display().to_string()]);
    let stdout = text(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stdout}");
    for line in [
        ": 5 slices\n",
        "  size: 6x4 uint16 (as scan_0000.tif), ",
        "  access paths: ",
        "  numbering: 1 gap (a warning; an error with pyramid --strict)\n",
        "scan_0001.tif is followed by scan_0003.tif: number 2 is missing\n",
        "  skipped: 4 entries\n",
        "    .thumbnail: directory: ctstack's default output directory\n",
        "    notes.txt: not a slice file by its name (extension .txt, not .tif .tiff .bmp .png .jpg .jpeg)\n",
        // The library's selection says why it left an image file out.
        "    preview.png: group unnumbered \".png\" has 1 file, the stack's group \"scan_\" + index + \".tif\" has 5 files\n",
        "    raw: directory: a stack is the files directly in DIR\n",
        "  refused: 2 slices that `ctstack pyramid` would stop at\n",
        "scan_0004.tif: 3x4 uint16, but scan_0000.tif is 6x4 uint16\n",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
    let png_slice = stdout
        .lines()
        .find(|l| l.contains("scan_0005.tif"))
        .unwrap_or_else(|| panic!("scan_0005.tif not reported:\n{stdout}"));
    // A PNG under a .tif name is read as a PNG: this one is cut short.
    assert!(png_slice.contains("PNG data is truncated"), "{png_slice}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn info_on_a_png_and_on_files_it_cannot_read() {
    let dir = scratch("info-png");
    let broken = dir.join("broken.png");
    std::fs::write(&broken, PNG_HEAD).unwrap();
    let gif = dir.join("scan.gif");
    std::fs::write(&gif, b"GIF89a\x01\0\x01\0\0\0\0;").unwrap();
    // A PNG written by Pillow (fixtures/make_image_fixtures.py).
    let png = common::fixtures().join("images/pillow_L.png");
    let paths = [&png, &broken, &gif].map(|p| p.display().to_string());
    let run = ctstack(&["info", &paths[0], &paths[1], &paths[2]]);
    let stdout = text(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[0].ends_with(
            "pillow_L.png: PNG 67x45 uint8, compression Deflate, big-endian, decoded: PNG"
        ),
        "{stdout}"
    );
    // A damaged PNG: the PNG reader's error, no advice to convert it.
    assert!(
        lines[1].contains("broken.png: error (malformed file): "),
        "{stdout}"
    );
    assert!(lines[1].contains("PNG data is truncated"), "{stdout}");
    // A format ctstack does not read: what it is and what to do.
    assert!(lines[2].contains("scan.gif: error ("), "{stdout}");
    assert!(
        lines[3].ends_with(
            "scan.gif: this is a GIF image, a format ctstack does not read: convert the stack to \
             TIFF or PNG, for example with ImageMagick: magick mogrify -format tif *.gif"
        ),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `info` on PNG, BMP, JPEG and TIFF files, one of them damaged: each file's
/// line, the damaged one's error.
#[test]
fn info_reads_bmp_png_and_jpeg_or_says_what_is_wrong() {
    let dir = scratch("info-formats");
    let png = dir.join("slice.png");
    std::fs::write(&png, PNG_HEAD).unwrap();
    let f = common::fixtures();
    let files = [
        png.clone(),
        f.join("images/pillow_I16.png"),
        f.join("images/nrecon_like_301.bmp"),
        f.join("images/pillow_RGB.jpg"),
        f.join("slices/tifffile_u16_be.tif"),
    ];
    let args: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let mut argv = vec!["info", "--mmap", "always"];
    argv.extend(args.iter().map(String::as_str));
    let run = ctstack(&argv);
    let stdout = text(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert!(
        lines[0].contains("slice.png: error (malformed file)"),
        "{stdout}"
    );
    assert!(lines[0].contains("PNG data is truncated"), "{stdout}");
    for (line, want) in lines[1..].iter().zip([
        "pillow_I16.png: PNG 67x45 uint16, compression Deflate, big-endian, decoded: PNG, 16-bit big-endian",
        "nrecon_like_301.bmp: BMP 301x37 uint8, compression none, little-endian, mapped: BMP, bottom-up rows padded to 304 bytes, gray palette",
        "pillow_RGB.jpg: JPEG 67x45 uint8, compression JPEG, big-endian, converted: RGB to gray (JPEG)",
        "tifffile_u16_be.tif: TIFF 67x45 uint16, compression none, big-endian, copied: big-endian",
    ]) {
        assert!(line.ends_with(want), "{line:?} is not {want:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pyramid_selects_with_prefix_ext_range_and_converts_depth() {
    let dir = scratch("select");
    let f = common::fixtures();
    for k in 0..9 {
        let name = format!("scan_rec{k:08}.bmp");
        std::fs::copy(f.join("stack_bmp").join(&name), dir.join(&name)).unwrap();
    }
    std::fs::copy(f.join("stack_bmp/scan_spr.bmp"), dir.join("scan_spr.bmp")).unwrap();
    let out = dir.join("out");
    let (input, out_arg) = (dir.display().to_string(), out.display().to_string());
    let run = ctstack(&["pyramid", &input, "--out", &out_arg, "--min-size", "10"]);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("ctstack: note: left out "), "{stderr}");
    assert!(
        stderr.contains("scan_spr.bmp: group unnumbered \".bmp\" has 1 file"),
        "{stderr}"
    );
    // The pyramid is the numpy reference, file for file.
    let reference = f.join("stack_bmp_reference");
    for (k, count) in [(1, 5), (2, 3), (3, 2)] {
        for j in 0..count {
            let name = format!("{k}/{j:06}.tif");
            let ours = ctstack::Slice::open(out.join(&name)).unwrap();
            let theirs = ctstack::Slice::open(reference.join(&name)).unwrap();
            assert_eq!(
                ours.contiguous::<u8>().unwrap(),
                theirs.contiguous::<u8>().unwrap(),
                "{name}"
            );
        }
    }
    assert!(!out.join("4").exists());

    let ranged = dir.join("ranged");
    let run = ctstack(&[
        "pyramid",
        &input,
        "--out",
        &ranged.display().to_string(),
        "--min-size",
        "10",
        "--prefix",
        "scan_rec",
        "--ext",
        "BMP",
        "--range",
        "2:10",
        "--index-width",
        "8",
        "--depth",
        "16",
    ]);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("index 00000000 is outside 2..=10"),
        "{stderr}"
    );
    assert!(
        stderr.contains("numbers 9..=10 are missing (2 files)"),
        "{stderr}"
    );
    let level1 = ctstack::Slice::open(ranged.join("1/000000.tif")).unwrap();
    assert_eq!(level1.bits(), 16, "--depth 16 converts the 8-bit slices");
    // Windows refuses to delete a mapped file: unmap it before the folder goes.
    drop(level1);
    let run = ctstack(&["pyramid", &input, "--range", "5:2"]);
    assert_eq!(run.status.code(), Some(2), "{}", text(&run.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Ctrl-C in the middle of a run: exit 130 with one line, nothing partial or
/// temporary left, only level folders (and the lock file) in the output; a rerun
/// finishes the job.
#[cfg(unix)]
#[test]
fn ctrl_c_stops_the_run_cleanly() {
    use std::time::{Duration, Instant};

    let dir = scratch("sigint");
    let input = dir.join("in");
    let out = dir.join("out");
    std::fs::create_dir_all(&input).unwrap();
    // Enough work that the run is still going when the signal arrives: 48 slices
    // of 1024x1024 (96 MB), about 2 s in a debug build.
    let (count, side) = (48usize, 1024u32);
    let mut pixels: Vec<u16> = (0..side * side).map(|i| (i % 65_521) as u16).collect();
    for k in 0..count {
        pixels
            .iter_mut()
            .for_each(|p| *p = p.wrapping_add(k as u16));
        write_slice(&input.join(format!("s{k:03}.tif")), side, side, &pixels).unwrap();
    }
    let mut child = Command::new(BIN)
        .arg("pyramid")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .args(["--min-size", "64"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first output slice: the run is then in its main loop.
    let first = out.join("1").join("000000.tif");
    let start = Instant::now();
    while !first.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be interrupted"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no output after 60 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill() takes plain integers; the child is ours and not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        // A bound against a hang, not a speed check: a cancelled run stops at the
        // next slice, normally well under a second.
        assert!(
            signalled.elapsed() < Duration::from_secs(30),
            "still running 30 s after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let latency = signalled.elapsed();
    let output = child.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(status.code(), Some(130), "{status:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("ctstack: interrupted after "),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
    eprintln!("SIGINT to exit: {latency:?}; {stderr}");

    // Only level folders and the manifest at the top (no lock, no temporary
    // file); only final names inside.
    let mut written = 0;
    for entry in std::fs::read_dir(&out).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == ctstack::MANIFEST_FILE {
            continue;
        }
        assert!(
            entry.path().is_dir() && name.parse::<u32>().is_ok_and(|k| k >= 1),
            "unexpected {name} in the output"
        );
        for file in std::fs::read_dir(entry.path()).unwrap().flatten() {
            let file_name = file.file_name().to_string_lossy().into_owned();
            let stem = file_name.strip_suffix(".tif").unwrap_or("");
            assert!(
                stem.len() == 6 && stem.bytes().all(|b| b.is_ascii_digit()),
                "left behind: {name}/{file_name}"
            );
            Slice::open(file.path()).expect("a complete output slice");
            written += 1;
        }
    }
    // 48 -> 24 -> 12 -> 6 -> 3 slices: 45 outputs in all.
    assert!(
        written < 45,
        "the run finished before the signal: not an interruption test"
    );

    let rerun = Command::new(BIN)
        .arg("pyramid")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .args(["--min-size", "64"])
        .output()
        .unwrap();
    let summary = text(&rerun.stdout);
    assert_eq!(rerun.status.code(), Some(0), "{}", text(&rerun.stderr));
    assert!(
        summary.contains(&format!("{} slices rebuilt, {written} kept", 45 - written)),
        "{summary}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `ctstack zarr`: a store of every level with the default name beside the
/// input; bad options exit 2 with the reason; a store that is not ctstack's
/// is refused (exit 3) and untouched, and the message suggests no flag; the
/// removed --force exits 2 saying none is needed; a store in the input folder
/// exits 2.
#[cfg(feature = "ome-zarr")]
#[test]
fn zarr_writes_a_store_and_refuses_bad_options_and_foreign_stores() {
    let dir = scratch("zarr");
    let input = dir.join("scan");
    std::fs::create_dir_all(&input).unwrap();
    for z in 0..5u16 {
        write_slice::<u16>(&input.join(format!("s{z}.tif")), 40, 30, &vec![z; 1200]).unwrap();
    }
    let input_arg = input.display().to_string();
    let out = ctstack_ok(&[
        "zarr",
        &input_arg,
        "--min-size",
        "8",
        "--voxel-size",
        "1,1,1",
    ]);
    let store = dir.join("scan.ome.zarr");
    assert!(out.contains("levels 0-3 (5x30x40 down to 1x3x5)"), "{out}");
    assert!(out.contains(&store.display().to_string()), "{out}");
    for k in 0..4 {
        assert!(
            store.join(k.to_string()).join("zarr.json").is_file(),
            "level {k}"
        );
    }
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("zarr.json")).unwrap()).unwrap();
    assert_eq!(root["attributes"]["ome"]["version"], "0.5");
    for (args, says) in [
        (
            &["--ngff", "0.4", "--shard", "2,16,16"][..],
            "sharding needs Zarr v3 (OME-Zarr 0.5), not --ngff 0.4: drop the shard (no --shard)",
        ),
        (&["--chunks", "2,16"], "three comma-separated values"),
        (&["--chunks", "0,16,16"], "at least 1"),
        (
            &["--shard", "3,16,16", "--chunks", "2,16,16"],
            "whole multiple",
        ),
        (&["--compression", "zstd:99"], "zstd:LEVEL"),
        (&["--voxel-size", "1,-2,1"], "voxel size"),
        (&["--unit", "furlong"], "not an NGFF space unit"),
        (&["--ngff", "0.6"], "0.6"),
    ] {
        let out_dir = dir.join("bad.ome.zarr").display().to_string();
        let mut all = vec!["zarr", &input_arg, "--out", &out_dir];
        all.extend_from_slice(args);
        let out = ctstack(&all);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let foreign = dir.join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), b"mine").unwrap();
    let foreign_arg = foreign.display().to_string();
    let out = ctstack(&["zarr", &input_arg, "--out", &foreign_arg, "-q"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "state errors exit 3: {stderr}");
    assert!(
        stderr.contains("not a ctstack OME-Zarr store") && !stderr.contains("force"),
        "{stderr}"
    );
    // The command line's words only, not the Rust API's (issue 27).
    assert!(!stderr.contains("ZarrBuilder"), "{stderr}");
    assert_eq!(std::fs::read(foreign.join("notes.txt")).unwrap(), b"mine");
    // --force is gone (it did nothing since no store is ever deleted): a usage
    // error saying that a ctstack store is replaced without a flag.
    let out = ctstack(&["zarr", &input_arg, "--out", &foreign_arg, "-q", "--force"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr
            .contains("zarr has no --force: a store that is ctstack's is replaced without a flag"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(foreign.join("notes.txt")).unwrap(), b"mine");
    // The input folder itself, or a store inside it: exit 2, nothing written.
    for out_dir in [input.clone(), input.join("in.ome.zarr")] {
        let out_arg = out_dir.display().to_string();
        let out = ctstack(&["zarr", &input_arg, "--out", &out_arg, "-q"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        let error = stderr
            .lines()
            .find(|l| l.contains("error"))
            .unwrap_or_default();
        assert!(
            error.contains("input folder") && !error.contains("force"),
            "{stderr}"
        );
    }
    assert_eq!(std::fs::read_dir(&input).unwrap().count(), 5);
    // `ctstack zarr .` inside the scan: the default store is beside it, named after it.
    std::fs::remove_dir_all(&store).unwrap();
    let out = std::process::Command::new(BIN)
        .current_dir(&input)
        .args([
            "zarr",
            ".",
            "-q",
            "--min-size",
            "8",
            "--voxel-size",
            "1,1,1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(store.join("zarr.json").is_file());
    assert_eq!(std::fs::read_dir(&input).unwrap().count(), 5);
    std::fs::remove_dir_all(&dir).ok();
}

/// `ctstack info ... | head -1`: the reader closes the pipe early, and ctstack
/// ends as a command killed by SIGPIPE would (status 141), without a panic.
#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_info_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    // Far more lines than a pipe holds (64 KiB on Linux), so ctstack is still
    // writing when the reader goes away, however fast it is.
    let one: Vec<_> = std::fs::read_dir(common::fixtures().join("slices"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let files: Vec<_> = (0..40).flat_map(|_| one.iter().cloned()).collect();
    let mut child = Command::new(BIN)
        .arg("info")
        .args(&files)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The read end is closed here; ctstack's next lines meet a broken pipe.
    let out = child.wait_with_output().unwrap();
    assert!(first.contains(": TIFF "), "{first}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}

/// `ctstack info` on a store says whether it is current, as for a pyramid
/// (issue 27), from its record of the inputs (`ctstack-inputs.json`, which
/// names the folder they were in, so a store written with `--out` elsewhere is
/// checked too): unchanged inputs current (exit 0); an input rewritten or
/// missing stale (exit 3, naming it and how to update); a store and scan moved
/// together checked in the scan beside it; no record: unknown, said plainly
/// (exit 0). Before, a complete store said nothing about its inputs.
#[cfg(feature = "ome-zarr")]
#[test]
fn info_says_whether_a_store_is_current() {
    let dir = scratch("info-store-current");
    let scan = dir.join("scan");
    std::fs::create_dir(&scan).unwrap();
    for entry in std::fs::read_dir(stack_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), scan.join(entry.file_name())).unwrap();
    }
    let elsewhere = dir.join("out");
    std::fs::create_dir(&elsewhere).unwrap();
    let store = elsewhere.join("s.ome.zarr");
    let store_arg = store.display().to_string();
    let scan_arg = scan.display().to_string();
    ctstack_ok(&[
        "zarr",
        "-q",
        "--min-size",
        "80",
        "--voxel-size",
        "1,1,1",
        &scan_arg,
        "--out",
        &store_arg,
    ]);
    let out = ctstack_ok(&["info", &store_arg]);
    assert!(
        out.contains("current: its 21 inputs are unchanged in"),
        "{out}"
    );
    // One input rewritten: stale, exit 3, naming it and the command.
    let set_time = |path: &std::path::Path, secs: u64| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .unwrap();
    };
    set_time(&scan.join("slice_0003.tif"), 1_000_000);
    let stale = ctstack(&["info", &store_arg]);
    let said = text(&stale.stdout);
    assert_eq!(stale.status.code(), Some(3), "{said}");
    assert!(said.contains("stale: 1 input changed or missing"), "{said}");
    assert!(said.contains("slice_0003.tif"), "{said}");
    assert!(said.contains("run `ctstack zarr`"), "{said}");
    // A missing input: stale too.
    ctstack_ok(&[
        "zarr",
        "-q",
        "--min-size",
        "80",
        "--voxel-size",
        "1,1,1",
        &scan_arg,
        "--out",
        &store_arg,
    ]);
    assert!(ctstack_ok(&["info", &store_arg]).contains("current: its 21 inputs"));
    std::fs::rename(scan.join("slice_0020.tif"), dir.join("slice_0020.tif")).unwrap();
    let stale = ctstack(&["info", &store_arg]);
    assert_eq!(stale.status.code(), Some(3), "{}", text(&stale.stdout));
    assert!(text(&stale.stdout).contains("slice_0020.tif"));
    std::fs::rename(dir.join("slice_0020.tif"), scan.join("slice_0020.tif")).unwrap();
    // The scan moved away with the store beside it under the default name
    // (scan/ and scan.ome.zarr/): checked there; touched by the move, stale.
    let moved = dir.join("moved");
    std::fs::create_dir(&moved).unwrap();
    std::fs::rename(&scan, moved.join("scan")).unwrap();
    std::fs::rename(&store, moved.join("scan.ome.zarr")).unwrap();
    let moved_store = moved.join("scan.ome.zarr").display().to_string();
    let out = ctstack_ok(&["info", &moved_store]);
    assert!(
        out.contains("current: its 21 inputs are unchanged in"),
        "{out}"
    );
    assert!(
        out.contains(&moved.join("scan").display().to_string()),
        "{out}"
    );
    for entry in std::fs::read_dir(moved.join("scan")).unwrap() {
        set_time(&entry.unwrap().path(), 2_000_000);
    }
    let stale = ctstack(&["info", &moved_store]);
    assert_eq!(stale.status.code(), Some(3), "{}", text(&stale.stdout));
    assert!(text(&stale.stdout).contains("stale: 21 inputs changed"));
    // Inputs nowhere to be found: unknown, exit 0, said so.
    std::fs::rename(moved.join("scan"), dir.join("gone")).unwrap();
    let out = ctstack_ok(&["info", &moved_store]);
    assert!(
        out.contains("current: unknown (its inputs are not in"),
        "{out}"
    );
    // No record (a build that did not finish has none): unknown, said plainly.
    std::fs::remove_file(moved.join("scan.ome.zarr").join("ctstack-inputs.json")).unwrap();
    let out = ctstack_ok(&["info", &moved_store]);
    assert!(
        out.contains("current: unknown (no record of its inputs, ctstack-inputs.json"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A pyramid written with `--out` elsewhere (the README's first example) is
/// checked in the folder its manifest names: current, then stale when an input
/// changes, naming the command with its --out (issue 27: "unknown, its inputs
/// are not in target").
#[test]
fn info_checks_a_pyramid_written_elsewhere() {
    let dir = scratch("info-pyramid-elsewhere");
    let scan = dir.join("scan");
    std::fs::create_dir(&scan).unwrap();
    for entry in std::fs::read_dir(stack_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), scan.join(entry.file_name())).unwrap();
    }
    let out = dir.join("target").join("pyramid").display().to_string();
    let scan_arg = scan.display().to_string();
    ctstack_ok(&[
        "pyramid",
        "-q",
        "--min-size",
        "80",
        &scan_arg,
        "--out",
        &out,
    ]);
    let said = ctstack_ok(&["info", &out]);
    assert!(
        said.contains(&format!(
            "current: its 21 inputs are unchanged in {}",
            scan.canonicalize().unwrap().display()
        )),
        "{said}"
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(scan.join("slice_0004.tif"))
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
        .unwrap();
    let stale = ctstack(&["info", &out]);
    let said = text(&stale.stdout);
    assert_eq!(stale.status.code(), Some(3), "{said}");
    assert!(said.contains("stale: 1 input changed"), "{said}");
    assert!(said.contains(&format!("again (--out {out})")), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `ctstack info` on what ctstack wrote (issue 27): a built pyramid folder gives
/// its levels, shapes, sample type, and whether it is complete and current (a
/// changed input: stale, exit 3); an OME-Zarr store its levels' shapes, data
/// type and voxel size, complete or not (a cancelled build: exit 3). Before,
/// both were "0 slices", exit 3.
#[test]
fn info_describes_a_built_pyramid_and_an_ome_zarr_store() {
    let dir = scratch("info-outputs");
    let scan = dir.join("scan");
    std::fs::create_dir(&scan).unwrap();
    for entry in std::fs::read_dir(stack_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), scan.join(entry.file_name())).unwrap();
    }
    let scan_arg = scan.display().to_string();
    let run = ctstack(&["pyramid", "-q", "--min-size", "80", &scan_arg]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let thumbs = scan.join(".thumbnail").display().to_string();
    let out = ctstack_ok(&["info", &thumbs]);
    assert!(
        out.contains("ctstack pyramid of 21 slices (uint16 301x203)"),
        "{out}"
    );
    assert!(out.contains("levels 1-2 uint16, complete"), "{out}");
    assert!(
        out.contains("level 1: 11 slices of 150x101 uint16"),
        "{out}"
    );
    assert!(out.contains("level 2: 6 slices of 75x50 uint16"), "{out}");
    assert!(
        out.contains("current: its 21 inputs are unchanged"),
        "{out}"
    );
    // An input rewritten since: stale, exit 3, naming it.
    let changed = scan.join("slice_0003.tif");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&changed)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
        .unwrap();
    let stale = ctstack(&["info", &thumbs]);
    assert_eq!(stale.status.code(), Some(3));
    assert!(
        text(&stale.stdout).contains("stale: 1 input changed"),
        "{}",
        text(&stale.stdout)
    );
    assert!(text(&stale.stdout).contains("slice_0003.tif"));
    // Every input rewritten (a copied or touched scan): stale too, not "unknown".
    for entry in std::fs::read_dir(&scan).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "tif") {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(2_000_000))
                .unwrap();
        }
    }
    let stale = ctstack(&["info", &thumbs]);
    assert_eq!(stale.status.code(), Some(3), "{}", text(&stale.stdout));
    assert!(
        text(&stale.stdout).contains("stale: 21 inputs changed"),
        "{}",
        text(&stale.stdout)
    );

    #[cfg(feature = "ome-zarr")]
    for ngff in ["0.5", "0.4"] {
        let store = dir
            .join(format!("scan-{ngff}.ome.zarr"))
            .display()
            .to_string();
        let run = ctstack(&[
            "zarr",
            "-q",
            "--min-size",
            "80",
            "--ngff",
            ngff,
            "--voxel-size",
            "2.5,2.5,2.5",
            &scan_arg,
            "--out",
            &store,
        ]);
        assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
        let out = ctstack_ok(&["info", &store]);
        assert!(out.contains(&format!("OME-Zarr {ngff}")), "{out}");
        assert!(
            out.contains("levels 0-2, written by ctstack, complete"),
            "{out}"
        );
        assert!(out.contains("21 x 203 x 301 (z, y, x) uint16, "), "{out}");
        // Level 2 keeps the 5 planes that average 4 slices each (of 21).
        assert!(out.contains("5 x 50 x 75 (z, y, x)"), "{out}");
        assert!(out.contains("voxel 2.5 x 2.5 x 2.5 micrometer"), "{out}");
        assert!(out.contains("voxel 10 x 10 x 10 micrometer"), "{out}");
        assert!(!out.contains("0 slices"), "{out}");
    }
    // A build that did not finish: incomplete, exit 3. (The manifest of a
    // pyramid with an output missing; a store whose root says so.)
    let manifest_path = scan.join(".thumbnail").join("ctstack.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["levels"][0]["files"][1] = serde_json::Value::Null;
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let run = ctstack(&["info", &thumbs]);
    assert_eq!(run.status.code(), Some(3));
    assert!(text(&run.stdout).contains("incomplete (its last build did not finish)"));
    #[cfg(feature = "ome-zarr")]
    {
        let store = dir.join("scan-0.5.ome.zarr");
        let root_path = store.join("zarr.json");
        let mut root: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&root_path).unwrap()).unwrap();
        let attributes = root["attributes"].as_object_mut().unwrap();
        attributes.remove("ome");
        attributes.insert("ctstack".into(), serde_json::json!({ "complete": false }));
        std::fs::write(&root_path, root.to_string()).unwrap();
        let run = ctstack(&["info", &store.display().to_string()]);
        assert_eq!(run.status.code(), Some(3));
        assert!(text(&run.stdout).contains("ctstack OME-Zarr store, incomplete"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A scratch copy of the first `n` slices of fixtures/stack.
fn stack_copy(name: &str, n: usize) -> PathBuf {
    let dir = scratch(name).join("scan");
    std::fs::create_dir_all(&dir).unwrap();
    for k in 0..n {
        let file = format!("slice_{k:04}.tif");
        std::fs::copy(
            common::fixtures().join("stack").join(&file),
            dir.join(&file),
        )
        .unwrap();
    }
    dir
}

/// `--range FIRST:LAST` (alias `--indices`) is file numbers, inclusive, in
/// pyramid, zarr and info; crop's slice positions are `--slices Z0:Z1`, and crop's
/// old `--range` is refused with what to write now, before anything is written.
#[test]
fn range_means_file_numbers_and_crop_range_says_what_to_write() {
    let dir = scratch("vocabulary");
    let stack = stack_dir();
    for option in ["--range", "--indices", "--range=0:9", "--indices=0:9"] {
        let mut args = vec!["info", stack.as_str(), option];
        if !option.contains('=') {
            args.push("0:9");
        }
        let out = ctstack_ok(&args);
        assert!(out.contains(": 10 slices\n"), "{args:?}: {out}");
    }
    let out = dir.join("crop");
    let out_arg = out.display().to_string();
    let run = ctstack(&["crop", &stack, "--range", "0:9", "--out", &out_arg]);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--slices 0:9"), "{stderr}");
    assert!(stderr.contains("--indices FIRST:LAST"), "{stderr}");
    assert!(!out.exists(), "a refused crop wrote {}", out.display());
    // The new spelling: 9 positions, and --indices the inclusive file numbers.
    ctstack_ok(&["crop", &stack, "--slices", "0:9", "-q", "--out", &out_arg]);
    // The outputs and the crop's record.
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 9 + 1);
    let numbered = dir.join("numbered").display().to_string();
    ctstack_ok(&["crop", &stack, "--indices", "0:9", "-q", "--out", &numbered]);
    assert_eq!(std::fs::read_dir(&numbered).unwrap().count(), 10 + 1);
    let help = text(&ctstack(&["crop", "--help"]).stdout);
    assert!(help.contains("--slices <Z0:Z1>"), "{help}");
    assert!(!help.contains("--range <"), "{help}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One of a thing is said in the singular ("1 file", "1 slice", not "1 files"),
/// and levels are named by number, the same way in every command: a pyramid
/// holds levels 1-L, a store levels 0-L (docs/cli.md, "Levels"; issue 27: the
/// pyramid said "2 levels" and the store "3 levels" for the same three).
#[test]
fn one_is_singular_and_levels_are_named_by_number() {
    let dir = scratch("singular");
    let stack = stack_dir();
    let out = dir.join("one").display().to_string();
    let said = ctstack_ok(&[
        "crop",
        &stack,
        "--box",
        "0:10,0:10",
        "--slices",
        "3:4",
        "--out",
        &out,
    ]);
    assert!(
        said.starts_with("1 file of 10x10 uint16 (1 slice of level 0), "),
        "{said}"
    );
    let pyramid = dir.join("p").display().to_string();
    let said = ctstack_ok(&["pyramid", &stack, "--min-size", "80", "--out", &pyramid]);
    assert!(
        said.starts_with("levels 1-2 (150x101 down to 75x50), "),
        "{said}"
    );
    let said = ctstack_ok(&["info", &pyramid]);
    assert!(said.contains(", levels 1-2 uint16, complete"), "{said}");
    #[cfg(feature = "ome-zarr")]
    {
        let store = dir.join("s.ome.zarr").display().to_string();
        let zarr = [
            "zarr",
            &stack,
            "--min-size",
            "80",
            "--voxel-size",
            "1,1,1",
            "--out",
            &store,
        ];
        let said = ctstack_ok(&zarr);
        assert!(
            said.starts_with("levels 0-2 (21x203x301 down to 5x50x75), "),
            "{said}"
        );
        let said = ctstack_ok(&["info", &store]);
        assert!(
            said.contains("multiscale image, levels 0-2, written by ctstack"),
            "{said}"
        );
    }
    let docs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli.md"));
    assert!(docs.unwrap().contains("## Levels"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The files a selection leaves out are named a few at a time with a count and
/// the command that lists them all; `-q` prints nothing but warnings and errors.
#[test]
fn left_out_files_are_summarised_and_quiet_is_quiet() {
    let dir = scratch("left-out");
    let stack = stack_dir();
    let out = dir.join("out").display().to_string();
    let args = [
        "pyramid",
        &stack,
        "--range",
        "0:9",
        "--min-size",
        "80",
        "--out",
        &out,
    ];
    let run = ctstack(&args);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    let notes: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("ctstack: note:"))
        .collect();
    assert_eq!(notes.len(), 4, "{stderr}");
    assert!(
        notes[0].contains("slice_0010.tif: index 0010 is outside 0..=9"),
        "{stderr}"
    );
    assert!(
        notes[3].contains("... and 8 more left out (11 in all; `ctstack info "),
        "{stderr}"
    );
    assert!(notes[3].contains(&stack), "{stderr}");
    let quiet = ctstack(&[&args[..], &["-q"]].concat());
    assert_eq!(quiet.status.code(), Some(0));
    assert_eq!(text(&quiet.stderr), "", "-q printed to stderr");
    assert_eq!(text(&quiet.stdout), "", "-q printed to stdout");
    // What the note points to lists every one.
    let info = ctstack_ok(&["info", &stack, "--range", "0:9"]);
    assert!(info.contains("skipped: 11 entries"), "{info}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A one-page file is a stack of one slice only with `--single-page`: otherwise
/// `pyramid` and `zarr` refuse it (exit 2) naming the folder to pass.
#[test]
fn a_one_page_file_is_refused_unless_single_page_is_given() {
    let scan = stack_copy("single", 3);
    let file = scan.join("slice_0000.tif");
    let out = scan.parent().unwrap().join("out");
    let (file_arg, out_arg) = (file.display().to_string(), out.display().to_string());
    let mut commands = vec!["pyramid"];
    if cfg!(feature = "ome-zarr") {
        commands.push("zarr");
    }
    for command in commands {
        let run = ctstack(&[command, &file_arg, "--out", &out_arg]);
        let stderr = text(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "pass the folder that holds the slices ({})",
                scan.display()
            )),
            "{command}: {stderr}"
        );
        assert!(stderr.contains("--single-page"), "{command}: {stderr}");
        assert!(!out.exists(), "{command}: a refused run wrote output");
        assert!(
            !scan.join("slice_0000.thumbnail").exists(),
            "{command}: a refused run wrote output"
        );
    }
    ctstack_ok(&[
        "pyramid",
        &file_arg,
        "--single-page",
        "--min-size",
        "80",
        "-q",
        "--out",
        &out_arg,
    ]);
    assert!(out.join("1/000000.tif").is_file());
    std::fs::remove_dir_all(scan.parent().unwrap()).unwrap();
}

/// Whether this process's writes ignore file permissions (root).
#[cfg(unix)]
fn permissions_do_not_bind(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let probe = dir.join("probe");
    std::fs::create_dir(&probe).unwrap();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o555)).unwrap();
    let binds = std::fs::create_dir(probe.join("x")).is_err();
    let _ = std::fs::remove_dir(probe.join("x"));
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::remove_dir(&probe).unwrap();
    !binds
}

/// A scan folder the pyramid cannot be written into (read-only, or its
/// `.thumbnail` taken by a file) fails with exit 1 and says `--out DIR` writes
/// elsewhere. Read-only is tested for real: as root, whose writes permissions do
/// not stop, the command runs as user nobody through setpriv (util-linux).
/// Unix only: Unix permission bits and setpriv (on Windows a folder's read-only
/// attribute does not stop files being created in it).
#[cfg(unix)]
#[test]
fn an_unwritable_scan_folder_points_to_out() {
    use std::os::unix::fs::PermissionsExt;
    let scan = stack_copy("read-only", 2);
    let root = scan.parent().unwrap().to_path_buf();
    let scan_arg = scan.display().to_string();

    std::fs::write(scan.join(".thumbnail"), b"a user's file").unwrap();
    let run = ctstack(&["pyramid", &scan_arg, "--min-size", "80"]);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot create output directory"),
        "{stderr}"
    );
    assert!(stderr.contains("pass --out DIR"), "{stderr}");
    assert_eq!(
        std::fs::read(scan.join(".thumbnail")).unwrap(),
        b"a user's file"
    );
    std::fs::remove_file(scan.join(".thumbnail")).unwrap();

    let mut command = Command::new(BIN);
    if permissions_do_not_bind(&root) {
        let setpriv = Command::new("setpriv").arg("--version").output();
        if !setpriv.is_ok_and(|o| o.status.success()) {
            eprintln!("skipped the read-only case: running as root and setpriv is missing");
            std::fs::remove_dir_all(&root).unwrap();
            return;
        }
        // nobody must reach the scan and the binary.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        command = Command::new("setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
    }
    std::fs::set_permissions(&scan, std::fs::Permissions::from_mode(0o555)).unwrap();
    let run = command
        .args(["pyramid", &scan_arg, "--min-size", "80"])
        .output()
        .unwrap();
    std::fs::set_permissions(&scan, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert!(stderr.contains("pass --out DIR"), "{stderr}");
    assert!(!scan.join(".thumbnail").exists());
    std::fs::remove_dir_all(&root).unwrap();
}

/// Each row of docs/cli.md's table that a test can provoke, for every command it
/// names: a missing INPUT is 3 like an empty one (it was 1), a one-page file 2.
#[test]
fn exit_statuses_follow_docs_cli_md() {
    let table =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli.md")).unwrap();
    for status in ["| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 130 |"] {
        assert!(table.contains(status), "docs/cli.md lacks {status}");
    }
    assert!(table.contains("INPUT does not exist"), "{table}");
    let row = |status: &str| {
        table
            .lines()
            .find(|l| l.starts_with(status))
            .unwrap_or_default()
            .to_string()
    };
    assert!(row("| 1 |").contains("`--strict`"), "{}", row("| 1 |"));
    let dir = scratch("statuses");
    let missing = dir.join("no-such-scan").display().to_string();
    let empty = dir.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let empty = empty.display().to_string();
    let out = dir.join("out").display().to_string();
    let one_page = common::fixtures()
        .join("stack/slice_0000.tif")
        .display()
        .to_string();
    let mut cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["pyramid", &missing, "--out", &out],
            3,
            "does not exist",
        ),
        (vec!["pyramid", &empty, "--out", &out], 3, "no slice files"),
        (vec!["crop", &missing, "--out", &out], 3, "does not exist"),
        (vec!["crop", &empty, "--out", &out], 3, "no slice files"),
        (vec!["info", &missing], 3, "does not exist"),
        (vec!["info", &empty], 3, "no slice files"),
        (
            vec!["pyramid", &one_page, "--out", &out],
            2,
            "--single-page",
        ),
    ];
    if cfg!(feature = "ome-zarr") {
        cases.push((vec!["zarr", &missing, "--out", &out], 3, "does not exist"));
        cases.push((vec!["zarr", &empty, "--out", &out], 3, "no slice files"));
    }
    // A file ctstack did not write at an output name: the crop's, the pyramid's.
    let stack = common::fixtures().join("stack").display().to_string();
    // --strict and a gap (the stack is 0..=20): status 1, as the table's row says.
    cases.push((
        vec![
            "pyramid", &stack, "--range", "0:24", "--strict", "--out", &out,
        ],
        1,
        "numbers 21..=24 are missing",
    ));
    let users = dir.join("users");
    std::fs::create_dir_all(users.join("1")).unwrap();
    std::fs::write(users.join("slice_0000.tif"), b"the user's").unwrap();
    std::fs::write(users.join("1/000000.tif"), b"the user's").unwrap();
    let users = users.display().to_string();
    cases.push((
        vec!["crop", &stack, "--out", &users],
        3,
        "slice_0000.tif is at an output name of the crop, and ctstack did not write it",
    ));
    cases.push((
        vec!["pyramid", &stack, "--min-size", "80", "--out", &users],
        3,
        "1/000000.tif is at an output name of the pyramid, and ctstack did not write it",
    ));
    for (args, status, says) in cases {
        let run = ctstack(&args);
        let said = format!("{}{}", text(&run.stdout), text(&run.stderr));
        assert_eq!(run.status.code(), Some(status), "{args:?}: {said}");
        assert!(said.contains(says), "{args:?}: {said}");
    }
    assert!(!Path::new(&out).exists(), "a refused run wrote output");
    let users = Path::new(&users);
    assert_eq!(
        std::fs::read(users.join("slice_0000.tif")).unwrap(),
        b"the user's"
    );
    assert_eq!(
        std::fs::read(users.join("1/000000.tif")).unwrap(),
        b"the user's"
    );
    assert_eq!(
        std::fs::read_dir(users).unwrap().count(),
        2,
        "a refused run wrote output"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `info` on a scan folder says the voxel size and where it came from: the
/// scanner's log beside NRecon's BMPs (nothing when unknown, as before); a
/// malformed log is a warning, not a failure.
#[test]
fn info_says_the_voxel_size_and_where_it_came_from() {
    let dir = scratch("info-voxel");
    for (sidecar, said) in [
        (Some("bruker"), "voxel size 12.5 um from scan_rec.log"),
        (None, "numbering: no gaps"),
        (Some("bruker_bad"), "warning: "),
    ] {
        let scan =
            common::stack_with_sidecar("stack_bmp", sidecar, &dir.join(sidecar.unwrap_or("none")));
        let out = ctstack_ok(&["info", scan.to_str().unwrap()]);
        assert!(out.contains(said), "{sidecar:?}: {out}");
        assert_eq!(
            out.contains("\n  voxel size "),
            sidecar == Some("bruker"),
            "{out}"
        );
        // The log it read the size from is not "skipped" (issue 27).
        assert_eq!(
            out.contains("    scan_rec.log: not a slice file"),
            sidecar == Some("bruker_bad"),
            "{out}"
        );
    }
    // An acquisition-only Bruker log (no [Reconstruction] section) is said to be
    // what it is, where the size is unknown and in the skipped list (issue 27:
    // it read as "no scanner's file").
    let scan = common::stack_with_sidecar("stack_bmp", Some("bruker_acq"), &dir.join("acq"));
    let out = ctstack_ok(&["info", scan.to_str().unwrap()]);
    assert!(
        out.contains("voxel size: unknown (no resolution tags, and scan.log, the scanner's file"),
        "{out}"
    );
    assert!(
        out.contains("    scan.log: a Bruker SkyScan acquisition log (no [Reconstruction] section"),
        "{out}"
    );
    let out = ctstack(&["zarr", dir.join("bruker").to_str().unwrap(), "--out"]);
    assert_eq!(out.status.code(), Some(2));
    // The note says where the size came from; `-q` silences notes (not warnings).
    let bruker = dir.join("bruker");
    for (quiet, store) in [(false, "s.zarr"), (true, "q.zarr")] {
        let store = dir.join(store);
        let mut args = vec![
            "zarr",
            bruker.to_str().unwrap(),
            "--out",
            store.to_str().unwrap(),
        ];
        if quiet {
            args.push("-q");
        }
        let out = ctstack(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let said = "voxel size 12.5 x 12.5 x 12.5 micrometer (z, y, x) from scan_rec.log";
        assert_eq!(stderr.contains(said), !quiet, "quiet {quiet}: {stderr}");
        assert_eq!(stderr.contains("note:"), !quiet, "quiet {quiet}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `-q` means quiet in every command: a crop's notes (the outputs' resolution
/// and where it came from) go to stderr without it and not with it.
#[test]
fn quiet_crops_print_no_notes() {
    let dir = scratch("quiet-crop");
    let scan = common::stack_with_sidecar("stack_bmp", Some("bruker"), &dir.join("scan"));
    for (quiet, out_dir) in [(false, "loud"), (true, "quiet")] {
        let out_dir = dir.join(out_dir);
        let mut args = vec![
            "crop",
            scan.to_str().unwrap(),
            "--box",
            "0:8,0:8",
            "--out",
            out_dir.to_str().unwrap(),
        ];
        if quiet {
            args.push("-q");
        }
        let out = ctstack(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert_eq!(stderr.contains("note:"), !quiet, "quiet {quiet}: {stderr}");
        assert_eq!(text(&out.stdout).is_empty(), quiet, "quiet {quiet}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The library names the option that writes elsewhere when the default output
/// folder cannot be made (the CLI's `--out DIR`, however the folder refuses:
/// here a file holds its name, which binds even for root).
#[test]
fn a_default_output_that_cannot_be_made_names_out() {
    let scan = stack_copy("default-out", 2);
    std::fs::write(scan.join(".thumbnail"), b"").unwrap();
    let out = ctstack(&["pyramid", scan.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("pass --out DIR"), "{stderr}");
    assert_eq!(stderr.matches("--out DIR").count(), 1, "{stderr}");
    std::fs::remove_dir_all(scan.parent().unwrap()).ok();
}

/// A crop at a level whose pyramid is missing says how to build it in the
/// CLI's words (`ctstack pyramid`), not the Rust type's.
#[test]
fn a_missing_pyramid_is_built_with_the_clis_command() {
    let dir = scratch("crop-no-pyramid");
    let scan = common::stack_with_sidecar("stack_bmp", None, &dir.join("scan"));
    let out_dir = dir.join("out");
    let out = ctstack(&[
        "crop",
        scan.to_str().unwrap(),
        "--level",
        "1",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("build it with `ctstack pyramid` first"),
        "{stderr}"
    );
    assert!(!stderr.contains("PyramidBuilder"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}
