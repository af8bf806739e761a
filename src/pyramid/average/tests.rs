//! The streamed path must give exactly what the mapped path gives: same bytes
//! out, for every layout it accepts, with every kernel and band size.

use std::path::{Path, PathBuf};

use super::*;
use crate::OpenOptions;
use crate::Slice;
use crate::pyramid::input::Input;
use crate::sample::with_sample_type;
use crate::stack::SliceRef;
use crate::tiff::{IndexedPage, PageReader};
use crate::{ErrorKind, ReadMode, SampleType, average_pair_with};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixture(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tif"))
        .collect();
    v.sort();
    v
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("ctstack-chunked-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `path` (page 0) opened as the pyramid opens its inputs.
fn open_input(
    path: &Path,
    options: &OpenOptions,
    indexed: Option<&IndexedPage>,
) -> Result<Input, Error> {
    Input::open(&SliceRef::new(path, 0), options, indexed)
}

fn mapped() -> OpenOptions {
    OpenOptions {
        read_mode: ReadMode::Mmap,
        ..OpenOptions::default()
    }
}

/// What the mapped (or decoded) slices give with `average_pair_with`.
fn expected<T: Sample>(kernel: Kernel, a: &Path, b: &Path) -> Vec<T> {
    let (sa, sb) = (
        Slice::open_with(a, &mapped()).unwrap(),
        Slice::open_with(b, &mapped()).unwrap(),
    );
    let (ra, rb) = (sa.rows::<T>().unwrap(), sb.rows::<T>().unwrap());
    let mut out = vec![T::default(); (ra.width() / 2) * (ra.height() / 2)];
    average_pair_with(kernel, &ra, &rb, &mut out).unwrap();
    out
}

/// The streamed result for `a` and `b` (`b == a`: the pair of one), band by band.
fn streamed<T: Sample>(kernel: Kernel, a: &Path, b: &Path, band: usize) -> Vec<T> {
    let options = OpenOptions::default();
    let ia = open_input(a, &options, None).unwrap();
    let ib = (a != b).then(|| open_input(b, &options, None).unwrap());
    let (w, h) = ia.size();
    let mut out = vec![T::default(); (w as usize / 2) * (h as usize / 2)];
    average_in_bands(
        kernel,
        &ia,
        ib.as_ref(),
        &mut out,
        band,
        &BandBuffers::default(),
    )
    .unwrap();
    let mut whole = vec![T::default(); out.len()];
    average_inputs(
        kernel,
        &ia,
        ib.as_ref(),
        &mut whole,
        &BandBuffers::default(),
    )
    .unwrap();
    assert_eq!(whole, out, "{}: default band size", a.display());
    out
}

fn assert_same(a: &Path, b: &Path) {
    let ty = Slice::open(a).unwrap().sample_type();
    for kernel in Kernel::available() {
        for band in [1, 2, 3, 7, 1000] {
            with_sample_type!(ty, T => {
                assert_eq!(
                    streamed::<T>(kernel, a, b, band),
                    expected::<T>(kernel, a, b),
                    "{} + {}: kernel {}, {band} rows per band",
                    a.display(),
                    b.display(),
                    kernel.name()
                );
            });
        }
    }
}

#[test]
fn stack_pairs_match_the_mapped_path() {
    for dir in ["stack", "stack_u8"] {
        let paths = files(dir);
        for pair in paths.chunks(2) {
            assert_same(&pair[0], pair.get(1).unwrap_or(&pair[0]));
        }
    }
}

#[test]
fn every_readable_layout_matches_the_mapped_path() {
    // Big- and little-endian, odd offsets, reversed strips with gaps, SHORT
    // tags, BigTIFF, IFD after the pixels, and the compressed and tiled files
    // that go through `Slice`, each paired with itself.
    let mut streamed_kinds = 0;
    for path in files("slices") {
        let Ok(slice) = Slice::open(&path) else {
            continue;
        };
        if slice.width() < 2 || slice.height() < 2 {
            continue;
        }
        if let Input::Streamed(_) = open_input(&path, &OpenOptions::default(), None).unwrap() {
            streamed_kinds += 1;
        }
        assert_same(&path, &path);
    }
    assert!(
        streamed_kinds >= 10,
        "only {streamed_kinds} fixtures took the streamed path"
    );
}

#[test]
fn big_endian_and_scattered_strips_are_streamed() {
    for name in [
        "tifffile_u16_be.tif",
        "tiffcp_u16_be.tif",
        "hand_u16_strips_reversed_gaps.tif",
        "hand_u16_odd_offset.tif",
    ] {
        let path = fixture(&format!("slices/{name}"));
        assert!(
            matches!(
                open_input(&path, &OpenOptions::default(), None).unwrap(),
                Input::Streamed(_)
            ),
            "{name} was not streamed"
        );
    }
    let lzw = fixture("slices/tifffile_u16_lzw.tif");
    assert!(matches!(
        open_input(&lzw, &OpenOptions::default(), None).unwrap(),
        Input::Opened(_)
    ));
}

#[test]
fn a_streamed_and_a_decoded_slice_pair_up() {
    let dir = TempDir::new("mixed");
    let raw = dir.0.join("raw.tif");
    let lzw = fixture("slices/tifffile_u16_lzw.tif");
    let decoded = Slice::open(&lzw).unwrap();
    let pixels = decoded.contiguous::<u16>().unwrap().to_vec();
    crate::write_slice(&raw, decoded.width(), decoded.height(), &pixels).unwrap();
    assert_same(&raw, &lzw);
    assert_same(&lzw, &raw);
}

#[test]
fn odd_sizes_and_extremes_match_the_mapped_path() {
    let dir = TempDir::new("odd");
    for (w, h) in [(2, 2), (3, 3), (37, 23), (1001, 5), (4, 1001)] {
        let n = (w * h) as usize;
        let a: Vec<u16> = (0..n)
            .map(|i| {
                if i % 3 == 0 {
                    u16::MAX
                } else {
                    (i * 7919) as u16
                }
            })
            .collect();
        let b: Vec<u16> = (0..n)
            .map(|i| {
                if i % 5 == 0 {
                    u16::MAX
                } else {
                    (i * 104_729) as u16
                }
            })
            .collect();
        let (pa, pb) = (
            dir.0.join(format!("a_{w}x{h}.tif")),
            dir.0.join(format!("b_{w}x{h}.tif")),
        );
        crate::write_slice(&pa, w, h, &a).unwrap();
        crate::write_slice(&pb, w, h, &b).unwrap();
        assert_same(&pa, &pb);
        let a8: Vec<u8> = a.iter().map(|&v| (v >> 3) as u8).collect();
        let b8: Vec<u8> = b.iter().map(|&v| v as u8).collect();
        crate::write_slice(&pa, w, h, &a8).unwrap();
        crate::write_slice(&pb, w, h, &b8).unwrap();
        assert_same(&pa, &pb);
    }
}

#[test]
fn a_file_truncated_after_open_is_an_error_naming_it() {
    let dir = TempDir::new("truncated");
    let (w, h) = (300u32, 200u32);
    let path = dir.0.join("shrinks.tif");
    crate::write_slice(&path, w, h, &vec![1000u16; (w * h) as usize]).unwrap();
    let input = open_input(&path, &OpenOptions::default(), None).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let mut out = vec![0u16; (w as usize / 2) * (h as usize / 2)];
    let err = average_inputs(
        Kernel::best(),
        &input,
        None,
        &mut out,
        &BandBuffers::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert_eq!(err.path(), Some(path.as_path()), "{err}");
    assert!(err.to_string().contains("shrank"), "{err}");
}

#[test]
fn a_file_rewritten_after_open_is_an_error() {
    let dir = TempDir::new("rewritten");
    let path = dir.0.join("changes.tif");
    crate::write_slice(&path, 64, 64, &vec![7u16; 64 * 64]).unwrap();
    let input = open_input(&path, &OpenOptions::default(), None).unwrap();
    // Same length, new contents, a later modification time.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let mut out = vec![0u16; 32 * 32];
    let err = average_inputs(
        Kernel::best(),
        &input,
        None,
        &mut out,
        &BandBuffers::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(
        err.to_string().contains("changed while it was read"),
        "{err}"
    );
}

#[test]
fn mismatched_pairs_are_refused() {
    let stack = files("stack");
    let u8s = files("stack_u8");
    let options = OpenOptions::default();
    let (a, b) = (
        open_input(&stack[0], &options, None).unwrap(),
        open_input(&u8s[0], &options, None).unwrap(),
    );
    let (w, h) = a.size();
    let mut out = vec![0u16; (w as usize / 2) * (h as usize / 2)];
    assert_eq!(
        average_inputs(
            Kernel::best(),
            &a,
            Some(&b),
            &mut out,
            &BandBuffers::default()
        )
        .unwrap_err()
        .kind(),
        ErrorKind::Mismatch
    );
    let mut short = vec![0u16; 3];
    assert_eq!(
        average_inputs(
            Kernel::best(),
            &a,
            None,
            &mut short,
            &BandBuffers::default()
        )
        .unwrap_err()
        .kind(),
        ErrorKind::Mismatch
    );
    assert_eq!(a.sample_type(), SampleType::U16);
}

#[test]
fn a_planned_header_is_used_only_while_the_file_is_unchanged() {
    let dir = TempDir::new("planned");
    let path = dir.0.join("slice.tif");
    crate::write_slice(&path, 40, 30, &vec![9u16; 40 * 30]).unwrap();
    let options = OpenOptions {
        read_mode: ReadMode::Buffered,
        ..OpenOptions::default()
    };
    let file = std::fs::File::open(&path).unwrap();
    let mut reader = PageReader::open_file(&path, &file, &options.limits)
        .unwrap()
        .unwrap();
    let mut planned = None;
    let stamp = reader.stamp().unwrap();
    reader
        .walk(false, |_, layout, at| {
            assert_eq!((layout.width, layout.height), (40, 30));
            planned = Some(IndexedPage::new(layout, at, 0, stamp));
            Ok(())
        })
        .unwrap();
    let planned = planned.unwrap();
    assert!(planned.keeps_layout(), "a one-strip header is kept");
    let Input::Streamed(s) = open_input(&path, &options, Some(&planned)).unwrap() else {
        panic!("not streamed");
    };
    assert_eq!(s.stamp, planned.stamp());
    // Windows cannot rename over a file that is open (Wine, and Windows before
    // POSIX rename semantics): this "program" closes it before the rewrite.
    drop(s);
    drop(reader);
    drop(file);
    // Rewritten with another size: the planned header is stale and not used.
    std::thread::sleep(std::time::Duration::from_millis(20));
    crate::write_slice(&path, 20, 10, &vec![9u16; 20 * 10]).unwrap();
    let input = open_input(&path, &options, Some(&planned)).unwrap();
    assert_eq!(input.size(), (20, 10));
}

/// Two workers read a streamed pair's bands in order, each file front to back
/// as one stream: a read starts at most one band (the other worker's claim)
/// before the furthest one started so far, unless its worker was preempted
/// between its claim and its read (rare: at most a quarter of the reads is
/// allowed). Split in halves, the second worker started in the middle of each
/// file and about half of the reads came after one further on (the kernel's
/// read-ahead then saw no sequence: `input::hinted`).
#[test]
fn bands_are_read_in_order_by_every_worker() {
    let dir = TempDir::new("in-order");
    let (w, h) = (1024u32, 800u32);
    let (pa, pb) = (dir.0.join("a.tif"), dir.0.join("b.tif"));
    let pixels: Vec<u16> = (0..w * h).map(|i| (i % 65_536) as u16).collect();
    crate::write_slice(&pa, w, h, &pixels).unwrap();
    crate::write_slice(&pb, w, h, &pixels).unwrap();
    let options = OpenOptions {
        read_mode: ReadMode::Buffered,
        ..OpenOptions::default()
    };
    let (ia, ib) = (
        open_input(&pa, &options, None).unwrap(),
        open_input(&pb, &options, None).unwrap(),
    );
    assert!(matches!(ia, Input::Streamed(_)));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let band = 1; // output rows per task: two input rows per read
    let mut out = vec![0u16; (w as usize / 2) * (h as usize / 2)];
    pool.install(|| {
        average_in_bands(
            Kernel::Scalar,
            &ia,
            Some(&ib),
            &mut out,
            band,
            &BandBuffers::default(),
        )
    })
    .unwrap();
    for path in [&pa, &pb] {
        let reads = crate::source::probe::rows_reads(path);
        assert_eq!(reads.len(), h as usize / 2, "{}", path.display());
        let mut furthest = 0;
        let mut behind = 0;
        for &y0 in &reads {
            if y0 + 2 * band < furthest {
                behind += 1;
            }
            furthest = furthest.max(y0);
        }
        assert!(
            behind <= reads.len() / 4,
            "{}: {behind} of {} reads started more than a band before one already started: {reads:?}",
            path.display(),
            reads.len()
        );
    }
}
