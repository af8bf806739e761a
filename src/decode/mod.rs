//! Decoding compressed TIFF images (LZW, Deflate, PackBits, JPEG, ZSTD, predictors):
//! LZW, Deflate, ZSTD and PackBits chunks by ctstack, straight into the slice's
//! buffer ([`direct`], with its own LZW decoder [`lzw`], for speed), everything
//! else by the `tiff` crate ([`tiff_crate`]). Both run behind the same budget checks,
//! one chunk at a time ([`ChunkDecoder`]), so that a read of a region decodes
//! only the chunks that meet it (`crate::region`).

mod direct;
mod jpeg_probe;
mod lzw;
mod stream;
mod tiff_crate;

pub(crate) use stream::StripRows;

use std::path::Path;

use crate::error::{Problem, format_problem};
use crate::sample::Sample;
use crate::source::{Bytes, PositionalReader};
use crate::tiff::{Compression, ImageLayout};
use crate::{Error, Limits};

/// Decodes the compressed chunks of one page, one at a time: by ctstack's
/// direct decoder where it reads them, else by the `tiff` crate. One per thread: the
/// `tiff` crate's decoder keeps a position in the file.
pub(crate) struct ChunkDecoder<'a> {
    path: &'a Path,
    bytes: Bytes<'a>,
    /// The compressed bytes of a chunk, for files read by positional reads.
    scratch: Vec<u8>,
    by: By<'a>,
}

/// Which decoder reads the page's chunks.
enum By<'a> {
    /// Boxed: it holds the inflater's state, made once per thread.
    Direct(Box<direct::Direct>),
    /// Boxed: the crate's decoder is large, and made once per thread.
    TiffCrate(Box<tiff_crate::TiffCrate<'a>>),
}

impl<'a> ChunkDecoder<'a> {
    /// A decoder of page `index` (in chain order) of the file at `path`, read
    /// from `bytes`, whose layout `layout` is validated and compressed.
    ///
    /// The page is checked against `limits` first ([`check_ratio`]).
    pub fn new(
        path: &'a Path,
        bytes: Bytes<'a>,
        index: usize,
        layout: &ImageLayout,
        limits: &Limits,
    ) -> Result<ChunkDecoder<'a>, Error> {
        let at = |p: Problem| p.on_page(index).at(path);
        check_ratio((path, index), layout, bytes, limits)?;
        let mut scratch = Vec::new();
        let first = match (layout.offsets.first(), layout.byte_counts.first()) {
            // Two bytes tell the LZW code style.
            (Some(&offset), Some(&count)) => {
                let len = count.min(2) as usize;
                bytes.with_range(path, (offset, len), &mut scratch, <[u8]>::to_vec)?
            }
            _ => Vec::new(),
        };
        let by = if layout.largest_ascii > bytes.len() {
            // The `tiff` crate allocates an ASCII tag's count in full and, when that
            // is over its limit, refuses through a stray `dbg!` (tiff 0.11.3, the
            // newest release) that prints to the user's terminal. A count beyond the
            // file is the file's fault, said here, for the direct decoder too (one
            // rule for the page whichever decoder reads it); any other fits the
            // crate's limit, which is raised to it (at most the file's length).
            return Err(at(format_problem!(
                "an ASCII tag claims {} bytes, more than the whole file ({} bytes)",
                layout.largest_ascii,
                bytes.len()
            )));
        } else if direct::reads(layout, &first) {
            By::Direct(Box::default())
        } else {
            let reader = PositionalReader::new(bytes);
            By::TiffCrate(Box::new(
                tiff_crate::TiffCrate::new(reader, (index, layout.ifd_offset), layout)
                    .map_err(at)?,
            ))
        };
        Ok(ChunkDecoder {
            path,
            bytes,
            scratch,
            by,
        })
    }

    /// Decodes chunk `chunk` of the page into `dst`, which holds its data (the
    /// chunk without padding, `layout.chunk_rect(chunk)`) row-major. A JPEG
    /// chunk the decoder cannot read is refused as Unsupported first.
    pub fn decode<T: Sample>(
        &mut self,
        layout: &ImageLayout,
        chunk: usize,
        dst: &mut [T],
        limits: &Limits,
    ) -> Result<(), Problem> {
        let (offset, count) = (layout.offsets[chunk], layout.byte_counts[chunk]);
        let len = chunk_len(count, limits)?;
        let (path, bytes) = (self.path, self.bytes);
        // The chunk was checked to lie in the file: a read that fails means
        // the file shrank since.
        let unreadable = |e: Error| format_problem!("cannot read chunk {chunk}: {e}");
        if layout.compression == Compression::Jpeg {
            bytes
                .with_range(
                    path,
                    (offset, len),
                    &mut self.scratch,
                    jpeg_probe::check_chunk,
                )
                .map_err(unreadable)??;
        }
        #[cfg(test)]
        probe::decoded(path, size_of_val(dst) as u64);
        // Old-style (pre-1992, LSB-first) LZW is told by a chunk's first bytes,
        // chunk by chunk: a page two writers made can mix the styles. Neither
        // ctstack's decoder nor the `tiff` crate's reads old-style codes (the
        // crate calls them corrupt; libtiff decodes every strip with the first
        // strip's decoder), so such a chunk is refused, named, never decoded
        // as the other style into other pixels.
        let lzw = layout.compression == Compression::Lzw;
        let same_style = move |data: &[u8]| match lzw && lzw::is_old_style(data) {
            true => Err(old_style_lzw(layout, chunk)),
            false => Ok(()),
        };
        match &mut self.by {
            By::Direct(direct) => bytes
                .with_range(path, (offset, len), &mut self.scratch, |data| {
                    same_style(data)?;
                    direct.decode_chunk(data, layout, chunk, dst, limits)
                })
                .map_err(unreadable)?,
            By::TiffCrate(decoder) => {
                if lzw {
                    let head = (offset, len.min(2));
                    bytes
                        .with_range(path, head, &mut self.scratch, same_style)
                        .map_err(unreadable)??;
                }
                decoder.decode_chunk(chunk, dst)
            }
        }
    }
}

