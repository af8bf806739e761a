//! Writing a crop's slices: TIFF of every sample type, 8-bit gray BMP with its
//! palette, PNG of 8 and 16 bits, each atomically (temporary name, rename), with
//! the source's resolution where the format has a place for it; and reading that
//! resolution from a source.

use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::writer::{Resolution, write_atomically_synced, write_tiff_file};
use crate::{Error, Format, Photometric, Sample, SampleType};

/// The file format of a crop's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OutputFormat {
    /// The source's format where ctstack writes it without loss: TIFF for TIFF
    /// (and for every level k >= 1, whose files are TIFF), BMP for BMP, PNG for
    /// PNG; PNG for JPEG (writing JPEG again would lose more: the plan's notes say so).
    #[default]
    Source,
    /// Uncompressed TIFF, any sample type, the photometric kept.
    Tiff,
    /// PNG, 8- or 16-bit gray.
    Png,
    /// BMP, 8-bit gray with a gray-ramp palette (what NRecon writes).
    Bmp,
}

impl OutputFormat {
    /// The format named by a file extension (`tif`, `tiff`, `png`, `bmp`, any case,
    /// with or without the dot); `None` for others (JPEG is read, not written).
    pub fn from_extension(ext: &str) -> Option<OutputFormat> {
        let ext = ext.strip_prefix('.').unwrap_or(ext).to_ascii_lowercase();
        match ext.as_str() {
            "tif" | "tiff" => Some(OutputFormat::Tiff),
            "png" => Some(OutputFormat::Png),
            "bmp" => Some(OutputFormat::Bmp),
            _ => None,
        }
    }

    /// The extension written: `tif`, `png` or `bmp` (`Source` is resolved first).
    pub(super) fn extension(self) -> &'static str {
        match self {
            OutputFormat::Png => "png",
            OutputFormat::Bmp => "bmp",
            OutputFormat::Tiff | OutputFormat::Source => "tif",
        }
    }

    /// The format to write for sources in `source` format, and a note when it is
    /// not the source's own.
    pub(super) fn resolve(self, source: Format) -> (OutputFormat, Option<String>) {
        match (self, source) {
            (OutputFormat::Source, Format::Jpeg) => (
                OutputFormat::Png,
                Some(
                    "JPEG sources are written as PNG: lossless, where writing JPEG again would \
                     lose detail a second time"
                        .into(),
                ),
            ),
            (OutputFormat::Source, Format::Png) => (OutputFormat::Png, None),
            (OutputFormat::Source, Format::Bmp) => (OutputFormat::Bmp, None),
            (OutputFormat::Source, _) => (OutputFormat::Tiff, None),
            (chosen, _) => (chosen, None),
        }
    }

    /// A usage error unless this format can hold `sample_type` / `photometric` samples as they are.
    pub(super) fn check(
        self,
        sample_type: SampleType,
        photometric: Photometric,
    ) -> Result<(), Error> {
        let why = match (self, sample_type) {
            (OutputFormat::Bmp, SampleType::U8)
            | (OutputFormat::Png, SampleType::U8 | SampleType::U16) => {
                if photometric == Photometric::MinIsWhite {
                    Some(
                        "min-is-white samples (0 is white) would show inverted: write TIFF, which keeps the photometric".to_string(),
                    )
                } else {
                    None
                }
            }
            (OutputFormat::Bmp, t) => Some(format!(
                "BMP holds 8-bit samples, the stack is {t}: write TIFF or PNG"
            )),
            (OutputFormat::Png, t) => Some(format!(
                "PNG holds 8- or 16-bit unsigned samples, the stack is {t}: write TIFF"
            )),
            _ => None,
        };
        match why {
            Some(why) => Err(Error::usage(format!(
                "cannot write {}: {why}",
                self.extension()
            ))),
            None => Ok(()),
        }
    }
}

/// A source's pixel density, carried over to the outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Density(pub Resolution);

impl Density {
    /// Pixels per metre (BMP's biXPelsPerMeter), if the unit is a length.
    fn per_metre(self) -> Option<(u32, u32)> {
        let per_unit =
            |(n, d): (u32, u32)| -> Option<f64> { (d != 0).then(|| f64::from(n) / f64::from(d)) };
        let scale = match self.0.unit {
            2 => 1.0 / 0.0254,
            3 => 100.0,
            _ => return None,
        };
        let x = (per_unit(self.0.x)? * scale).round();
        let y = (per_unit(self.0.y)? * scale).round();
        let ok = |v: f64| v >= 1.0 && v <= f64::from(i32::MAX);
        (ok(x) && ok(y)).then_some((x as u32, y as u32))
    }

