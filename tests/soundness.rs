//! Safe code cannot cause undefined behaviour, whatever it passes: every public
//! function that takes slices or sizes is called with empty, short, odd-length
//! and mismatched inputs and must return an error or panic, never read or write
//! out of bounds. `.ci/run` also runs this file with `--release`, where
//! `debug_assert!`s are gone and only real checks stand between a bad length and
//! a vector kernel's unchecked loads.

use std::panic::{UnwindSafe, catch_unwind};

use ctstack::{
    ErrorKind, Kernel, OpenOptions, Rows, Slice, average_pair, average_pair_with, write_slice,
};

/// `f` returned an error or panicked: anything but silently "succeeding" is
/// fine here; a crash ends the test process, which fails the test.
fn refused<T>(f: impl FnOnce() -> Result<T, ctstack::Error> + UnwindSafe) -> bool {
    !matches!(catch_unwind(f), Ok(Ok(_)))
}

/// Row views that lie about their shape cannot be made: `from_contiguous`
/// checks the length against width x height, with overflow.
#[test]
fn rows_cannot_claim_more_samples_than_they_have() {
    let data = [1u16; 12];
    for (w, h) in [
        (4, 4),
        (13, 1),
        (1, 13),
        (0, 1),
        (usize::MAX, 2),
        (2, usize::MAX),
    ] {
        assert!(
            Rows::from_contiguous(&data, w, h).is_none(),
            "{w}x{h} accepted"
        );
    }
    assert!(Rows::from_contiguous(&data, 4, 3).is_some());
    let empty: [u8; 0] = [];
    let rows = Rows::from_contiguous(&empty, 0, 0).unwrap();
    assert_eq!(rows.iter().count(), 0);
    let rows = Rows::from_contiguous(&data, 4, 3).unwrap();
    assert!(catch_unwind(|| rows.row(3)).is_err());
}

/// Every kernel, through the public entry points, with every bad shape.
#[test]
fn average_pair_refuses_every_bad_shape() {
    let a16 = vec![7u16; 64 * 3];
    let b16 = vec![9u16; 64 * 3];
    let a8 = vec![7u8; 33 * 5];
    for kernel in [Kernel::Scalar, Kernel::Portable, Kernel::Sse2, Kernel::Avx2] {
        let ra = Rows::from_contiguous(&a16, 64, 3).unwrap();
        let rb = Rows::from_contiguous(&b16, 64, 3).unwrap();
        let small = Rows::from_contiguous(&b16[..64], 64, 1).unwrap();
        let narrow = Rows::from_contiguous(&b16[..63 * 3], 63, 3).unwrap();
        for out_len in [0usize, 1, 31, 33, 64, 1000] {
            let mut out = vec![0u16; out_len];
            assert!(
                refused(move || average_pair_with(kernel, &ra, &rb, &mut out)),
                "{} accepted an output of {out_len} for 32",
                kernel.name()
            );
        }
        for other in [small, narrow] {
            let mut out = vec![0u16; 32];
            assert!(refused(move || average_pair_with(
                kernel, &ra, &other, &mut out
            )));
        }
        let mut out = vec![0u16; 32];
        average_pair_with(kernel, &ra, &rb, &mut out).unwrap();
        assert!(out.iter().all(|&v| v == 8), "{}", kernel.name());

        // Odd widths and heights: the last column and row are dropped, never read past.
        let r8 = Rows::from_contiguous(&a8, 33, 5).unwrap();
        let mut out8 = vec![0u8; 16 * 2];
        average_pair_with(kernel, &r8, &r8, &mut out8).unwrap();
        assert!(out8.iter().all(|&v| v == 7));
        let mut wrong = vec![0u8; 17 * 2];
        assert!(refused(move || average_pair_with(
            kernel, &r8, &r8, &mut wrong
        )));
    }
    // Empty images average to nothing.
    let empty: [u16; 0] = [];
    let re = Rows::from_contiguous(&empty, 0, 0).unwrap();
    average_pair(&re, &re, &mut []).unwrap();
    let one = [5u16];
    let r1 = Rows::from_contiguous(&one, 1, 1).unwrap();
    average_pair(&r1, &r1, &mut []).unwrap();
    let mut out = [0u16; 1];
    assert!(refused(move || average_pair(&r1, &r1, &mut out)));
}

/// A slice's pixels go out only into a buffer of exactly the right size.
#[test]
fn copy_to_refuses_wrong_lengths_and_types() {
    let dir = std::env::temp_dir().join(format!("ctstack-soundness-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.tif");
    let pixels: Vec<u16> = (0..15 * 7).map(|i| i as u16).collect();
    write_slice(&path, 15, 7, &pixels).unwrap();
    let slice = Slice::open(&path).unwrap();
    for n in [0usize, 1, 104, 106, 210] {
        let mut dst = vec![0u16; n];
        assert_eq!(
            slice.copy_to(&mut dst).unwrap_err().kind(),
            ErrorKind::Mismatch
        );
    }
    let mut wrong_type = vec![0u8; 105];
    assert_eq!(
        slice.copy_to(&mut wrong_type).unwrap_err().kind(),
        ErrorKind::Mismatch
    );
    let mut dst = vec![0u16; 105];
    slice.copy_to(&mut dst).unwrap();
    assert_eq!(dst, pixels);
    // Windows refuses to delete a mapped file: unmap before the folder goes.
    drop(slice);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `write_slice` checks the sample count against the size it is told.
#[test]
fn write_slice_refuses_wrong_lengths() {
    let dir = std::env::temp_dir().join(format!("ctstack-soundness-w-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.tif");
    let pixels = vec![1u8; 10];
    for (w, h) in [(3, 3), (11, 1), (5, 3), (u32::MAX, u32::MAX), (0, 10)] {
        assert!(
            refused(|| write_slice(&path, w, h, &pixels)),
            "{w}x{h} from 10 samples"
        );
        assert!(!path.exists());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Bytes in memory: empty, short, misaligned and truncated TIFFs are errors.
#[test]
fn from_bytes_refuses_short_and_misaligned_input() {
    let options = OpenOptions::default();
    for bytes in [
        &b""[..],
        b"I",
        b"II",
        b"II*\0",
        b"MM\0*\0\0\0\x08",
        b"II*\0\x08\0\0\0\x01\0",
    ] {
        assert!(Slice::from_bytes("short.tif", bytes, &options).is_err());
    }
    let dir = std::env::temp_dir().join(format!("ctstack-soundness-b-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("b.tif");
    write_slice(&path, 9, 5, &[3u16; 45]).unwrap();
    let file = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    // Misaligned on purpose: a copy, then a view of the copy.
    let mut shifted = vec![0u8];
    shifted.extend_from_slice(&file);
    let slice = Slice::from_bytes("b.tif", &shifted[1..], &options).unwrap();
    assert!(slice.contiguous::<u16>().unwrap().iter().all(|&v| v == 3));
    for cut in [1, 2, file.len() / 2, file.len() - 1] {
        assert!(
            Slice::from_bytes("cut.tif", &file[..file.len() - cut], &options).is_err(),
            "cut by {cut}"
        );
    }
}