/// The refusal of chunk `chunk` of `layout`, in old-style LZW codes.
fn old_style_lzw(layout: &ImageLayout, chunk: usize) -> Problem {
    let kind = match layout.chunks {
        crate::tiff::Chunks::Strips { .. } => "strip",
        _ => "tile",
    };
    Problem::Unsupported(format!(
        "{kind} {chunk} is in old-style (pre-1992, LSB-first) LZW codes, which ctstack does \
         not decode: convert the file with a reader that does (tifffile)"
    ))
}

/// The most bytes ZSTD can inflate one byte to: an RLE block stores up to 128 KiB
/// in 4 bytes (a 3-byte header and the byte repeated). A blank slice nears it.
const ZSTD_MAX_RATIO: u64 = 1 << 15;

/// Refuses a compressed page whose decoded size is beyond its compressed size
/// (at most the file's) times [`Limits::max_compression_ratio`]: a decompression
/// bomb. Checked before any buffer for its pixels is made.
///
/// Deflate, LZW, PackBits and JPEG cannot go beyond about 1400:1, but ZSTD can
/// (a blank 2048x2048 slice from tifffile is 10000:1): a ZSTD page beyond the
/// limit and within [`ZSTD_MAX_RATIO`] is inflated once first, counting bytes in
/// a small buffer, and believed if every chunk holds what the layout says.
pub(crate) fn check_ratio(
    (path, index): (&Path, usize),
    layout: &ImageLayout,
    bytes: Bytes<'_>,
    limits: &Limits,
) -> Result<(), Error> {
    let at = |p: Problem| p.on_page(index).at(path);
    let Err(refusal) = check_claimed_ratio(layout, bytes.len(), limits.max_compression_ratio)
    else {
        return Ok(());
    };
    if layout.compression != Compression::Zstd
        || check_claimed_ratio(layout, bytes.len(), ZSTD_MAX_RATIO).is_err()
    {
        return Err(at(refusal));
    }
    let mut scratch = Vec::new();
    for (chunk, (&offset, &count)) in layout.offsets.iter().zip(&layout.byte_counts).enumerate() {
        let want = layout.raw_chunk_bytes(chunk);
        let len = chunk_len(count, limits).map_err(at)?;
        let got = bytes.with_range(path, (offset, len), &mut scratch, |data| {
            zstd_inflated_len(data, want)
        })?;
        if got < want {
            return Err(at(Problem::Limits(format!(
                "{refusal_what}; chunk {chunk} inflates to {got} bytes, not the {want} its \
                 size claims",
                refusal_what = match &refusal {
                    Problem::Limits(w) => w.as_str(),
                    _ => "a decompression bomb",
                }
            ))));
        }
    }
    Ok(())
}

