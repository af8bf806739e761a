//! Slices in, chunks out: one band of slices per level, encoded and stored as
//! soon as it is whole.
//!
//! A level's band holds the slices of one row of chunks (of shards, when
//! sharded) along z: `D` slices, `D` the chunk's (shard's) depth. When its last
//! slice arrives, every chunk of the band is cut out (zero-padded past the
//! level's edges: the arrays' fill value), encoded by zarrs and stored through
//! [`AtomicFolder`], on rayon's workers; then the band is emptied for the next.
//! Level-0 slices are the inputs as the cascade read them to average them,
//! handed over once averaged ([`SliceSink::put_input`]): no input is read
//! twice. A stack with no level above its own is read here, each input once
//! ([`ZarrSink::read_input`]).
//!
//! Memory: one band per level, `D * W_k * H_k * b` bytes at level k (`b` bytes
//! per sample), at most `D * W * H * b * 4 / 3` for all levels together, plus
//! one chunk per worker while a band is encoded, plus the two input pairs the
//! cascade holds whole (one averaged while the other is handed over: `4 * W *
//! H * b` for streamed inputs); flat in the stack's depth.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use zarrs::array::{Array, ArrayBytes, CodecOptions};

use super::ZarrPlan;
use super::store::AtomicFolder;
use crate::pyramid::{LevelShape, SliceSink};
use crate::sample::with_sample_type;
use crate::{Error, Sample, SampleType, Slice};

/// A level's slices waiting for their band to be whole.
#[derive(Default)]
struct Band {
    /// The level index of the band's first slice.
    start: usize,
    /// The band's slices, one after the other; empty between bands.
    bytes: Vec<u8>,
}

/// The Zarr writer, as the cascade's [`SliceSink`].
pub(crate) struct ZarrSink<'a> {
    plan: &'a ZarrPlan,
    arrays: &'a [Array<AtomicFolder>],
    bands: Vec<Mutex<Band>>,
    options: CodecOptions,
    /// Input pixel bytes read here (a stack with no level above its own).
    input_bytes: AtomicU64,
}