    /// The density of `ppm` pixels per metre, as a TIFF's per-centimetre rationals.
    fn from_per_metre(x: u32, y: u32) -> Option<Density> {
        (x > 0 && y > 0).then_some(Density(Resolution {
            x: (x, 100),
            y: (y, 100),
            unit: 3,
        }))
    }

    /// Whether the unit is a length (inch, centimetre), not just an aspect ratio.
    pub(super) fn has_length_unit(self) -> bool {
        matches!(self.0.unit, 2 | 3)
    }

    /// The density of pixels `x_um` by `y_um` micrometres, as per-centimetre
    /// rationals (`10^4 / size`, with as many decimals of the size as fit).
    pub(super) fn from_micrometres(x_um: f64, y_um: f64) -> Option<Density> {
        let per_cm = |um: f64| -> Option<(u32, u32)> {
            if !(um.is_finite() && um > 0.0) {
                return None;
            }
            // n / d = 10^4 / um with n = 10^(4 + p), d = um * 10^p, both u32.
            (0..=5u32).rev().find_map(|p| {
                let d = (um * 10f64.powi(p as i32)).round();
                (d >= 1.0 && d <= f64::from(u32::MAX)).then(|| {
                    let (n, d) = (10u32.pow(4 + p), d as u32);
                    let g = gcd(n, d);
                    (n / g, d / g)
                })
            })
        };
        Some(Density(Resolution {
            x: per_cm(x_um)?,
            y: per_cm(y_um)?,
            unit: 3,
        }))
    }