/// How many bytes the ZSTD frames in `data` inflate to, counted up to `want`
/// (0 for a stream that is not ZSTD or breaks off: the caller refuses it). The
/// decoder's window is capped at what `want` bytes can need (at least 8 MiB, what
/// encoders use at their default levels), so a forged frame header cannot make it
/// allocate more.
fn zstd_inflated_len(data: &[u8], want: u64) -> u64 {
    use std::io::Read;
    let Ok(mut decoder) = zstd::stream::read::Decoder::with_buffer(data) else {
        return 0;
    };
    let window_log = (64 - want.saturating_sub(1).leading_zeros()).clamp(23, 31);
    if decoder.window_log_max(window_log).is_err() {
        return 0;
    }
    let mut buffer = vec![0u8; 1 << 16];
    let mut got = 0u64;
    while got < want {
        match decoder.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n as u64,
        }
    }
    got
}

/// [`check_ratio`]'s test of the layout's claim against `ratio`, before decoding.
fn check_claimed_ratio(layout: &ImageLayout, file_len: u64, ratio: u64) -> Result<(), Problem> {
    let image_bytes = layout.image_bytes();
    // Chunks may overlap (every strip pointing at the same bytes), so the byte
    // counts can add up to more than the file; the compressed data cannot be
    // larger than the file itself, whatever they claim.
    let compressed: u64 = layout
        .byte_counts
        .iter()
        .fold(0u64, |a, &b| a.saturating_add(b))
        .min(file_len);
    if image_bytes > compressed.saturating_mul(ratio) {
        return Err(Problem::Limits(format!(
            "{} claims {image_bytes} decoded bytes from {compressed} compressed bytes, \
             a ratio above the limit of {ratio}:1 (a decompression bomb)",
            layout.compression.name(),
        )));
    }
    Ok(())
}

/// A chunk's byte count as a length to read, within the decode budget.
fn chunk_len(count: u64, limits: &Limits) -> Result<usize, Problem> {
    usize::try_from(count)
        .ok()
        .filter(|_| count <= limits.max_decoded_bytes)
        .ok_or_else(|| {
            Problem::Limits(format!(
                "a chunk of {count} compressed bytes, more than the limit of {}",
                limits.max_decoded_bytes
            ))
        })
}

/// Refuses a pixel buffer larger than `limits.max_decoded_bytes`.
pub(crate) fn check_decoded_size(image_bytes: u64, limits: &Limits) -> Result<(), Problem> {
    if image_bytes > limits.max_decoded_bytes {
        return Err(Problem::Limits(format!(
            "the image needs a {image_bytes}-byte buffer, more than the limit of {}",
            limits.max_decoded_bytes
        )));
    }
    Ok(())
}

/// Test-only: per file, the bytes decoders made (a chunk decoded twice counts
/// twice), the compressed bytes a [`StripRows`] read, and the strips it started,
/// so that tests can tell each input decoded once from inputs decoded per band.
#[cfg(test)]
pub(crate) mod probe {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    /// (decoded, compressed read, strips started) per file.
    static COUNTS: Mutex<Option<HashMap<PathBuf, [u64; 3]>>> = Mutex::new(None);

    fn add(path: &Path, which: usize, n: u64) {
        let mut counts = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .get_or_insert_with(HashMap::new)
            .entry(path.to_path_buf())
            .or_default()[which] += n;
    }

    pub(crate) fn decoded(path: &Path, bytes: u64) {
        add(path, 0, bytes);
    }

    pub(crate) fn compressed_read(path: &Path, bytes: u64) {
        add(path, 1, bytes);
    }

    pub(crate) fn strip_started(path: &Path) {
        add(path, 2, 1);
    }

    /// TIFF's LZW of `data` (MSB first, early change), for tests that make files.
    pub(crate) fn lzw_encode(data: &[u8]) -> Vec<u8> {
        super::lzw::tests::encode(data)
    }

