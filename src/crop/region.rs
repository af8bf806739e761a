//! The one way a crop reaches pixels: "rows y0..y1, columns x0..x1 of page p".
//!
//! Every crop path (files, [`CropPlan::crop_to_array`](super::CropPlan::crop_to_array))
//! calls [`read_region`] and nothing else. Its body is, for now, the opened
//! [`Slice`]'s rows with the box copied out of them: a mapped file faults in
//! only the pages of the box's rows, a file read under `ReadMode::Buffered` or
//! a compressed one is read or decoded whole. The reading layer of issue 20
//! (one layout, one chunk walk) replaces this body with a windowed read that
//! touches only the box's bytes and decodes only the chunks that meet it; no
//! caller changes then.

use std::ops::Range;

use crate::stack::SliceRef;
use crate::{Error, OpenOptions, Sample, Slice};

/// Copies rows `rows` and columns `cols` of `slice` (a page of a file), opened
/// with `options`, into `dst`, row-major: `dst.len()` must be
/// `rows.len() * cols.len()` ([`Error::Mismatch`] otherwise). `T` must be the
/// slice's sample type as served ([`Error::Mismatch`]); a box outside the slice
/// is an [`Error::Usage`] naming the file and its size.
pub(crate) fn read_region<T: Sample>(
    slice: &SliceRef,
    options: &OpenOptions,
    rows: Range<u32>,
    cols: Range<u32>,
    dst: &mut [T],
) -> Result<(), Error> {
    let opened = Slice::open_page(&slice.path, slice.page, options)?;
    let (width, height) = (opened.width(), opened.height());
    if rows.start >= rows.end || cols.start >= cols.end || rows.end > height || cols.end > width {
        return Err(Error::usage(format!(
            "{slice}: rows {}..{}, columns {}..{} are not a box inside its {width}x{height} pixels",
            rows.start, rows.end, cols.start, cols.end
        )));
    }
    let w = cols.len();
    if dst.len() as u64 != rows.len() as u64 * w as u64 {
        return Err(Error::mismatch(format!(
            "{slice}: destination holds {} samples, the {}x{} box has {}",
            dst.len(),
            w,
            rows.len(),
            rows.len() as u64 * w as u64
        )));
    }
    let all = opened.rows::<T>()?;
    let (x0, x1) = (cols.start as usize, cols.end as usize);
    for (out, y) in dst.chunks_exact_mut(w).zip(rows) {
        out.copy_from_slice(&all.row(y as usize)[x0..x1]);
    }
    Ok(())
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
        read_region(&slice, &options, 1..3, 4..7, &mut dst).unwrap();
        assert_eq!(dst, [11, 12, 13, 18, 19, 20]);
        let err = read_region(&slice, &options, 0..6, 0..1, &mut [0u16; 6]).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Usage);
        assert!(err.to_string().contains("7x5"), "{err}");
        let err = read_region(&slice, &options, 0..1, 0..2, &mut [0u16; 3]).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Mismatch);
        let err = read_region(&slice, &options, 0..1, 0..1, &mut [0u8; 1]).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Mismatch);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
