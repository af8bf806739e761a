//! What a page says about its pixels' physical size, as the file stores it:
//! a TIFF's XResolution, YResolution and ResolutionUnit, and an ImageJ
//! description's `unit=` and `spacing=` ([`PageResolution`], carried by the
//! layout), and the density a crop writes ([`Resolution`], which the other
//! formats' headers carry too). Read by the one IFD parser: a malformed value
//! counts as absent, it never fails a page.

use super::ifd::Directory;
use super::tags::Tag;

/// A TIFF's resolution: XResolution and YResolution (RATIONAL, pixels per unit)
/// and ResolutionUnit (1 none, 2 inch, 3 centimetre), as a crop carries them over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resolution {
    /// Pixels per unit across, as numerator and denominator.
    pub x: (u32, u32),
    /// Pixels per unit down.
    pub y: (u32, u32),
    /// The ResolutionUnit tag's value.
    pub unit: u16,
}

impl Resolution {
    /// `x` by `y` pixels per metre (a BMP's or a PNG's density) as
    /// per-centimetre rationals; `None` unless both are positive.
    pub fn per_metre(x: u32, y: u32) -> Option<Resolution> {
        (x > 0 && y > 0).then_some(Resolution {
            x: (x, 100),
            y: (y, 100),
            unit: 3,
        })
    }
}

/// A numeric tag's one value: a RATIONAL as stored, any other number type
/// (SHORT, LONG, FLOAT, DOUBLE) as its value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    Rational(u32, u32),
    Real(f64),
}

impl Number {
    /// The value, if positive and finite.
    pub fn positive(self) -> Option<f64> {
        let v = match self {
            Number::Rational(n, d) if d != 0 => f64::from(n) / f64::from(d),
            Number::Rational(..) => return None,
            Number::Real(v) => v,
        };
        (v.is_finite() && v > 0.0).then_some(v)
    }
}

/// The `unit=` and `spacing=` lines of an ImageJ description (`ImageJ=...`).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ImageJScale {
    pub unit: Option<String>,
    pub spacing: Option<String>,
}

/// What a page's tags say about its pixels' size.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct PageResolution {
    /// XResolution: pixels per unit across.
    pub x: Option<Number>,
    /// YResolution: pixels per unit down.
    pub y: Option<Number>,
    /// ResolutionUnit as stored (`None`: absent, which TIFF reads as inch).
    pub unit: Option<u64>,
    /// The description's scale, if it is ImageJ's.
    pub imagej: Option<ImageJScale>,
}

impl PageResolution {
    /// The tags of `dir`, each read leniently (malformed: absent).
    pub fn of(dir: &Directory<'_>) -> PageResolution {
        let description = dir.bytes(Tag::ImageDescription).ok().flatten();
        PageResolution {
            x: dir.number(Tag::XResolution),
            y: dir.number(Tag::YResolution),
            unit: dir.value(Tag::ResolutionUnit).ok().flatten(),
            imagej: description.and_then(imagej_scale),
        }
    }

    /// The resolution a crop carries over: both RATIONAL and positive, the
    /// unit 1 to 3 (absent: 2, inch); `None` otherwise.
    pub fn resolution(&self) -> Option<Resolution> {
        let rational = |n: Option<Number>| match n? {
            Number::Rational(n, d) if n > 0 && d > 0 => Some((n, d)),
            _ => None,
        };
        let unit = match self.unit {
            None => 2,
            Some(u @ 1..=3) => u as u16,
            Some(_) => return None,
        };
        Some(Resolution {
            x: rational(self.x)?,
            y: rational(self.y)?,
            unit,
        })
    }
}

/// The scale lines of an ImageJ description (text up to its first NUL).
fn imagej_scale(text: &[u8]) -> Option<ImageJScale> {
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    let text = std::str::from_utf8(&text[..end]).ok()?;
    if !text.starts_with("ImageJ=") {
        return None;
    }
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            .map(str::to_string)
    };
    Some(ImageJScale {
        unit: field("unit"),
        spacing: field("spacing"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    /// Page `page` of `path`'s resolution, as the layout carries it.
    fn of(path: &std::path::Path, page: usize) -> PageResolution {
        let file = std::fs::File::open(path).unwrap();
        let (layout, _) = crate::tiff::page_layout(path, page, &file, &Limits::default())
            .unwrap()
            .unwrap();
        layout.resolution
    }

    /// The one IFD parser reads what the `tiff` crate writes: RATIONAL
    /// resolutions, the unit, an ImageJ description's scale, on any page; a
    /// file without them has none, and only positive rationals with a known
    /// unit make a resolution to carry over.
    #[test]
    fn the_layout_carries_the_resolution_tags() {
        use tiff::encoder::{Rational, TiffEncoder, colortype};
        use tiff::tags::ResolutionUnit;
        let dir = std::env::temp_dir().join(format!("ctstack-resolution-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.tif");
        let mut tiff = TiffEncoder::new(std::fs::File::create(&path).unwrap()).unwrap();
        tiff.write_image::<colortype::Gray16>(2, 2, &[0; 4])
            .unwrap();
        let mut image = tiff.new_image::<colortype::Gray16>(4, 2).unwrap();
        image.x_resolution(Rational { n: 300, d: 1 });
        image.y_resolution(Rational { n: 150, d: 2 });
        image.resolution_unit(ResolutionUnit::Centimeter);
        let description = "ImageJ=1.54f\nimages=1\nunit=micron\nspacing=2.5\n";
        let encoder = image.encoder();
        encoder
            .write_tag(tiff::tags::Tag::ImageDescription, description)
            .unwrap();
        image.write_data(&[7; 8]).unwrap();
        drop(tiff);
        let page = of(&path, 1);
        assert_eq!(page.x, Some(Number::Rational(300, 1)));
        assert_eq!(page.y.and_then(Number::positive), Some(75.0));
        assert_eq!(page.unit, Some(3));
        let scale = page.imagej.clone().unwrap();
        assert_eq!(scale.unit.as_deref(), Some("micron"));
        assert_eq!(scale.spacing.as_deref(), Some("2.5"));
        assert_eq!(
            page.resolution(),
            Some(Resolution {
                x: (300, 1),
                y: (150, 2),
                unit: 3
            })
        );
        // The crate's default on page 0: 1 pixel per 1, no unit.
        assert_eq!(of(&path, 0).unit, Some(1));
        // A file without the tags has none; an unknown unit or a zero carries
        // nothing over.
        let bare = dir.join("bare.tif");
        crate::write_slice::<u16>(&bare, 2, 2, &[0; 4]).unwrap();
        assert_eq!(of(&bare, 0), PageResolution::default());
        assert_eq!(of(&bare, 0).resolution(), None);
        let odd = PageResolution {
            unit: Some(9),
            ..page.clone()
        };
        assert_eq!(odd.resolution(), None);
        let zero = PageResolution {
            x: Some(Number::Rational(0, 1)),
            ..page
        };
        assert_eq!(zero.resolution(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