    /// This density at pyramid level `k`: a pixel there is 2^k source pixels wide.
    pub(super) fn at_level(self, k: usize) -> Option<Density> {
        let scale = |(n, d): (u32, u32)| -> Option<(u32, u32)> {
            let d = d.checked_mul(1u32.checked_shl(k as u32)?)?;
            Some((n, d))
        };
        Some(Density(Resolution {
            x: scale(self.0.x)?,
            y: scale(self.0.y)?,
            unit: self.0.unit,
        }))
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// The density recorded in `path` (page `page`; a JPEG's JFIF density), read
/// from its header only;
/// `None` when it has none or it cannot be read (a crop never fails for want of it).
pub(super) fn read_density(path: &Path, page: usize, format: Format) -> Option<Density> {
    let mut file = std::fs::File::open(path).ok()?;
    match format {
        Format::Tiff => tiff_density(std::io::BufReader::new(file), page),
        Format::Bmp => {
            // BITMAPINFOHEADER and later: biXPelsPerMeter, biYPelsPerMeter at 38 and 42.
            let mut head = [0u8; 46];
            file.read_exact(&mut head).ok()?;
            let info = u32::from_le_bytes(head[14..18].try_into().ok()?);
            if info < 40 {
                return None;
            }
            let x = i32::from_le_bytes(head[38..42].try_into().ok()?);
            let y = i32::from_le_bytes(head[42..46].try_into().ok()?);
            Density::from_per_metre(u32::try_from(x).ok()?, u32::try_from(y).ok()?)
        }
        Format::Png => {
            let decoder = png::Decoder::new(std::io::BufReader::new(file));
            let reader = decoder.read_info().ok()?;
            let dims = reader.info().pixel_dims?;
            match dims.unit {
                png::Unit::Meter => Density::from_per_metre(dims.xppu, dims.yppu),
                png::Unit::Unspecified => None,
            }
        }
        Format::Jpeg => {
            // A JFIF APP0 segment right after SOI: "JFIF\0", version, units
            // (1 dots per inch, 2 per centimetre; 0 an aspect ratio only), X and Y density.
            let mut head = [0u8; 18];
            file.read_exact(&mut head).ok()?;
            if head[..4] != [0xFF, 0xD8, 0xFF, 0xE0] || &head[6..11] != b"JFIF\0" {
                return None;
            }
            let unit = match head[13] {
                1 => 2,
                2 => 3,
                _ => return None,
            };
            let x = u32::from(u16::from_be_bytes([head[14], head[15]]));
            let y = u32::from(u16::from_be_bytes([head[16], head[17]]));
            (x > 0 && y > 0).then_some(Density(Resolution {
                x: (x, 1),
                y: (y, 1),
                unit,
            }))
        }
    }
}

/// XResolution, YResolution and ResolutionUnit of page `page`, through the `tiff`
/// crate's tag reader (the directory only, never the pixels).
fn tiff_density<R: Read + Seek>(reader: R, page: usize) -> Option<Density> {
    use tiff::decoder::{Decoder, ifd::Value};
    use tiff::tags::Tag;
    let mut decoder = Decoder::new(reader).ok()?;
    if page > 0 {
        decoder.seek_to_image(page).ok()?;
    }
    let rational = |v: Value| match v {
        Value::Rational(n, d) if n > 0 && d > 0 => Some((n, d)),
        _ => None,
    };
    let x = rational(decoder.find_tag(Tag::XResolution).ok()??)?;
    let y = rational(decoder.find_tag(Tag::YResolution).ok()??)?;
    let unit = match decoder.find_tag_unsigned::<u16>(Tag::ResolutionUnit) {
        Ok(Some(u @ 1..=3)) => u,
        Ok(None) => 2, // the TIFF default: inch
        _ => return None,
    };
    Some(Density(Resolution { x, y, unit }))
}

/// Writes `samples` (row-major `width` x `height`) to `path` in `format`
/// (resolved: not `Source`), atomically, the data synced before the rename (so
/// the name never points at data that a power loss could take); [`finish`]
/// makes the renames durable. The caller checked the format against the sample
/// type ([`OutputFormat::check`]) and the sizes.
pub(super) fn write<T: Sample>(
    path: &Path,
    format: OutputFormat,
    width: u32,
    height: u32,
    samples: &[T],
    photometric: Photometric,
    density: Option<Density>,
) -> Result<(), Error> {
    match format {
        OutputFormat::Tiff | OutputFormat::Source => {
            write_tiff_file(
                path,
                width,
                height,
                samples,
                photometric,
                density.map(|d| d.0),
                true,
            )?;
        }
        OutputFormat::Bmp => {
            let bytes: &[u8] = bytemuck::cast_slice(samples);
            write_bmp(
                path,
                width,
                height,
                bytes,
                density.and_then(Density::per_metre),
            )?;
        }
        OutputFormat::Png => {
            write_png(
                path,
                width,
                height,
                T::TYPE,
                bytemuck::cast_slice(samples),
                density,
            )?;
        }
    }
    Ok(())
}

/// Makes the crop's outputs in folder `out`, each written by [`write`], durable:
/// their names (the renames) are synced, and the folder's own name in its
/// parent (best effort: the parent may not be readable). Called once, before
/// the crop reports its files written.
pub(super) fn finish(out: &Path) -> Result<(), Error> {
    crate::durable::sync_dir(out)?;
    if let Some(up) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = crate::durable::sync_dir(up);
    }
    Ok(())
}

/// An 8-bit BMP: BITMAPFILEHEADER, BITMAPINFOHEADER, the 256-entry gray ramp, rows
/// bottom-up padded to 4 bytes.
fn write_bmp(
    path: &Path,
    width: u32,
    height: u32,
    pixels: &[u8],
    per_metre: Option<(u32, u32)>,
) -> Result<(), Error> {
    let stride = (width as usize).next_multiple_of(4);
    let data_at = 14 + 40 + 256 * 4;
    let file_size = data_at as u64 + stride as u64 * u64::from(height);
    let (Ok(file_size), Ok(w), Ok(h)) = (
        u32::try_from(file_size),
        i32::try_from(width),
        i32::try_from(height),
    ) else {
        return Err(Error::usage(format!(
            "{}: a {width}x{height} image is too large for a BMP",
            path.display()
        )));
    };
    let (ppm_x, ppm_y) = per_metre.unwrap_or((0, 0));
    let mut head = Vec::with_capacity(data_at);
    head.extend_from_slice(b"BM");
    head.extend_from_slice(&file_size.to_le_bytes());
    head.extend_from_slice(&[0; 4]);
    head.extend_from_slice(&(data_at as u32).to_le_bytes());
    head.extend_from_slice(&40u32.to_le_bytes());
    head.extend_from_slice(&w.to_le_bytes());
    head.extend_from_slice(&h.to_le_bytes()); // positive: bottom-up
    head.extend_from_slice(&1u16.to_le_bytes()); // planes
    head.extend_from_slice(&8u16.to_le_bytes()); // bits per pixel
    head.extend_from_slice(&0u32.to_le_bytes()); // BI_RGB
    head.extend_from_slice(&((stride as u64 * u64::from(height)) as u32).to_le_bytes());
    head.extend_from_slice(&ppm_x.to_le_bytes());
    head.extend_from_slice(&ppm_y.to_le_bytes());
    head.extend_from_slice(&256u32.to_le_bytes()); // colours used
    head.extend_from_slice(&0u32.to_le_bytes()); // important colours
    for i in 0..=255u8 {
        head.extend_from_slice(&[i, i, i, 0]);
    }
    let w = width as usize;
    write_atomically_synced(path, |file| {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
        out.write_all(&head)?;
        let pad = [0u8; 3];
        for row in pixels.chunks_exact(w.max(1)).rev() {
            out.write_all(row)?;
            out.write_all(&pad[..stride - w])?;
        }
        out.flush()
    })?;
    Ok(())
}

/// A gray PNG of 8 or 16 bits (`bytes` in host order), pHYs from the density
/// when it is per metre.
fn write_png(
    path: &Path,
    width: u32,
    height: u32,
    ty: SampleType,
    bytes: &[u8],
    density: Option<Density>,
) -> Result<(), Error> {
    let depth = match ty {
        SampleType::U8 => png::BitDepth::Eight,
        _ => png::BitDepth::Sixteen,
    };
    // PNG stores 16-bit samples big-endian.
    let be: std::borrow::Cow<'_, [u8]> = if ty == SampleType::U8 || cfg!(target_endian = "big") {
        bytes.into()
    } else {
        let mut v = bytes.to_vec();
        for pair in v.chunks_exact_mut(2) {
            pair.swap(0, 1);
        }
        v.into()
    };
    write_atomically_synced(path, |file| {
        let out = std::io::BufWriter::with_capacity(1 << 16, file);
        let mut encoder = png::Encoder::new(out, width, height);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(depth);
        if let Some((x, y)) = density.and_then(Density::per_metre) {
            encoder.set_pixel_dims(Some(png::PixelDimensions {
                xppu: x,
                yppu: y,
                unit: png::Unit::Meter,
            }));
        }
        let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
        writer
            .write_image_data(&be)
            .map_err(std::io::Error::other)?;
        writer.finish().map_err(std::io::Error::other)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn densities_convert_between_units_and_levels() {
        let inch = Density(Resolution {
            x: (254, 1),
            y: (127, 1),
            unit: 2,
        });
        assert_eq!(inch.per_metre(), Some((10000, 5000)));
        let cm = Density::from_per_metre(10000, 5000).unwrap();
        assert_eq!(cm.0.x, (10000, 100));
        assert_eq!(cm.per_metre(), Some((10000, 5000)));
        assert_eq!(inch.at_level(2).unwrap().0.x, (254, 4));
        let none = Density(Resolution {
            x: (1, 1),
            y: (1, 1),
            unit: 1,
        });
        assert_eq!(none.per_metre(), None);
        assert!(!none.has_length_unit() && inch.has_length_unit());
    }

    #[test]
    fn a_size_in_micrometres_is_an_exact_density_where_it_can_be() {
        // 12.5 um: 800 pixels per centimetre, 80000 per metre.
        let d = Density::from_micrometres(12.5, 12.5).unwrap();
        assert_eq!((d.0.x, d.0.unit), ((800, 1), 3));
        assert_eq!(d.per_metre(), Some((80000, 80000)));
        // An NRecon size with five decimals keeps them.
        let d = Density::from_micrometres(8.55949, 19.79772).unwrap();
        let um = |(n, d): (u32, u32)| 1e4 * f64::from(d) / f64::from(n);
        assert!((um(d.0.x) - 8.55949).abs() < 1e-9 && (um(d.0.y) - 19.79772).abs() < 1e-9);
        // Large sizes lose decimals, never the value; nonsense gives none.
        let d = Density::from_micrometres(123_456.7, 1.0).unwrap();
        assert!((um(d.0.x) - 123_456.7).abs() < 0.1, "{:?}", d.0.x);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(Density::from_micrometres(bad, 1.0), None);
        }
    }

    #[test]
    fn formats_refuse_samples_they_cannot_hold() {
        use OutputFormat::*;
        let gray = Photometric::MinIsBlack;
        Bmp.check(SampleType::U8, gray).unwrap();
        Png.check(SampleType::U16, gray).unwrap();
        Tiff.check(SampleType::F32, Photometric::MinIsWhite)
            .unwrap();
        for (f, t) in [
            (Bmp, SampleType::U16),
            (Png, SampleType::I16),
            (Png, SampleType::F32),
        ] {
            let e = f.check(t, gray).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Usage);
            assert!(e.to_string().contains(t.name()), "{e}");
        }
        assert!(Png.check(SampleType::U8, Photometric::MinIsWhite).is_err());
        assert_eq!(Source.resolve(Format::Jpeg).0, Png);
        assert!(Source.resolve(Format::Jpeg).1.is_some());
        assert_eq!(Source.resolve(Format::Bmp), (Bmp, None));
        assert_eq!(OutputFormat::from_extension(".TIFF"), Some(Tiff));
        assert_eq!(OutputFormat::from_extension("jpg"), None);
    }
}
