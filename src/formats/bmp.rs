//! Windows bitmaps, read by ctstack: a 14-byte BITMAPFILEHEADER, then a
//! BITMAPCOREHEADER (12 bytes), BITMAPINFOHEADER (40) or one of its extensions
//! (52, 56, V4 108, V5 124), an optional color table, and rows of pixels, each
//! padded to a multiple of 4 bytes, stored bottom-up unless the height is negative.
//!
//! 8-bit images whose palette is the gray ramp (entry `i` is `(i, i, i)`, what
//! Bruker NRecon writes) are served as row views of the file: the row view steps
//! backwards for bottom-up files and over the padding. Other palettes go through
//! the palette into an owned buffer, and 24- and 32-bit pixels are converted to
//! gray with [`luma`]. RLE, 1/2/4/16-bit, embedded JPEG/PNG and unusual bit
//! masks are refused as unsupported.

use super::{Header, Image, ImagePixels, check_size, luma};
use crate::Limits;
use crate::error::{Problem, format_problem};
use crate::sample::{SampleType, Samples};
use crate::tiff::Resolution;

const FILE_HEADER: usize = 14;

/// What the headers say, checked against the file.
#[derive(Debug)]
struct Layout {
    width: u32,
    height: u32,
    top_down: bool,
    bits: u16,
    /// Byte offset of the first row stored in the file (the bottom row of a bottom-up image).
    data: usize,
    /// Bytes per stored row, padding included.
    stride: usize,
    /// The color table, as (r, g, b); empty above 8 bits.
    palette: Vec<[u8; 3]>,
    /// biXPelsPerMeter and biYPelsPerMeter (BITMAPINFOHEADER and later).
    resolution: Option<Resolution>,
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

impl Layout {
    fn parse(bytes: &[u8], limits: &Limits) -> Result<Layout, Problem> {
        if bytes.len() < FILE_HEADER + 4 || &bytes[..2] != b"BM" {
            return Err(format_problem!(
                "a BMP needs at least 18 bytes of headers, the file has {}",
                bytes.len()
            ));
        }
        let data = u32_at(bytes, 10) as usize;
        let info_size = u32_at(bytes, FILE_HEADER) as usize;
        let core = match info_size {
            12 => true,
            40 | 52 | 56 | 108 | 124 => false,
            16 | 64 => {
                return Err(Problem::Unsupported(format!(
                    "OS/2 2.x BMP header ({info_size} bytes)"
                )));
            }
            n => {
                return Err(format_problem!(
                    "BMP info header size {n} is not a known one"
                ));
            }
        };
        if bytes.len() < FILE_HEADER + info_size {
            return Err(format_problem!(
                "the {info_size}-byte BMP info header goes past the end of the {}-byte file",
                bytes.len()
            ));
        }
        let h = &bytes[FILE_HEADER..FILE_HEADER + info_size];
        let resolution = if core {
            None
        } else {
            let ppm = |at| u32::try_from(u32_at(h, at) as i32).ok();
            ppm(24)
                .zip(ppm(28))
                .and_then(|(x, y)| Resolution::per_metre(x, y))
        };
        let (width, height, bits, compression, colors_used) = if core {
            let (w, ht) = (u16_at(h, 4), u16_at(h, 6));
            (i64::from(w), i64::from(ht), u16_at(h, 10), 0, 0)
        } else {
            let w = i64::from(u32_at(h, 4) as i32);
            let ht = i64::from(u32_at(h, 8) as i32);
            (w, ht, u16_at(h, 14), u32_at(h, 16), u32_at(h, 32))
        };
        if width <= 0 || height == 0 {
            return Err(format_problem!(
                "BMP size {width}x{height} is empty or negative"
            ));
        }
        let top_down = height < 0;
        // Both fit in a u32: |i32| <= 2^31.
        let (width, height) = (width as u32, height.unsigned_abs() as u32);
        match compression {
            0 => {}
            1 | 2 => {
                let kind = if compression == 1 { "RLE8" } else { "RLE4" };
                return Err(Problem::Unsupported(format!("{kind}-compressed BMP")));
            }
            3 | 6 => check_masks(bytes, bits)?,
            4 | 5 => {
                let kind = if compression == 4 { "JPEG" } else { "PNG" };
                return Err(Problem::Unsupported(format!("BMP holding a {kind} image")));
            }
            c => return Err(format_problem!("BMP compression {c} is not a known one")),
        }
        match bits {
            8 | 24 | 32 => {}
            1 | 2 | 4 | 16 => {
                return Err(Problem::Unsupported(format!("{bits}-bit BMP")));
            }
            b => return Err(format_problem!("BMP bit count {b} is not a valid one")),
        }
        check_size(width, height, 1, limits)?;
        let stride = (u64::from(width) * u64::from(bits)).div_ceil(32) * 4;
        let row_bytes = u64::from(width) * u64::from(bits / 8);
        // The last row need not carry its padding.
        let end = (data as u64)
            .checked_add(stride * u64::from(height - 1))
            .and_then(|e| e.checked_add(row_bytes));
        if end.is_none_or(|e| e > bytes.len() as u64) {
            return Err(format_problem!(
                "the {width}x{height} {bits}-bit BMP needs rows of {stride} bytes from offset \
                 {data}, past the end of the {}-byte file",
                bytes.len()
            ));
        }
        let palette = if bits == 8 {
            read_palette(bytes, info_size, compression, core, colors_used)?
        } else {
            Vec::new()
        };
        // Pixels that overlap the headers or the palette would be served as gray levels.
        let entry = if core { 3 } else { 4 };
        let tables = FILE_HEADER + info_size + masks_len(info_size, compression);
        let headers_end = tables + palette.len() * entry;
        if data < headers_end {
            return Err(format_problem!(
                "BMP pixels at offset {data} overlap the headers and palette, which end at {headers_end}"
            ));
        }
        Ok(Layout {
            width,
            height,
            top_down,
            bits,
            data,
            // `end` lies in the file, so the stride fits in a usize.
            stride: stride as usize,
            palette,
            resolution,
        })
    }