    /// Decoded bytes, compressed bytes read and strips started for `path` so far.
    pub(crate) fn counts(path: &Path) -> [u64; 3] {
        let counts = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .as_ref()
            .and_then(|c| c.get(path))
            .copied()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use crate::{OpenOptions, Slice};

    /// A big-endian 16-bit LZW file with a predictor, in two strips, built by hand:
    /// the byte swap and the predictor of the LZW path, against the `tiff` crate.
    #[test]
    fn big_endian_lzw_with_predictor_matches_the_tiff_crate() {
        let (w, h, rps) = (37u32, 6u32, 4u32);
        let pixels: Vec<u16> = (0..w * h)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u16 | 1)
            .collect();
        let mut strips = Vec::new();
        for rows in pixels.chunks((w * rps) as usize) {
            // Horizontal differencing per row, then big-endian bytes, then LZW.
            let mut raw = Vec::new();
            for row in rows.chunks(w as usize) {
                let mut left = 0u16;
                for &v in row {
                    raw.extend_from_slice(&v.wrapping_sub(left).to_be_bytes());
                    left = v;
                }
            }
            strips.push(super::lzw::tests::encode(&raw));
        }
        let mut file = b"MM\0\x2a\0\0\0\x08".to_vec();
        let entries: Vec<(u16, u16, u32, u32)> = vec![
            (256, 4, 1, w),
            (257, 4, 1, h),
            (258, 3, 1, 16 << 16),
            (259, 3, 1, 5 << 16),
            (262, 3, 1, 1 << 16),
            (273, 4, 2, 0), // patched below
            (278, 4, 1, rps),
            (279, 4, 2, 0), // patched below
            (317, 3, 1, 2 << 16),
        ];
        let ifd_len = 2 + 12 * entries.len() + 4;
        let arrays = 8 + ifd_len;
        let data = arrays + 16;
        let offsets = [data, data + strips[0].len()];
        file.extend_from_slice(&(entries.len() as u16).to_be_bytes());
        for (tag, ty, count, value) in entries {
            let value = match tag {
                273 => arrays as u32,
                279 => arrays as u32 + 8,
                _ => value,
            };
            file.extend_from_slice(&tag.to_be_bytes());
            file.extend_from_slice(&ty.to_be_bytes());
            file.extend_from_slice(&count.to_be_bytes());
            file.extend_from_slice(&value.to_be_bytes());
        }
        file.extend_from_slice(&[0; 4]);
        for o in offsets {
            file.extend_from_slice(&(o as u32).to_be_bytes());
        }
        for s in &strips {
            file.extend_from_slice(&(s.len() as u32).to_be_bytes());
        }
        for s in &strips {
            file.extend_from_slice(s);
        }

        let slice = Slice::from_bytes("be_lzw_pred.tif", &file, &OpenOptions::default()).unwrap();
        assert_eq!(slice.access().to_string(), "decoded: LZW with predictor 2");
        assert_eq!(slice.contiguous::<u16>().unwrap(), &pixels[..]);
        let mut decoder = tiff::decoder::Decoder::new(std::io::Cursor::new(&file)).unwrap();
        match decoder.read_image().unwrap() {
            tiff::decoder::DecodingResult::U16(v) => assert_eq!(v, pixels),
            _ => panic!("not 16-bit"),
        }
    }

    /// Review s27 1b item 2: a page whose strips mix the two LZW code styles
    /// (fixtures/make_lzw_fixtures.py: new-style then old-style, and the
    /// reverse) is decoded right or refused as unsupported, naming the
    /// old-style strip; never other pixels, never the file blamed.
    #[test]
    fn a_page_mixing_lzw_code_styles_is_decoded_right_or_refused() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lzw_styles");
        let (w, h) = (16usize, 8usize);
        let want: Vec<u8> = (0..w * h)
            .map(|i| (((i % w) * 7 + (i / w) * 13) % 256) as u8)
            .collect();
        for (name, old) in [("new_then_old.tif", 1), ("old_then_new.tif", 0)] {
            let path = dir.join(name);
            let got = Slice::open(&path).and_then(|s| s.contiguous::<u8>().map(<[u8]>::to_vec));
            match got {
                Ok(pixels) => assert_eq!(pixels, want, "{name}: other pixels"),
                Err(e) => {
                    assert_eq!(e.kind(), crate::ErrorKind::Unsupported, "{name}: {e}");
                    let strip = format!("strip {old} is in old-style");
                    assert!(e.to_string().contains(&strip), "{name}: {e}");
                }
            }
        }
    }
}
