//! A stack's slices: the pages of its input files, found and checked once per
//! plan, each page's place and layout kept in the plan's page index
//! (`tiff/index.rs`) for every reader of the slices.
//!
//! Every file is opened once and its TIFF pages walked by positional reads of
//! small windows (`tiff/walk.rs`), never mapped and never read whole: a stack
//! saved as one multi-page file (ImageJ/Fiji, tifffile) costs a window per
//! page, a folder of single-page slices one window per file. Thumbnail pages
//! (marked as reduced-resolution copies) are passed over. Files are checked
//! a few at a time on scoped threads, since on a cold cache the time is the
//! disk's latency, not the CPU; errors are reported in stack order whatever
//! the order the reads finished in.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::slice::wanted_depth;
use crate::stack::SliceRef;
use crate::tiff::{IndexedPage, PageReader};
use crate::{Error, OpenOptions, SampleType, Slice, SliceHeader};

/// Header reads in flight at once: enough to keep a disk or a network
/// filesystem busy, few enough not to matter on a warm cache.
const READERS: usize = 8;

/// The slices of a stack, checked.
pub(crate) struct Inspected {
    /// Every slice, in stack order.
    pub slices: Vec<SliceRef>,
    /// By slice: its page as the check found it (the plan's page index).
    pub indexed: Vec<Option<IndexedPage>>,
    /// Slice 0's header.
    pub head: SliceHeader,
    /// Whether every slice's header was checked (not a slab task's partial view).
    pub all_checked: bool,
}

impl Inspected {
    /// Adds the slices of the file at `path`, each checked against slice 0 (`first`).
    fn add(&mut self, path: &Path, slices: FileSlices, first: &SliceRef) -> Result<(), Error> {
        let pages = slices.pages.into_iter();
        for (page, (header, indexed)) in pages.zip(slices.headers.into_iter().zip(slices.indexed)) {
            let slice = SliceRef::new(path, page);
            check_matches(&slice, &header, first, &self.head)?;
            self.slices.push(slice);
            self.indexed.push(indexed);
        }
        Ok(())
    }
}

/// What one file holds: one header per slice, and the page it is.
struct FileSlices {
    pages: Vec<usize>,
    headers: Vec<SliceHeader>,
    indexed: Vec<Option<IndexedPage>>,
}

/// Finds the slices of `files` and checks their headers against the first
/// slice's: every slice when `check` is `None`, else slice 0 and the slices of
/// `check` (slice indices) only.
///
/// Checking a part is for slab tasks of a large stack, which must not each
/// read every header: a stack whose first file holds one page is then taken
/// to be one slice per file (a checked file that holds more pages is a
/// mismatch); a stack of multi-page files is always walked whole, since its
/// slice numbers depend on every file's page count.
///
/// Errors: a header that does not parse, or a slice whose size, sample type or
/// photometric differs from slice 0's ([`Error::Mismatch`], naming both).
pub(crate) fn inspect(
    files: &[PathBuf],
    check: Option<Range<usize>>,
    options: &OpenOptions,
) -> Result<Inspected, Error> {
    let Some(first_file) = files.first() else {
        return Err(Error::usage("the stack is empty: no input slices"));
    };
    let first = inspect_file(first_file, options)?;
    let head = first.headers[0];
    // A slab task's view of a stack of single-page files: only its own files.
    let partial = check.is_some() && first.headers.len() == 1;
    let checked = match check {
        Some(range) if partial => range.start.max(1)..range.end.min(files.len()),
        _ => 1..files.len(),
    };
    let mut inspected = Inspected {
        slices: Vec::with_capacity(files.len()),
        indexed: Vec::with_capacity(files.len()),
        head,
        all_checked: !partial,
    };
    let first_slice = SliceRef::new(first_file, 0);
    inspected.add(first_file, first, &first_slice)?;
    let mut results = inspect_files(files, checked.clone(), options).into_iter();
    for (file, path) in files.iter().enumerate().skip(1) {
        if !checked.contains(&file) {
            // Not checked: taken as its page 0, its header left to the run.
            inspected.slices.push(SliceRef::new(path, 0));
            inspected.indexed.push(None);
            continue;
        }
        let slices = results.next().expect("one result per checked file")?;
        if partial && slices.headers.len() > 1 {
            return Err(Error::mismatch(format!(
                "{} holds {} pages, but {} holds one: a slab task reads a stack of \
                 single-page files; plan the whole stack instead",
                path.display(),
                slices.headers.len(),
                first_file.display()
            )));
        }
        inspected.add(path, slices, &first_slice)?;
    }
    Ok(inspected)
}

