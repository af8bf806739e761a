//! Inputs in, chunks out, a band of rows at a time: the OME-Zarr writer.
//!
//! Every level is cut into *units*: `du` planes by `hu` rows by the level's
//! whole width, `du` and `hu` the grid cell's depth and height (the shard's
//! when sharded), doubled when odd so that a unit's planes and rows pair up
//! within it. Level-k+1 unit `(g, r)` is the 2x2x2 mean of four level-k
//! units: `(2g + dz, 2r + dy)`, `dz, dy` in 0..2, each of which makes one
//! quarter of it. So the units form a tree, and the writer walks it depth
//! first from each unit of the top level: a level-0 unit is read from the
//! inputs (rows `r * hu ..` of `du` slices, by the reading layer's region
//! reader: only those rows' bytes, each input byte once), its chunks are
//! encoded and stored, and its quarter of the unit above is averaged; a unit
//! above is stored once its four quarters are made, and so on up.
//!
//! One unit buffer per level: `du * hu * W_k` samples at level k, at most
//! `2 * du * hu * W * b` bytes for all levels of a `W`-wide stack of `b`-byte
//! samples, plus one chunk per worker while a unit is encoded. Flat in the
//! stack's height and depth: 45 MB for 2752-wide u16 slices at the default
//! chunks, 268 MB for 16384-wide ones.
//!
//! The levels are the TIFF pyramid's (the same kernels on the same rows and
//! planes: [`average_rows`], an odd last plane paired with itself, an odd last
//! row or column dropped); a plane past an array's depth (a TIFF level's last
//! plane that averages fewer than `2^k` slices: see the `zarr` module docs) is
//! computed when a level above needs it, and not stored.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use zarrs::array::{Array, ArrayBytes, CodecOptions};

use super::ZarrPlan;
use super::store::{AtomicFolder, from_zarrs};
use crate::decode::StripRows;
use crate::kernels::average_rows;
use crate::pyramid::{LevelShape, Plan};
use crate::region::{Page, Reach, Reading, Region, reach};
use crate::sample::with_sample_type;
use crate::source::{Bytes, FileStamp, Source};
use crate::{CancelFlag, Error, Kernel, Sample, SampleType, Slice};

/// Builds every chunk of every level that depends on inputs `span` (aligned
/// as [`ZarrPlan::run_slab`] says), storing them through `arrays`. Returns the
/// input pixel bytes read.
pub(crate) fn write_span(
    plan: &ZarrPlan,
    arrays: &[Array<AtomicFolder>],
    span: Range<usize>,
    progress: &mut dyn FnMut(u64, u64),
    cancel: &CancelFlag,
) -> Result<u64, Error> {
    let pool = plan.pyramid.thread_pool()?;
    with_sample_type!(plan.sample_type(), T => {
        let mut writer = Writer::<T>::new(plan, arrays, span, progress, cancel);
        writer.pool = pool;
        writer.run()?;
        Ok(writer.input_bytes)
    })
}

/// Where every unit lies, and how its chunks are stored: what the walk's
/// parallel steps share.
struct Layout<'a> {
    plan: &'a ZarrPlan,
    arrays: &'a [Array<AtomicFolder>],
    /// The TIFF pyramid's levels: widths, heights and plane counts (a level's
    /// last plane may average fewer than `2^k` slices).
    shapes: Vec<LevelShape>,
    /// The planes of the span at each level.
    planes: Vec<Range<usize>>,
    /// Unit depth and height (even, or the whole level).
    du: usize,
    hu: usize,
    options: CodecOptions,
    kernel: Kernel,
}

/// The state of one run over a span.
struct Writer<'a, T> {
    layout: Layout<'a>,
    /// One unit per level: `min(du, planes) x min(hu, height) x width` samples.
    units: Vec<Vec<T>>,
    /// The pool to work on (`None`: rayon's global pool). The walk itself,
    /// and so the progress callback, stays on the caller's thread.
    pool: Option<rayon::ThreadPool>,
    progress: &'a mut dyn FnMut(u64, u64),
    cancel: &'a CancelFlag,
    /// Progress: level-0 units read of all, and the units the caller counts.
    read: u64,
    reads: u64,
    total: u64,
    input_bytes: u64,
    /// The inputs read part way, by index: what is kept between their bands.
    open: HashMap<usize, Open>,
    /// The stamp of each input read part way, taken at its first band: a later
    /// band from another file (renamed over it, `rsync -a`, `cp -p`) or from the
    /// same file rewritten is an error, never rows of two files in one chunk.
    first_seen: HashMap<usize, FileStamp>,
    /// Whether an input read whole for its first band ([`Open::Held`]) is kept
    /// for its later bands: see [`HOLD_BUDGET`].
    hold: bool,
    /// What the decoders kept between bands hold: see [`STREAM_BUDGET`].
    streams: Arc<StreamBudget>,
}

