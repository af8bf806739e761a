//! What a file looks like from its first bytes, so that `ctstack info` can say
//! what a file it cannot read is and what to do with it (the library sniffs the
//! formats it reads itself; this knows a few more that CT users meet).

use std::io::Read;
use std::path::Path;

/// How many leading bytes the signatures need (DICOM's sits at offset 128).
const SNIFF_LEN: usize = 132;

/// A file format recognised by its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    Tiff,
    BigTiff,
    Png,
    Bmp,
    Jpeg,
    Jpeg2000,
    Gif,
    Dicom,
}

impl Signature {
    /// The format `head` (the first bytes of a file) starts like, if any.
    pub fn of(head: &[u8]) -> Option<Signature> {
        let starts = |magic: &[u8]| head.starts_with(magic);
        Some(if starts(b"II*\0") || starts(b"MM\0*") {
            Signature::Tiff
        } else if starts(b"II+\0") || starts(b"MM\0+") {
            Signature::BigTiff
        } else if starts(b"\x89PNG\r\n\x1a\n") {
            Signature::Png
        } else if starts(b"\xff\xd8\xff") {
            Signature::Jpeg
        } else if starts(b"\0\0\0\x0cjP  \r\n\x87\n") || starts(b"\xff\x4f\xff\x51") {
            Signature::Jpeg2000
        } else if starts(b"GIF87a") || starts(b"GIF89a") {
            Signature::Gif
        } else if head.get(128..132) == Some(b"DICM") {
            Signature::Dicom
        } else if starts(b"BM") && head.len() >= 14 {
            // Two letters alone are weak evidence: also ask for a plausible header
            // (the pixel data offset, bytes 10..14, lies past the 14-byte file header).
            let offset = u32::from_le_bytes([head[10], head[11], head[12], head[13]]);
            if offset < 14 {
                return None;
            }
            Signature::Bmp
        } else {
            return None;
        })
    }

    /// The format of the file at `path`, if it can be read and is recognised.
    pub fn of_file(path: &Path) -> Option<Signature> {
        let mut head = Vec::with_capacity(SNIFF_LEN);
        let file = std::fs::File::open(path).ok()?;
        file.take(SNIFF_LEN as u64).read_to_end(&mut head).ok()?;
        Signature::of(&head)
    }

    /// What the file is, for a message: "a PNG image".
    pub fn name(self) -> &'static str {
        match self {
            Signature::Tiff => "a TIFF file",
            Signature::BigTiff => "a BigTIFF file",
            Signature::Png => "a PNG image",
            Signature::Bmp => "a BMP image",
            Signature::Jpeg => "a JPEG image",
            Signature::Jpeg2000 => "a JPEG 2000 image",
            Signature::Gif => "a GIF image",
            Signature::Dicom => "a DICOM file",
        }
    }

    /// For a file that failed to open: what it is and what to do, or `None` for a
    /// format ctstack reads (the reader's error then says what is wrong).
    pub fn advice(self) -> Option<String> {
        let convert = |ext: &str| {
            format!(
                "{}, a format ctstack does not read: convert the stack to TIFF or PNG, \
                 for example with ImageMagick: magick mogrify -format tif *.{ext}",
                self.name()
            )
        };
        Some(match self {
            Signature::Tiff | Signature::BigTiff | Signature::Png | Signature::Bmp => return None,
            Signature::Jpeg => return None,
            Signature::Jpeg2000 => convert("jp2"),
            Signature::Gif => convert("gif"),
            Signature::Dicom => format!(
                "{}, a format ctstack does not read: export the series as TIFF slices \
                 with a DICOM tool first",
                self.name()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Signature;

    #[test]
    fn signatures_are_recognised() {
        assert_eq!(Signature::of(b"II*\0\x08\0\0\0"), Some(Signature::Tiff));
        assert_eq!(Signature::of(b"MM\0+\0\x08"), Some(Signature::BigTiff));
        assert_eq!(
            Signature::of(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some(Signature::Png)
        );
        assert_eq!(
            Signature::of(b"\xff\xd8\xff\xe0\0\x10JFIF"),
            Some(Signature::Jpeg)
        );
        assert_eq!(Signature::of(b"GIF89a\x01\0"), Some(Signature::Gif));
        let mut bmp = b"BM\x46\0\0\0\0\0\0\0\x36\0\0\0".to_vec();
        assert_eq!(Signature::of(&bmp), Some(Signature::Bmp));
        bmp[10] = 2; // a data offset inside the file header: not a BMP
        assert_eq!(Signature::of(&bmp), None);
        assert_eq!(Signature::of(b"BM"), None);
        let mut dicom = vec![0; 128];
        dicom.extend_from_slice(b"DICM");
        assert_eq!(Signature::of(&dicom), Some(Signature::Dicom));
        assert_eq!(Signature::of(b"hello"), None);
        assert_eq!(Signature::of(b""), None);
    }

    #[test]
    fn advice_names_the_format_and_a_way_out() {
        let advice = Signature::Gif.advice().unwrap();
        assert!(
            advice.starts_with("a GIF image, a format ctstack does not read"),
            "{advice}"
        );
        assert!(advice.contains("*.gif"), "{advice}");
        // Formats ctstack reads: their reader's error says what is wrong.
        for readable in [
            Signature::Tiff,
            Signature::Png,
            Signature::Bmp,
            Signature::Jpeg,
        ] {
            assert_eq!(readable.advice(), None);
        }
    }
}