    /// Byte offset of image row `y` (0 = top).
    fn row_start(&self, y: usize) -> usize {
        let stored = if self.top_down {
            y
        } else {
            self.height as usize - 1 - y
        };
        self.data + stored * self.stride
    }

    /// Whether palette entry `i` is `(i, i, i)` for every entry: the indices are the gray levels.
    fn gray_ramp(&self) -> bool {
        // Two entries are black and white (a 1-bit ramp), not levels 0 and 1.
        self.palette.len() > 2
            && self
                .palette
                .iter()
                .enumerate()
                .all(|(i, &[r, g, b])| usize::from(r) == i && r == g && g == b)
    }

    fn describe(&self) -> String {
        let order = if self.top_down {
            "top-down"
        } else {
            "bottom-up"
        };
        let row_bytes = self.width as usize * usize::from(self.bits / 8);
        if self.stride == row_bytes {
            format!("BMP, {order} rows")
        } else {
            format!("BMP, {order} rows padded to {} bytes", self.stride)
        }
    }
}

/// Bit masks (BI_BITFIELDS, BI_ALPHABITFIELDS): only 32-bit pixels with the
/// masks of plain BGRX are read.
fn check_masks(bytes: &[u8], bits: u16) -> Result<(), Problem> {
    // In a 40-byte header the masks follow it; later headers hold them at the same place.
    let at = FILE_HEADER + 40;
    if bytes.len() < at + 12 {
        return Err(format_problem!("BMP bit masks go past the end of the file"));
    }
    let masks = [
        u32_at(bytes, at),
        u32_at(bytes, at + 4),
        u32_at(bytes, at + 8),
    ];
    if bits != 32 || masks != [0x00ff_0000, 0x0000_ff00, 0x0000_00ff] {
        return Err(Problem::Unsupported(format!(
            "{bits}-bit BMP with bit masks {:08x} {:08x} {:08x}",
            masks[0], masks[1], masks[2]
        )));
    }
    Ok(())
}

/// Bytes of bit masks between a 40-byte header and the palette (later headers hold them).
fn masks_len(info_size: usize, compression: u32) -> usize {
    match (info_size, compression) {
        (40, 3) => 12,
        (40, 6) => 16,
        _ => 0,
    }
}

fn read_palette(
    bytes: &[u8],
    info_size: usize,
    compression: u32,
    core: bool,
    colors_used: u32,
) -> Result<Vec<[u8; 3]>, Problem> {
    let count = match colors_used {
        0 => 256,
        n @ 1..=256 => n as usize,
        n => {
            return Err(format_problem!(
                "8-bit BMP claims {n} palette entries, at most 256 exist"
            ));
        }
    };
    let entry = if core { 3 } else { 4 };
    let start = FILE_HEADER + info_size + masks_len(info_size, compression);
    let table = bytes.get(start..start + count * entry).ok_or_else(|| {
        format_problem!(
            "the {count}-entry BMP palette at offset {start} goes past the end of the {}-byte file",
            bytes.len()
        )
    })?;
    // Entries are stored blue, green, red (and a reserved byte).
    Ok(table
        .chunks_exact(entry)
        .map(|e| [e[2], e[1], e[0]])
        .collect())
}

pub(super) fn read_header(bytes: &[u8], limits: &Limits) -> Result<Header, Problem> {
    let layout = Layout::parse(bytes, limits)?;
    Ok(Header {
        width: layout.width,
        height: layout.height,
        sample_type: SampleType::U8,
        resolution: layout.resolution,
    })
}

pub(super) fn read(bytes: &[u8], limits: &Limits) -> Result<Image, Problem> {
    let layout = Layout::parse(bytes, limits)?;
    let header = Header {
        width: layout.width,
        height: layout.height,
        sample_type: SampleType::U8,
        resolution: layout.resolution,
    };
    if layout.bits == 8 && layout.gray_ramp() {
        let (first_row, row_step) = if layout.top_down {
            (layout.data, layout.stride as isize)
        } else {
            (layout.row_start(0), -(layout.stride as isize))
        };
        let reason = format!("{}, gray palette", layout.describe());
        return Ok(Image {
            header,
            pixels: ImagePixels::InFile {
                first_row,
                row_step,
                reason,
            },
        });
    }
    let (width, height) = (layout.width as usize, layout.height as usize);
    let mut out = vec![0u8; width * height];
    let what = match layout.bits {
        8 => {
            let mut lut = [0u8; 256];
            for (l, &[r, g, b]) in lut.iter_mut().zip(&layout.palette) {
                *l = luma(r.into(), g.into(), b.into()) as u8;
            }
            let entries = layout.palette.len();
            for (y, dst) in out.chunks_exact_mut(width).enumerate() {
                let src = &bytes[layout.row_start(y)..][..width];
                if let Some(&bad) = src.iter().find(|&&i| usize::from(i) >= entries) {
                    return Err(format_problem!(
                        "BMP pixel index {bad} in row {y} is beyond the {entries}-entry palette"
                    ));
                }
                for (d, &i) in dst.iter_mut().zip(src) {
                    *d = lut[usize::from(i)];
                }
            }
            "palette to gray"
        }
        bits => {
            let size = usize::from(bits / 8);
            for (y, dst) in out.chunks_exact_mut(width).enumerate() {
                let src = &bytes[layout.row_start(y)..][..width * size];
                for (d, p) in dst.iter_mut().zip(src.chunks_exact(size)) {
                    *d = luma(p[2].into(), p[1].into(), p[0].into()) as u8;
                }
            }
            if bits == 24 {
                "BGR to gray"
            } else {
                "BGRX to gray"
            }
        }
    };
    Ok(Image {
        header,
        pixels: ImagePixels::Owned {
            samples: Samples::from_vec(out),
            converted: true,
            reason: format!("{what} ({})", layout.describe()),
        },
    })
}
