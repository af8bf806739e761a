//! A voxel size from the first slice's TIFF tags: XResolution / YResolution
//! (pixels per ResolutionUnit: inch or centimetre), or, in an ImageJ file,
//! pixels per the description's `unit=` with its `spacing=` as the z step.
//! Without a z step, z is taken equal to x (CT reconstructions have cubic
//! voxels); the source says so.
//!
//! Read with the `tiff` crate (its first directory only), apart from the
//! reading layer: a file it cannot parse simply gives no voxel size.

use std::path::Path;

use tiff::decoder::Decoder;
use tiff::decoder::ifd::Value;
use tiff::tags::Tag;

/// Micrometres per an ImageJ `unit=` value.
fn imagej_unit(text: &str) -> Option<f64> {
    match text.trim() {
        "micron" | "um" | "µm" | "\\u00B5m" | "microns" => Some(1.0),
        "nm" | "nanometer" => Some(1e-3),
        "mm" | "millimeter" => Some(1e3),
        "cm" | "centimeter" => Some(1e4),
        "inch" => Some(25_400.0),
        _ => None,
    }
}

/// A positive RATIONAL (or numeric) tag value.
fn ratio(value: Option<Value>) -> Option<f64> {
    let v = match value? {
        Value::Rational(n, d) if d != 0 => f64::from(n) / f64::from(d),
        Value::Short(n) => f64::from(n),
        Value::Unsigned(n) => f64::from(n),
        Value::Double(n) => n,
        Value::Float(n) => f64::from(n),
        _ => return None,
    };
    (v.is_finite() && v > 0.0).then_some(v)
}

/// `(z, y, x)` in micrometres and where it came from, if the tags of the TIFF
/// at `path` give a physical pixel size (a length unit, or ImageJ's).
pub(crate) fn from_tags(path: &Path) -> Option<([f64; 3], String)> {
    let file = std::fs::File::open(path).ok()?;
    let mut tiff = Decoder::new(std::io::BufReader::new(file)).ok()?;
    let x_res = ratio(tiff.find_tag(Tag::XResolution).ok()?)?;
    let y_res = ratio(tiff.find_tag(Tag::YResolution).ok()?)?;
    let resolution_unit = tiff
        .find_tag_unsigned::<u16>(Tag::ResolutionUnit)
        .ok()
        .flatten()
        .unwrap_or(2);
    let description = tiff
        .find_tag(Tag::ImageDescription)
        .ok()
        .flatten()
        .and_then(|v| v.into_string().ok())
        .unwrap_or_default();
    let imagej = description.starts_with("ImageJ=");
    let field = |key: &str| {
        description
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
    };
    let um_per_unit = match resolution_unit {
        2 => 25_400.0,
        3 => 10_000.0,
        _ if imagej => field("unit").and_then(imagej_unit)?,
        _ => return None,
    };
    let (x, y) = (um_per_unit / x_res, um_per_unit / y_res);
    let spacing = if imagej {
        let unit_um = field("unit").and_then(imagej_unit).unwrap_or(um_per_unit);
        field("spacing")
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(|s| s * unit_um)
    } else {
        None
    };
    let (z, z_note) = match spacing {
        Some(z) => (z, "z from its ImageJ spacing"),
        None => (x, "z taken equal to x"),
    };
    let size = [z, y, x];
    size.iter().all(|v| v.is_finite() && *v > 0.0).then(|| {
        let source = format!("the resolution tags of {} ({z_note})", path.display());
        (size, source)
    })
}
