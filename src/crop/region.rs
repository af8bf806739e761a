//! The one way a crop reaches pixels: "rows y0..y1, columns x0..x1 of page p".
//!
//! Every crop path (files, [`CropPlan::crop_to_array`](super::CropPlan::crop_to_array))
//! calls [`read_region`] and nothing else. It is a caller of the reading layer
//! ([`crate::region::read_slice_region`], issue 20): a TIFF page is read chunk by
//! chunk, touching only the bytes of the strips or tiles the box meets
//! (positional reads, or a map under `ReadMode::Mmap`), decoding only the
//! compressed chunks that meet it; BMP, PNG and JPEG slices are decoded whole
//! and the box copied out.

use std::ops::Range;

use crate::region::{Region, read_slice_region};
use crate::stack::SliceRef;
use crate::tiff::IndexedPage;
use crate::{Error, OpenOptions, Sample};

/// Copies rows `rows` and columns `cols` of `slice` (a page of a file), opened
/// with `options` and located by `indexed` (its entry in the stack plan's page
/// index, if any), into `dst`, row-major: `dst.len()` must be
/// `rows.len() * cols.len()` ([`Error::Mismatch`] otherwise). `T` must be the
/// slice's sample type as served ([`Error::Mismatch`]); an empty box, or one
/// outside the slice, is an [`Error::Usage`] naming the file and its size.
pub(crate) fn read_region<T: Sample>(
    slice: &SliceRef,
    indexed: Option<&IndexedPage>,
    options: &OpenOptions,
    rows: Range<u32>,
    cols: Range<u32>,
    dst: &mut [T],
) -> Result<(), Error> {
    if rows.is_empty() || cols.is_empty() {
        return Err(Error::usage(format!(
            "{slice}: rows {}..{}, columns {}..{}: an empty box",
            rows.start, rows.end, cols.start, cols.end
        )));
    }
    read_slice_region(slice, indexed, options, &Region { rows, cols }, dst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write_slice;

    #[test]
    fn a_box_is_copied_row_major_and_a_box_outside_is_refused() {
        let dir = std::env::temp_dir().join(format!("ctstack-region-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.tif");
        let pixels: Vec<u16> = (0..7 * 5).collect();
        write_slice(&path, 7, 5, &pixels).unwrap();
        let slice = SliceRef::new(&path, 0);
        let options = OpenOptions::default();
        let mut dst = vec![0u16; 6];
        read_region(&slice, None, &options, 1..3, 4..7, &mut dst).unwrap();
        assert_eq!(dst, [11, 12, 13, 18, 19, 20]);
        let err = read_region(&slice, None, &options, 0..6, 0..1, &mut [0u16; 6]).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Usage);
        assert!(err.to_string().contains("7x5"), "{err}");
        let err = read_region(&slice, None, &options, 2..2, 0..1, &mut [0u16; 0]).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Usage);
        let err = read_region(&slice, None, &options, 0..1, 0..2, &mut [0u16; 3]).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Mismatch);
        let err = read_region(&slice, None, &options, 0..1, 0..1, &mut [0u8; 1]).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Mismatch);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
