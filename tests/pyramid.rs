//! The pyramid builder against independent references: the numpy-made reference
//! pyramids committed under fixtures/, and a naive per-pixel 3-D reference here.

mod common;

use std::path::Path;

use common::Rng;
use common::pyramid::{pixels, reference_volume, temp_dir, tree};
use ctstack::{
    CancelFlag, ErrorKind, MANIFEST_FILE, PyramidBuilder, ReadMode, Sample, level_shapes,
    write_slice,
};

fn assert_same_pyramid(ours: &Path, reference: &Path) {
    let want = tree(reference);
    assert!(!want.is_empty());
    assert_eq!(tree(ours), want, "file lists differ");
    for f in &want {
        assert_eq!(
            pixels(&ours.join(f)),
            pixels(&reference.join(f)),
            "{f} differs from the reference"
        );
    }
}

fn build(input: &Path, out: &Path, min_size: u32) -> ctstack::Summary {
    build_with(input, out, min_size, ReadMode::Auto)
}

/// `build` with a read mode: `Buffered` streams the inputs by positional reads,
/// the others map them; both must give the same pyramid.
fn build_with(input: &Path, out: &Path, min_size: u32, mode: ReadMode) -> ctstack::Summary {
    let plan = PyramidBuilder::from_dir(input)
        .unwrap()
        .output_dir(out)
        .min_size(min_size)
        .read_mode(mode)
        .plan()
        .unwrap();
    plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap()
}

#[test]
fn fixture_stacks_give_the_reference_pyramids() {
    let f = common::fixtures();
    for (stack, reference, min_size) in [
        ("stack", "stack_reference", 80),
        ("stack_mixed", "stack_mixed_reference", 8),
        ("stack_u8", "stack_u8_reference", 10),
    ] {
        for mode in [ReadMode::Mmap, ReadMode::Buffered] {
            let out = temp_dir(&format!("fixture-{stack}-{}", mode.policy_name()));
            let summary = build_with(&f.join(stack), &out, min_size, mode);
            assert_eq!(summary.kept, 0);
            assert_same_pyramid(&out, &f.join(reference));
            std::fs::remove_dir_all(&out).unwrap();
        }
    }
}

/// The unsigned sample types, with the conversions this test needs.
trait Unsigned: Sample + Into<u32> + TryFrom<u32> {
    const MAX: u32;
}
impl Unsigned for u8 {
    const MAX: u32 = u8::MAX as u32;
}
impl Unsigned for u16 {
    const MAX: u32 = u16::MAX as u32;
}

fn random_stack<T: Unsigned>(dir: &Path, rng: &mut Rng, w: u32, h: u32, n: usize) -> Vec<Vec<u32>> {
    let max = T::MAX;
    let mut vol = Vec::new();
    for i in 0..n {
        let img: Vec<T> = (0..w * h)
            .map(|_| {
                let v = match rng.below(5) {
                    0 => 0,
                    1 => max,
                    _ => rng.below(u64::from(max) + 1) as u32,
                };
                T::try_from(v).unwrap_or_else(|_| unreachable!("{v} <= max"))
            })
            .collect();
        write_slice(&dir.join(format!("img{i}.tif")), w, h, &img).unwrap();
        vol.push(img.iter().map(|&v| v.into()).collect());
    }
    vol
}

fn check_random<T: Unsigned>(seed: u64) {
    let mut rng = Rng::new(seed);
    for (case, (w, h, n, min_size)) in [
        (1u32, 1u32, 1usize, 1u32),
        (2, 2, 1, 1),
        (3, 5, 2, 1),
        (17, 9, 5, 2),
        (33, 31, 7, 4),
        (64, 3, 3, 1),
        (40, 41, 12, 5),
    ]
    .into_iter()
    .enumerate()
    {
        let input = temp_dir(&format!("rand{}-{seed}-{case}", T::BITS));
        let out = input.join("out");
        let mut vol = random_stack::<T>(&input, &mut rng, w, h, n);
        // Cases alternate between the mapped and the streamed read path.
        let mode = [ReadMode::Mmap, ReadMode::Buffered][case % 2];
        build_with(&input, &out, min_size, mode);
        let shapes = level_shapes(w, h, n, min_size);
        let (mut cw, mut ch) = (w as usize, h as usize);
        for (k, shape) in shapes.iter().enumerate().skip(1) {
            let (next, nw, nh) = reference_volume(&vol, cw, ch);
            assert_eq!(
                (nw as u32, nh as u32, next.len()),
                (shape.width, shape.height, shape.count)
            );
            for (j, img) in next.iter().enumerate() {
                let got = pixels(&out.join(format!("{k}/{j:06}.tif")));
                assert_eq!(
                    got,
                    (nw as u32, nh as u32, img.clone()),
                    "{w}x{h}x{n} level {k} slice {j}"
                );
            }
            (vol, cw, ch) = (next, nw, nh);
        }
        assert_eq!(
            tree(&out).len() as u64,
            shapes[1..].iter().map(|s| s.count as u64).sum::<u64>()
        );
        std::fs::remove_dir_all(&input).unwrap();
    }
}

