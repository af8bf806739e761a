//! A voxel size from the first slice's TIFF tags: XResolution / YResolution
//! (pixels per ResolutionUnit: inch or centimetre), or, in an ImageJ file,
//! pixels per the description's `unit=` with its `spacing=` as the z step.
//! Without a z step, z is taken equal to x (CT reconstructions have cubic
//! voxels); the source says so.
//!
//! Read by the reading layer (page 0's layout: `tiff::PageResolution`): a
//! file it cannot parse simply gives no voxel size.

use std::path::Path;

use crate::Limits;
use crate::tiff::page_layout;

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

/// `(z, y, x)` in micrometres and where it came from, if the tags of the TIFF
/// at `path` give a physical pixel size (a length unit, or ImageJ's).
pub(crate) fn from_tags(path: &Path) -> Option<([f64; 3], String)> {
    let file = std::fs::File::open(path).ok()?;
    let (layout, _) = page_layout(path, 0, &file, &Limits::default()).ok()??;
    let tags = layout.resolution;
    let x_res = tags.x?.positive()?;
    let y_res = tags.y?.positive()?;
    let resolution_unit = tags.unit.and_then(|u| u16::try_from(u).ok()).unwrap_or(2);
    let imagej = tags.imagej.is_some();
    let scale = tags.imagej.unwrap_or_default();
    let um_per_unit = match resolution_unit {
        2 => 25_400.0,
        3 => 10_000.0,
        _ if imagej => scale.unit.as_deref().and_then(imagej_unit)?,
        _ => return None,
    };
    let (x, y) = (um_per_unit / x_res, um_per_unit / y_res);
    let spacing = if imagej {
        let unit_um = scale
            .unit
            .as_deref()
            .and_then(imagej_unit)
            .unwrap_or(um_per_unit);
        scale
            .spacing
            .as_deref()
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