impl<'a> ZarrSink<'a> {
    pub fn new(plan: &'a ZarrPlan, arrays: &'a [Array<AtomicFolder>]) -> ZarrSink<'a> {
        ZarrSink {
            plan,
            arrays,
            bands: (0..arrays.len()).map(|_| Mutex::default()).collect(),
            // Chunks are encoded in parallel here, one per worker: zarrs is
            // asked not to split a chunk's encoding further. Every chunk is
            // stored, fill-valued ones too: a complete store has every chunk file.
            options: CodecOptions::default()
                .with_concurrent_target(1)
                .with_store_empty_chunks(true),
            input_bytes: AtomicU64::new(0),
        }
    }

    /// Input pixel bytes read by [`ZarrSink::read_input`].
    pub fn input_bytes(&self) -> u64 {
        self.input_bytes.load(Ordering::Relaxed)
    }

    /// Reads input slice `i` and stores it as level-0 slice `i` (for a stack
    /// with no level above its own: the cascade hands the inputs over otherwise).
    pub fn read_input(&self, i: usize) -> Result<(), Error> {
        let input = &self.plan.pyramid.inputs()[i];
        let indexed = self.plan.pyramid.page_index().get(i);
        let slice = Slice::open_indexed(input, indexed, self.plan.pyramid.open_options())?;
        let level = self.plan.levels()[0];
        if (slice.width(), slice.height(), slice.sample_type())
            != (level.width, level.height, self.plan.sample_type())
        {
            return Err(Error::mismatch_at(
                &input.path,
                format!(
                    "page {} changed since the plan: now {}x{} {}, the stack is {}x{} {}",
                    input.page,
                    slice.width(),
                    slice.height(),
                    slice.sample_type(),
                    level.width,
                    level.height,
                    self.plan.sample_type()
                ),
            ));
        }
        self.input_bytes
            .fetch_add(slice.image_bytes() as u64, Ordering::Relaxed);
        // The rows go straight into the band.
        self.store_with(
            0,
            i,
            |dst| with_sample_type!(self.plan.sample_type(), T => copy_rows::<T>(&slice, dst)),
        )
    }

    /// Adds level-`k` slice `j` (`pixels`) to its band, and stores the band
    /// once whole. A plane past the array's depth (a TIFF level's last plane
    /// that averages fewer than `2^k` slices: see the `zarr` module docs) is
    /// not part of the array.
    fn store_slice(&self, k: usize, j: usize, pixels: &[u8]) -> Result<(), Error> {
        if j >= self.plan.levels()[k].count {
            return Ok(());
        }
        let expected = slice_bytes(self.plan.levels()[k], self.plan);
        if pixels.len() != expected {
            return Err(Error::mismatch(format!(
                "level {k} slice {j}: {} bytes, the level's slices have {expected}",
                pixels.len()
            )));
        }
        self.store_with(k, j, |dst| {
            dst.copy_from_slice(pixels);
            Ok(())
        })
    }

    /// Lets `fill` write level-`k` slice `j` into its place in the band, and
    /// stores the band once whole.
    fn store_with(
        &self,
        k: usize,
        j: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let shape = self.plan.levels()[k];
        let slice_bytes = slice_bytes(shape, self.plan);
        let depth = self.plan.band_depth();
        let mut band = self.bands[k].lock().unwrap_or_else(|e| e.into_inner());
        if band.bytes.is_empty() {
            band.start = j - j % depth;
            let slices = depth.min(shape.count - band.start);
            band.bytes.resize(slices * slice_bytes, 0);
        }
        let at = j.checked_sub(band.start).filter(|&at| at < depth);
        let Some(at) = at.filter(|&at| (at + 1) * slice_bytes <= band.bytes.len()) else {
            return Err(Error::mismatch(format!(
                "level {k} slice {j} arrived out of order (band from {})",
                band.start
            )));
        };
        let slot = &mut band.bytes[at * slice_bytes..(at + 1) * slice_bytes];
        fill(slot)?;
        if let Some(inversion) = self.plan.inversion {
            invert(self.plan.sample_type(), inversion.max, slot);
        }
        if (at + 1) * slice_bytes == band.bytes.len() {
            self.store_band(k, &band)?;
            band.bytes.clear();
        }
        Ok(())
    }

    /// Encodes and stores every chunk (shard) of a whole band of level `k`.
    fn store_band(&self, k: usize, band: &Band) -> Result<(), Error> {
        let shape = self.plan.levels()[k];
        let [gz, gy, gx] = self.plan.grid_shape().map(|n| n as usize);
        let (width, height) = (shape.width as usize, shape.height as usize);
        let b = self.plan.sample_type().bytes();
        let slices = band.bytes.len() / slice_bytes(shape, self.plan);
        let z = (band.start / gz) as u64;
        let tiles: Vec<(usize, usize)> = (0..height.div_ceil(gy))
            .flat_map(|cy| (0..width.div_ceil(gx)).map(move |cx| (cy, cx)))
            .collect();
        let array = &self.arrays[k];
        tiles.into_par_iter().try_for_each(|(cy, cx)| {
            let mut chunk = vec![0u8; gz * gy * gx * b];
            let x0 = cx * gx;
            let run = (width - x0).min(gx) * b;
            for s in 0..slices {
                let plane = &band.bytes[s * width * height * b..];
                for y in 0..gy.min(height - cy * gy) {
                    let src = ((cy * gy + y) * width + x0) * b;
                    let dst = (s * gy + y) * gx * b;
                    chunk[dst..dst + run].copy_from_slice(&plane[src..src + run]);
                }
            }
            array
                .store_chunk_opt(
                    &[z, cy as u64, cx as u64],
                    ArrayBytes::new_flen(chunk),
                    &self.options,
                )
                .map_err(|e| {
                    // The store's own errors (create, write, rename) name the file already.
                    let key = array.chunk_key(&[z, cy as u64, cx as u64]);
                    let path = array.storage().path_of(key.as_str());
                    Error::io(
                        &path,
                        "cannot store chunk",
                        std::io::Error::other(e.to_string()),
                    )
                })
        })
    }
}

impl SliceSink for ZarrSink<'_> {
    fn put(&self, k: usize, j: usize, pixels: &[u8]) -> Result<(), Error> {
        self.store_slice(k, j, pixels)
    }

    fn put_input(
        &self,
        i: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.store_with(0, i, fill)
    }
}

/// Bytes of one slice of `shape`.
fn slice_bytes(shape: LevelShape, plan: &ZarrPlan) -> usize {
    shape.width as usize * shape.height as usize * plan.sample_type().bytes()
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

/// Copies `slice`'s rows, as bytes, into `out` (exactly its size).
fn copy_rows<T: Sample>(slice: &Slice, out: &mut [u8]) -> Result<(), Error> {
    let rows = slice.rows::<T>()?;
    let row_bytes = rows.width() * size_of::<T>();
    for (y, dst) in out.chunks_exact_mut(row_bytes).enumerate() {
        dst.copy_from_slice(bytemuck::cast_slice(rows.row(y)));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