/// What is kept of an input between its bands, from its first to its last:
/// the walk reads an input's bands top to bottom, in the same top-level unit
/// (see [`Writer::make`]), but reads the other inputs under that unit between
/// them, so up to `du * 2^top` inputs are open at once.
enum Open {
    /// A compressed TIFF page whose strips span bands: the strip's decoder,
    /// and its share of [`STREAM_BUDGET`].
    Strips(StripRows, Ticket),
    /// A PNG: the decoder, which gives rows in order, and its share.
    Png(Box<crate::formats::PngRows>, Ticket),
    /// Any other input read whole (JPEG, BMP, a page served at another depth),
    /// kept when [`Writer::hold`] says so.
    Held(Slice),
}

/// The most bytes of whole inputs ([`Open::Held`]) the walk may keep at once:
/// an input it reads whole (a JPEG, which cannot be decoded in parts; a BMP; a
/// page served at another depth) is kept from its first band to its last when
/// every input that can be open at once fits in this, and read again for each
/// band otherwise (no more memory than a band, at the cost of a decode per band).
/// 256 MiB: the memory the row-band writer needs at 16384 wide, so keeping
/// inputs never more than doubles it.
const HOLD_BUDGET: u64 = 256 << 20;

/// The most bytes the decoders kept between bands ([`Open::Strips`],
/// [`Open::Png`]) may hold at once, by what each can hold at most
/// ([`StripRows::most_bytes`]: the window a page's first ZSTD frame asks for,
/// capped at 8 MiB, is the large one; 2 MiB for tifffile's whole 2752^2
/// slices). Up to `du * 2^top` inputs can be open at once (a thousand with
/// deep chunks and many levels), so an input that would go over it is read
/// chunk by chunk for each band instead, as an input whose strips end with the
/// band is: the same pixels, a decode per band, no more memory than a band.
const STREAM_BUDGET: u64 = 256 << 20;

/// The bytes the kept decoders have reserved, of [`STREAM_BUDGET`]; shared by
/// the workers reading one unit's inputs in parallel.
#[derive(Debug, Default)]
struct StreamBudget(AtomicU64);

/// A reservation of [`StreamBudget`], given back when the decoder it was
/// taken for is dropped (after its input's last band, or on an error).
#[derive(Debug)]
struct Ticket {
    budget: Arc<StreamBudget>,
    bytes: u64,
}