/// A mismatch error unless `header` (of `slice`) agrees with `head` (of `first`).
fn check_matches(
    slice: &SliceRef,
    header: &SliceHeader,
    first: &SliceRef,
    head: &SliceHeader,
) -> Result<(), Error> {
    let shape = |h: &SliceHeader| (h.width, h.height, h.sample_type, h.photometric);
    if shape(header) == shape(head) {
        return Ok(());
    }
    // 8- and 16-bit slices of one size can be converted to one depth.
    let depths = [header.sample_type, head.sample_type];
    let convertible = (header.width, header.height, header.photometric)
        == (head.width, head.height, head.photometric)
        && depths.contains(&SampleType::U8)
        && depths.contains(&SampleType::U16);
    let hint = if convertible {
        " (to convert them to one depth: \
         PyramidBuilder::convert_depth(SampleType::U8 or U16))"
    } else {
        ""
    };
    Err(Error::mismatch(format!(
        "{slice}: {}x{} {} {}, but {first} is {}x{} {} {}: all slices of a stack must match{hint}",
        header.width,
        header.height,
        header.sample_type,
        header.photometric.name(),
        head.width,
        head.height,
        head.sample_type,
        head.photometric.name()
    )))
}

/// [`inspect_file`] of `files[i]` for every `i` of `which`, [`READERS`] at a
/// time, results in order.
fn inspect_files(
    files: &[PathBuf],
    which: Range<usize>,
    options: &OpenOptions,
) -> Vec<Result<FileSlices, Error>> {
    let next = AtomicUsize::new(which.start);
    let threads = READERS.min(which.len());
    let mut results: Vec<Option<Result<FileSlices, Error>>> = Vec::new();
    results.resize_with(which.len(), || None);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let file = next.fetch_add(1, Ordering::Relaxed);
                        if file >= which.end {
                            return done;
                        }
                        done.push((file, inspect_file(&files[file], options)));
                    }
                })
            })
            .collect();
        for worker in workers {
            // A panic in a reader is a bug: pass it on as it is.
            for (file, result) in worker
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
            {
                results[file - which.start] = Some(result);
            }
        }
    });
    results
        .into_iter()
        .map(|r| r.expect("every index was claimed by a reader"))
        .collect()
}

/// The headers of every page of `path` (one for formats other than TIFF).
fn inspect_file(path: &Path, options: &OpenOptions) -> Result<FileSlices, Error> {
    let file = File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
    let Some(mut reader) = PageReader::open_file(path, &file, &options.limits)? else {
        // BMP, PNG, JPEG: one image, read as any header is.
        return Ok(FileSlices {
            pages: vec![0],
            headers: vec![Slice::read_header(path, options)?],
            indexed: vec![None],
        });
    };
    let stamp = reader.stamp().expect("an open file's reader has a stamp");
    let depth = wanted_depth(options)?;
    let mut slices = FileSlices {
        pages: Vec::new(),
        headers: Vec::new(),
        indexed: Vec::new(),
    };
    // A thumbnail page after the image is not a slice.
    reader.walk(true, |page, layout, at| {
        slices.pages.push(page);
        slices
            .headers
            .push(SliceHeader::of_tiff(&layout).served_as(depth));
        slices
            .indexed
            .push(Some(IndexedPage::new(layout, at, page, stamp)));
        Ok(())
    })?;
    Ok(slices)
}