#[test]
fn random_u16_stacks_match_a_naive_reference() {
    check_random::<u16>(11);
}

#[test]
fn random_u8_stacks_match_a_naive_reference() {
    check_random::<u8>(12);
}

#[test]
fn level_rule_is_ctharvesters() {
    let shapes = level_shapes(2752, 2752, 64, 500);
    let sizes: Vec<_> = shapes.iter().map(|s| (s.width, s.count)).collect();
    assert_eq!(sizes, [(2752, 64), (1376, 32), (688, 16), (344, 8)]);
    assert_eq!(level_shapes(500, 500, 3, 500).len(), 1);
    assert_eq!(level_shapes(501, 10, 3, 500).len(), 2);
    // A dimension never reaches 0.
    assert_eq!(level_shapes(1000, 1, 4, 10).len(), 1);
}

fn copy_stack(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn resume_keeps_valid_outputs_and_rebuilds_damaged_ones() {
    let f = common::fixtures();
    let out = temp_dir("resume");
    build(&f.join("stack"), &out, 80);
    // Damage three outputs: delete one, truncate one, and put a level-2 file at a
    // level-1 name.
    std::fs::remove_file(out.join("1/000003.tif")).unwrap();
    let bytes = std::fs::read(out.join("1/000007.tif")).unwrap();
    std::fs::write(out.join("1/000007.tif"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::copy(out.join("2/000000.tif"), out.join("1/000009.tif")).unwrap();
    let before = std::fs::metadata(out.join("1/000000.tif"))
        .unwrap()
        .modified()
        .unwrap();

    // Files at output names that are neither what ctstack wrote nor a level
    // slice of this stack are not ctstack's to replace: refused, nothing changed.
    let plan = PyramidBuilder::from_dir(f.join("stack"))
        .unwrap()
        .output_dir(&out)
        .min_size(80)
        .plan()
        .unwrap();
    let manifest = std::fs::read(out.join(MANIFEST_FILE)).unwrap();
    let err = plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State, "{err}");
    assert!(
        err.to_string()
            .contains("2 files are at output names of the pyramid (1/000007.tif, 1/000009.tif)"),
        "{err}"
    );
    assert_eq!(std::fs::read(out.join(MANIFEST_FILE)).unwrap(), manifest);
    assert!(!out.join("1/000003.tif").exists());
    assert_eq!(
        std::fs::read(out.join("1/000007.tif")).unwrap(),
        &bytes[..bytes.len() / 2]
    );
    // Moved away by the user: those three are rebuilt, the rest kept.
    std::fs::remove_file(out.join("1/000007.tif")).unwrap();
    std::fs::remove_file(out.join("1/000009.tif")).unwrap();
    let summary = build(&f.join("stack"), &out, 80);
    assert_eq!(summary.rebuilt, 3, "{summary:?}");
    assert_eq!(summary.kept, 17 - 3);
    // Level 1 slices that were kept needed no input at all: only 3 pairs were read.
    assert_eq!(summary.input_bytes, 3 * 2 * 301 * 203 * 2);
    assert_eq!(
        std::fs::metadata(out.join("1/000000.tif"))
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
    assert_same_pyramid(&out, &f.join("stack_reference"));

    let again = build(&f.join("stack"), &out, 80);
    assert_eq!((again.rebuilt, again.kept, again.input_bytes), (0, 17, 0));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn cancel_leaves_only_complete_files() {
    let f = common::fixtures();
    let out = temp_dir("cancel");
    let plan = PyramidBuilder::from_dir(f.join("stack"))
        .unwrap()
        .output_dir(&out)
        .min_size(80)
        .plan()
        .unwrap();
    let cancel = CancelFlag::new();
    let mut seen = Vec::new();
    let err = plan
        .run(
            &mut |done, total| {
                seen.push((done, total));
                if done == 5 {
                    cancel.cancel();
                }
            },
            &cancel,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert!(
        seen.windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[1].0 <= w[1].1),
        "{seen:?}"
    );
    let files = tree(&out);
    assert!(!files.is_empty() && files.len() < 17, "{files:?}");
    for file in &files {
        assert!(file.ends_with(".tif"), "leftover {file}");
        let reference = f.join("stack_reference").join(file);
        assert_eq!(pixels(&out.join(file)), pixels(&reference), "{file}");
    }
    // Resuming completes the pyramid.
    let summary = build(&f.join("stack"), &out, 80);
    assert_eq!(summary.kept, files.len());
    assert_same_pyramid(&out, &f.join("stack_reference"));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn progress_reaches_total_and_never_goes_back() {
    let f = common::fixtures();
    let out = temp_dir("progress");
    let plan = PyramidBuilder::from_dir(f.join("stack"))
        .unwrap()
        .output_dir(&out)
        .min_size(80)
        .plan()
        .unwrap();
    let mut seen = Vec::new();
    plan.run(&mut |d, t| seen.push((d, t)), &CancelFlag::new())
        .unwrap();
    assert_eq!(seen.first(), Some(&(0, 17)));
    assert_eq!(seen.last(), Some(&(17, 17)));
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_mismatched_slice_is_named_before_anything_is_written() {
    let f = common::fixtures();
    let input = temp_dir("mismatch");
    copy_stack(&f.join("stack"), &input);
    std::fs::copy(
        f.join("slices/tifffile_u16_le_1strip.tif"),
        input.join("slice_0013.tif"),
    )
    .unwrap();
    let err = PyramidBuilder::from_dir(&input)
        .unwrap()
        .min_size(80)
        .plan()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Mismatch);
    assert!(err.to_string().contains("slice_0013.tif"), "{err}");
    assert!(!input.join(".thumbnail").exists());
    // A different depth is a mismatch too.
    std::fs::copy(
        f.join("stack_u8/slice_0000.tif"),
        input.join("slice_0013.tif"),
    )
    .unwrap();
    let err = PyramidBuilder::from_dir(&input)
        .unwrap()
        .plan()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Mismatch);
    std::fs::remove_dir_all(&input).unwrap();
}

#[test]
fn numbering_gaps_warn_or_fail_when_strict() {
    let f = common::fixtures();
    let input = temp_dir("gap");
    copy_stack(&f.join("stack"), &input);
    std::fs::remove_file(input.join("slice_0008.tif")).unwrap();
    std::fs::write(input.join("notes.txt"), "not a slice").unwrap();
    let plan = PyramidBuilder::from_dir(&input)
        .unwrap()
        .min_size(80)
        .plan()
        .unwrap();
    assert_eq!(plan.warnings().len(), 1);
    assert!(
        plan.warnings()[0].contains("slice_0007.tif is followed by slice_0009.tif"),
        "{:?}",
        plan.warnings()
    );
    assert_eq!(plan.levels()[0].count, 20);
    let err = PyramidBuilder::from_dir(&input)
        .unwrap()
        .strict(true)
        .plan()
        .unwrap_err();
    assert!(err.to_string().contains("number 8 is missing"), "{err}");
    std::fs::remove_dir_all(&input).unwrap();
}

#[test]
fn explicit_file_lists_and_buffered_reads_give_the_same_pyramid() {
    let f = common::fixtures();
    let out = temp_dir("files");
    let files = ctstack::stack::list_slices(&f.join("stack")).unwrap();
    let plan = PyramidBuilder::from_files(files, &out)
        .min_size(80)
        .threads(1)
        .read_mode(ctstack::ReadMode::Buffered)
        .plan()
        .unwrap();
    plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    assert_same_pyramid(&out, &f.join("stack_reference"));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn an_empty_directory_is_a_state_error_and_bad_options_usage_errors() {
    let input = temp_dir("empty");
    // The call is right; the folder holds no slices.
    let err = PyramidBuilder::from_dir(&input).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State, "{err}");
    assert_eq!(err.path(), Some(input.as_path()));
    let f = common::fixtures();
    let b = PyramidBuilder::from_dir(f.join("stack")).unwrap();
    assert_eq!(
        b.clone().min_size(0).plan().unwrap_err().kind(),
        ErrorKind::Usage
    );
    assert_eq!(b.threads(0).plan().unwrap_err().kind(), ErrorKind::Usage);
    std::fs::remove_dir_all(&input).unwrap();
}

/// A run that waits for another run's lock on the output folder does not count
/// the wait in `Summary::elapsed` (the CLI's GB/s and the C report's seconds).
#[test]
fn the_time_spent_waiting_for_the_lock_is_not_the_runs() {
    use std::time::{Duration, Instant};
    const HOLD: Duration = Duration::from_millis(1500);
    let out = temp_dir("lock-wait");
    std::fs::create_dir_all(&out).unwrap();
    // Held as another run holds it: on Unix a lock on the file; on Windows the
    // file open with no sharing, ctstack's lock there (File::lock's byte-range
    // lock is not; under Wine, unlocking it failed with a lock violation).
    #[cfg(not(windows))]
    let lock = {
        let lock = std::fs::File::create(out.join(ctstack::LOCK_FILE)).unwrap();
        lock.lock().unwrap();
        lock
    };
    #[cfg(windows)]
    let lock = {
        use std::os::windows::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .share_mode(0)
            .open(out.join(ctstack::LOCK_FILE))
            .unwrap()
    };
    let release = std::thread::spawn(move || {
        std::thread::sleep(HOLD);
        drop(lock);
    });
    let plan = PyramidBuilder::from_dir(common::fixtures().join("stack"))
        .unwrap()
        .output_dir(&out)
        .min_size(80)
        .plan()
        .unwrap();
    let started = Instant::now();
    let summary = plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap();
    let wall = started.elapsed();
    release.join().unwrap();
    assert!(wall >= HOLD, "the run did not wait: {wall:?}");
    // Not a speed check: a run that counted the wait would report nearly all of
    // `wall`; half the hold is a margin no loaded machine's scheduling eats.
    assert!(
        summary.elapsed + HOLD / 2 <= wall,
        "elapsed {:?} counts the wait (wall {wall:?})",
        summary.elapsed
    );
    std::fs::remove_dir_all(&out).unwrap();
}