impl StreamBudget {
    /// Reserves `bytes`, or `None` if that would pass [`STREAM_BUDGET`].
    fn take(self: &Arc<Self>, bytes: u64) -> Option<Ticket> {
        let mut used = self.0.load(Ordering::Relaxed);
        loop {
            let next = used.checked_add(bytes).filter(|&n| n <= STREAM_BUDGET)?;
            match self
                .0
                .compare_exchange_weak(used, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Some(Ticket {
                        budget: Arc::clone(self),
                        bytes,
                    });
                }
                Err(now) => used = now,
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.budget.0.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl<'a, T: Sample> Writer<'a, T> {
    fn new(
        plan: &'a ZarrPlan,
        arrays: &'a [Array<AtomicFolder>],
        span: Range<usize>,
        progress: &'a mut dyn FnMut(u64, u64),
        cancel: &'a CancelFlag,
    ) -> Self {
        let shapes = plan.pyramid.levels().to_vec();
        let [gz, gy, _] = plan.grid_shape().map(|n| n as usize);
        // Even, so that a plane pair and a row pair never straddle two units.
        let du = if gz.is_multiple_of(2) { gz } else { 2 * gz };
        let hu = if gy.is_multiple_of(2) { gy } else { 2 * gy };
        let planes: Vec<Range<usize>> = shapes
            .iter()
            .enumerate()
            .map(|(k, l)| (span.start >> k).min(l.count)..span.end.div_ceil(1 << k).min(l.count))
            .collect();
        let units = shapes
            .iter()
            .zip(&planes)
            .map(|(l, p)| {
                vec![T::default(); du.min(p.len()) * hu.min(l.height as usize) * l.width as usize]
            })
            .collect();
        // Progress counts the level-0 units read, of all of the span's.
        let reads =
            (span.end.div_ceil(du) - span.start / du) * (shapes[0].height as usize).div_ceil(hu);
        let total = match shapes.len() {
            1 => span.len() as u64,
            _ => planes[1..].iter().map(|p| p.len() as u64).sum(),
        };
        // Inputs under one top-level unit, open at once at most.
        let at_once = span.len().min(du << (shapes.len() - 1)) as u64;
        let slice_bytes = u64::from(shapes[0].width) * u64::from(shapes[0].height);
        let hold = at_once.saturating_mul(slice_bytes * size_of::<T>() as u64) <= HOLD_BUDGET;
        let layout = Layout {
            plan,
            arrays,
            shapes,
            planes,
            du,
            hu,
            // Chunks are encoded in parallel here, one per worker: zarrs is
            // asked not to split a chunk's encoding further. Every chunk is
            // stored, fill-valued ones too: a complete store has every chunk file.
            options: CodecOptions::default()
                .with_concurrent_target(1)
                .with_store_empty_chunks(true),
            kernel: Kernel::best(),
        };
        Writer {
            layout,
            units,
            pool: None,
            progress,
            cancel,
            read: 0,
            reads: reads as u64,
            total,
            input_bytes: 0,
            open: HashMap::new(),
            first_seen: HashMap::new(),
            hold,
            streams: Arc::default(),
        }
    }

    fn run(&mut self) -> Result<(), Error> {
        (self.progress)(0, self.total);
        let layout = &self.layout;
        let top = layout.shapes.len() - 1;
        let planes = layout.planes[top].clone();
        let bands = (layout.shapes[0].height as usize).div_ceil(layout.hu << top);
        for g in planes.start / layout.du..planes.end.div_ceil(layout.du) {
            for r in 0..bands {
                self.make(top, g, r)?;
                let (layout, unit) = (&self.layout, &self.units[top]);
                on(self.pool.as_ref(), || layout.store(top, g, r, unit))?;
            }
        }
        (self.progress)(self.total, self.total);
        Ok(())
    }

    /// Makes unit `(g, r)` of level `k` (from the inputs, or from the four
    /// units below it, each stored as soon as it is averaged into this one)
    /// and leaves it in its buffer, for the caller to store. A unit with no
    /// planes or rows of its own (rows past the level's height whose units
    /// below still hold the odd last row of theirs) only makes those.
    fn make(&mut self, k: usize, g: usize, r: usize) -> Result<(), Error> {
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let layout = &self.layout;
        let (planes, rows) = (layout.unit_planes(k, g), layout.unit_rows(k, r));
        let here = !planes.is_empty() && !rows.is_empty();
        if k == 0 {
            if here {
                self.read_inputs(g, r)?;
                self.read += 1;
                let done = u128::from(self.total) * u128::from(self.read)
                    / u128::from(self.reads.max(self.read));
                (self.progress)(done as u64, self.total);
            }
            return Ok(());
        }
        for (cg, cr) in [(0, 0), (0, 1), (1, 0), (1, 1)].map(|(dz, dy)| (2 * g + dz, 2 * r + dy)) {
            // A unit below with no rows of its own may still hold, below it,
            // the odd last row of a level: skipped only when no level-0 row
            // lies under it.
            let layout = &self.layout;
            let under = (cr * layout.hu) << (k - 1);
            if layout.unit_planes(k - 1, cg).is_empty() || under >= layout.shapes[0].height as usize
            {
                continue;
            }
            self.make(k - 1, cg, cr)?;
            // The unit below is stored while its quarter of this one is averaged.
            let layout = &self.layout;
            let (below, above) = self.units.split_at_mut(k);
            let (below, above) = (&below[k - 1], &mut above[0]);
            let (stored, ()) = on(self.pool.as_ref(), || {
                rayon::join(
                    || layout.store(k - 1, cg, cr, below),
                    || {
                        if here {
                            layout.average_into(k, (cg, cr), below, above);
                        }
                    },
                )
            });
            stored?;
        }
        Ok(())
    }

    /// Reads rows of unit band `r` of the inputs of level-0 unit `g` into
    /// level 0's buffer, one input per task.
    fn read_inputs(&mut self, g: usize, r: usize) -> Result<(), Error> {
        let layout = &self.layout;
        let (planes, rows) = (layout.unit_planes(0, g), layout.unit_rows(0, r));
        let stride = layout.plane_stride(0);
        let width = layout.shapes[0].width as usize;
        let pyramid = &layout.plan.pyramid;
        let region = Region {
            rows: rows.start as u32..rows.end as u32,
            cols: 0..width as u32,
        };
        let level0 = layout.shapes[0];
        let first = planes.start;
        let unit = &mut self.units[0];
        let hold = self.hold;
        let streams = &self.streams;
        let mut open: Vec<(Option<Open>, Option<FileStamp>)> = planes
            .clone()
            .map(|i| (self.open.remove(&i), self.first_seen.remove(&i)))
            .collect();
        on(self.pool.as_ref(), || {
            unit.par_chunks_mut(stride)
                .zip(open.par_iter_mut())
                .enumerate()
                .try_for_each(|(p, (plane, (open, first_seen)))| {
                    let dst = &mut plane[..rows.len() * width];
                    let input = Input {
                        i: first + p,
                        open,
                        first_seen,
                        hold,
                        streams,
                    };
                    read_rows(pyramid, input, level0, &region, dst)
                })
        })?;
        for (i, (kept, seen)) in planes.clone().zip(open) {
            if let Some(kept) = kept {
                self.open.insert(i, kept);
            }
            if let Some(seen) = seen {
                self.first_seen.insert(i, seen);
            }
        }
        self.input_bytes += (planes.len() * rows.len() * width * size_of::<T>()) as u64;
        Ok(())
    }
}

impl Layout<'_> {
    /// The planes of unit `g` of level `k` in the span.
    fn unit_planes(&self, k: usize, g: usize) -> Range<usize> {
        let p = &self.planes[k];
        (g * self.du).max(p.start)..((g + 1) * self.du).min(p.end)
    }

    /// The rows of unit band `r` of level `k`.
    fn unit_rows(&self, k: usize, r: usize) -> Range<usize> {
        let h = self.shapes[k].height as usize;
        (r * self.hu).min(h)..((r + 1) * self.hu).min(h)
    }

    /// Samples between two planes of level `k`'s unit buffer.
    fn plane_stride(&self, k: usize) -> usize {
        self.hu.min(self.shapes[k].height as usize) * self.shapes[k].width as usize
    }

    /// Averages level-`k - 1` unit `(cg, cr)` (in its buffer) into its quarter
    /// of level-`k` unit `(cg / 2, cr / 2)`.
    fn average_into<T: Sample>(
        &self,
        k: usize,
        (cg, cr): (usize, usize),
        below: &[T],
        above: &mut [T],
    ) {
        let (src, dst) = (self.shapes[k - 1], self.shapes[k]);
        let (g, r) = (cg / 2, cr / 2);
        let child_planes = self.unit_planes(k - 1, cg);
        let child_rows = self.unit_rows(k - 1, cr);
        // Output planes and rows whose first source lies in the child.
        let z_out = child_planes.start.div_ceil(2)..child_planes.end.div_ceil(2).min(dst.count);
        let z_out = z_out.start.max(self.planes[k].start)..z_out.end.min(self.planes[k].end);
        let y_out = child_rows.start.div_ceil(2)..(child_rows.end / 2).min(dst.height as usize);
        let (sw, dw) = (src.width as usize, dst.width as usize);
        let (s_stride, d_stride) = (
            self.hu.min(src.height as usize) * sw,
            self.hu.min(dst.height as usize) * dw,
        );
        let (child_z0, child_y0) = (child_planes.start, child_rows.start);
        let unit_z0 = (g * self.du).max(self.planes[k].start);
        let unit_y0 = r * self.hu;
        let last_plane = src.count - 1;
        let kernel = self.kernel;
        let mut jobs: Vec<(usize, usize, &mut [T])> = Vec::new();
        for (zi, plane) in above.chunks_mut(d_stride).enumerate() {
            let z = unit_z0 + zi;
            if !z_out.contains(&z) {
                continue;
            }
            let from = (y_out.start - unit_y0) * dw;
            let to = (y_out.end.max(y_out.start) - unit_y0) * dw;
            for (yi, row) in plane[from..to].chunks_exact_mut(dw.max(1)).enumerate() {
                jobs.push((z, y_out.start + yi, row));
            }
        }
        {
            jobs.into_par_iter()
                .with_min_len(8)
                .for_each(|(z, y, out)| {
                    let (a, b) = (2 * z, (2 * z + 1).min(last_plane));
                    let row = |p: usize, yy: usize| {
                        let at = (p - child_z0) * s_stride + (yy - child_y0) * sw;
                        &below[at..at + sw]
                    };
                    average_rows(
                        kernel,
                        row(a, 2 * y),
                        row(a, 2 * y + 1),
                        row(b, 2 * y),
                        row(b, 2 * y + 1),
                        &mut out[..dw],
                    );
                })
        }
    }

    /// Encodes and stores every chunk (shard) of level `k` that unit `(g, r)`
    /// holds: the planes within the array's depth, zero-padded past the level's
    /// edges (the arrays' fill value); MinIsWhite samples inverted.
    fn store<T: Sample>(&self, k: usize, g: usize, r: usize, unit: &[T]) -> Result<(), Error> {
        let depth = self.plan.levels()[k].count;
        let planes = self.unit_planes(k, g);
        let planes = planes.start..planes.end.min(depth);
        let rows = self.unit_rows(k, r);
        if planes.is_empty() || rows.is_empty() {
            return Ok(());
        }
        let [gz, gy, gx] = self.plan.grid_shape().map(|n| n as usize);
        let shape = self.shapes[k];
        let width = shape.width as usize;
        let stride = self.plane_stride(k);
        let unit_z0 = planes.start;
        let unit_y0 = rows.start;
        let b = size_of::<T>();
        let t = self.plan.sample_type();
        let inversion = self.plan.inversion;
        let cells: Vec<(usize, usize, usize)> = (planes.start / gz..planes.end.div_ceil(gz))
            .flat_map(|cz| {
                (rows.start / gy..rows.end.div_ceil(gy))
                    .flat_map(move |cy| (0..width.div_ceil(gx)).map(move |cx| (cz, cy, cx)))
            })
            .collect();
        let array = &self.arrays[k];
        let options = &self.options;
        {
            cells.into_par_iter().try_for_each(|(cz, cy, cx)| {
                let mut chunk = vec![0u8; gz * gy * gx * b];
                let x0 = cx * gx;
                let run = (width - x0).min(gx);
                let zs = cz * gz..((cz + 1) * gz).min(depth);
                let ys = cy * gy..((cy + 1) * gy).min(shape.height as usize);
                for z in zs.clone() {
                    for y in ys.clone() {
                        let src = (z - unit_z0) * stride + (y - unit_y0) * width + x0;
                        let dst = (((z - zs.start) * gy + (y - ys.start)) * gx) * b;
                        let out = &mut chunk[dst..dst + run * b];
                        out.copy_from_slice(bytemuck::cast_slice(&unit[src..src + run]));
                        if let Some(inversion) = inversion {
                            invert(t, inversion.max, out);
                        }
                    }
                }
                let at = [cz as u64, cy as u64, cx as u64];
                array
                    .store_chunk_opt(&at, ArrayBytes::new_flen(chunk), options)
                    .map_err(|e| {
                        // The store's own errors (create, write, rename) come
                        // back as they were, naming their file.
                        let key = array.chunk_key(&at);
                        let path = array.storage().path_of(key.as_str());
                        from_zarrs(e, &path, "cannot store chunk")
                    })
            })
        }
    }
}

/// Runs `f` on `pool` (`None`: where it is called, rayon's global pool).
fn on<R: Send>(pool: Option<&rayon::ThreadPool>, f: impl FnOnce() -> R + Send) -> R {
    match pool {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

/// An input being read, and what is kept of it between its bands.
struct Input<'a> {
    i: usize,
    open: &'a mut Option<Open>,
    /// The input's stamp at its first band (see [`Writer::first_seen`]).
    first_seen: &'a mut Option<FileStamp>,
    /// Whether an input read whole is kept for its later bands.
    hold: bool,
    /// The budget of the decoders kept between bands.
    streams: &'a Arc<StreamBudget>,
}

/// Reads `region` (whole rows) of input `i` of `pyramid` into `dst`, checking
/// that the input is still of the stack's size and type (`level0`): a raw or
/// compressed TIFF page through the reading layer (only the chunks that meet
/// the rows; mapped or by positional reads as [`reach`] decides; a compressed
/// page whose strips span bands by a [`StripRows`] kept in `open`, so each
/// strip is decoded once), a PNG by its decoder kept in `open` (rows in order),
/// anything else opened as a [`Slice`] (kept in `open` when `hold`) and its
/// rows copied. `open` is emptied after the input's last band.
fn read_rows<T: Sample>(
    pyramid: &Plan,
    Input {
        i,
        open,
        first_seen,
        hold,
        streams,
    }: Input<'_>,
    level0: LevelShape,
    region: &Region,
    dst: &mut [T],
) -> Result<(), Error> {
    let last_band = region.rows.end == level0.height;
    let input = &pyramid.inputs()[i];
    let indexed = pyramid.page_index().get(i);
    let options = pyramid.open_options();
    let path = input.path.as_path();
    let check = |(width, height, t): (u32, u32, SampleType)| {
        if (width, height, t) == (level0.width, level0.height, T::TYPE) {
            return Ok(());
        }
        Err(Error::mismatch_at(
            path,
            format!(
                "page {} changed since the plan: now {width}x{height} {t}, the stack is {}x{} {}",
                input.page,
                level0.width,
                level0.height,
                T::TYPE
            ),
        ))
    };
    let file = File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
    // The file of every band is the file of the first; forgotten after the last.
    let now = FileStamp::of(path, &file)?;
    match *first_seen {
        Some(first) if first != now => return Err(crate::source::changed_while_read(path)),
        _ => *first_seen = (!last_band).then_some(now),
    }
    let found = crate::tiff::locate(path, input.page, &file, indexed, &options.limits)?;
    // How the page is reached is the reading layer's one decision.
    let reached = reach(options, found.as_ref().map(|(l, _)| l), Reading::Region);
    match (reached, found) {
        (Reach::Positional | Reach::Mapped, Some((layout, stamp))) => {
            check((layout.width, layout.height, layout.sample_type))?;
            #[cfg(test)]
            crate::source::probe::pixels_read(path, size_of_val(dst) as u64);
            let page = |bytes| Page {
                path,
                bytes,
                index: input.page,
                layout: &layout,
            };
            let mut read = |page: Page<'_>, dst: &mut [T]| {
                let kept = Kept { open, streams };
                read_page(page, stamp, region, dst, &options.limits, kept, last_band)
            };
            if reached == Reach::Mapped {
                // Mapped by path: the map must be of the file located above.
                let (source, mapped) = Source::open_stamped(path, options.read_mode, false)?;
                if mapped != stamp || source.bytes().len() as u64 != stamp.len {
                    return Err(crate::source::changed_while_read(path));
                }
                read(page(Bytes::Memory(source.bytes())), dst)?;
                #[cfg(test)]
                tests::after_mapped_read(path);
                // As below: a file rewritten in place at the same size while
                // mapped may have given a mix of two versions.
                stamp.check_unchanged(path, &file)
            } else {
                let bytes = Bytes::File {
                    file: &file,
                    len: stamp.len,
                };
                read(page(bytes), dst)?;
                // A file rewritten meanwhile may have given a mix of two versions.
                stamp.check_unchanged(path, &file)
            }
        }
        (_, found) => {
            let png = match open.take() {
                Some(Open::Png(png, ticket)) => Some((png, ticket)),
                other => {
                    *open = other;
                    // A PNG is decoded in rows only if its decoder can be kept.
                    let ticket = match (&found, last_band) {
                        (None, false) => streams.take(png_bytes(level0)),
                        _ => None,
                    };
                    match ticket {
                        Some(ticket) => crate::formats::PngRows::open(path, file, options)?
                            .map(|png| (Box::new(png), ticket)),
                        None => None,
                    }
                }
            };
            if let Some((mut png, ticket)) = png {
                check(png.shape())?;
                png.read(path, region.rows.clone(), dst)?;
                if !last_band {
                    *open = Some(Open::Png(png, ticket));
                }
                return Ok(());
            }
            let slice = match open.take() {
                Some(Open::Held(slice)) => slice,
                _ => Slice::open_indexed(input, indexed, options)?,
            };
            check((slice.width(), slice.height(), slice.sample_type()))?;
            let rows = slice.rows::<T>()?;
            let width = region.width().max(1);
            for (y, out) in region.rows.clone().zip(dst.chunks_exact_mut(width)) {
                out.copy_from_slice(&rows.row(y as usize)[..width]);
            }
            if hold && !last_band {
                *open = Some(Open::Held(slice));
            }
            Ok(())
        }
    }
}

/// Reads `region` of a located TIFF `page` (its file's stamp `stamp`): by the
/// [`StripRows`] in `open` if the page is being read in bands, or by a new one
/// when its strips span bands ([`streams`]), else chunk by chunk.
fn read_page<T: Sample>(
    page: Page<'_>,
    stamp: FileStamp,
    region: &Region,
    dst: &mut [T],
    limits: &crate::Limits,
    Kept {
        open,
        streams: streams_budget,
    }: Kept<'_>,
    last_band: bool,
) -> Result<(), Error> {
    let whole_rows = region.cols == (0..page.layout.width);
    let kept = match open.take() {
        Some(Open::Strips(strips, ticket)) => {
            strips.check_stamp(page.path, stamp)?;
            Some((strips, ticket))
        }
        _ if whole_rows => match StripRows::start(&page, &region.rows, stamp, limits)? {
            Some(strips) => streams_budget
                .take(strips.most_bytes())
                .map(|ticket| (strips, ticket)),
            None => None,
        },
        _ => None,
    };
    let Some((strips, ticket)) = kept else {
        return page.read(region, dst, limits);
    };
    let strips = open.insert(Open::Strips(strips, ticket));
    let Open::Strips(strips, _) = strips else {
        unreachable!("just put")
    };
    if !strips.read(&page, region.rows.clone(), dst, limits)? {
        // A strip asks for a wider ZSTD window than was reserved: this band
        // and the page's later ones are read chunk by chunk.
        *open = None;
        return page.read(region, dst, limits);
    }
    if last_band {
        *open = None;
    }
    Ok(())
}

/// What is kept of an input between its bands, and the budget for it.
struct Kept<'a> {
    open: &'a mut Option<Open>,
    streams: &'a Arc<StreamBudget>,
}

/// The most a [`crate::formats::PngRows`] holds between bands: its read
/// buffer and inflate state (256 KiB with room), and a few rows of the widest
/// pixels a PNG has (RGBA, 16 bits: 8 bytes).
fn png_bytes(level0: LevelShape) -> u64 {
    (256 << 10) + 4 * u64::from(level0.width) * 8
}

/// Inverts MinIsWhite samples in place (native-endian bytes of `t`): `max - v`
/// for unsigned integers, `-1 - v` (`!v`) for `i16`, `-v` for `f32`; each exact.
fn invert(t: SampleType, max: u32, bytes: &mut [u8]) {
    match t {
        SampleType::U8 => bytes
            .iter_mut()
            .for_each(|b| *b = (max as u8).wrapping_sub(*b)),
        SampleType::U16 => bytes.chunks_exact_mut(2).for_each(|b| {
            let v = u16::from_ne_bytes([b[0], b[1]]);
            b.copy_from_slice(&(max as u16).wrapping_sub(v).to_ne_bytes());
        }),
        SampleType::I16 => bytes.chunks_exact_mut(2).for_each(|b| {
            let v = i16::from_ne_bytes([b[0], b[1]]);
            b.copy_from_slice(&(!v).to_ne_bytes());
        }),
        SampleType::F32 => bytes.chunks_exact_mut(4).for_each(|b| {
            let v = f32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            b.copy_from_slice(&(-v).to_ne_bytes());
        }),
    }
}

#[cfg(test)]
mod tests;
