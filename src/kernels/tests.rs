//! The dispatch's guard: every kernel, on every input that is too short, panics
//! before it reads (never an out-of-bounds read), in debug and release builds,
//! for every sample type.

use super::{Kernel, average_rows};
use crate::Sample;

fn all_kernels() -> [Kernel; 4] {
    [Kernel::Scalar, Kernel::Portable, Kernel::Sse2, Kernel::Avx2]
}

fn panics(f: impl FnOnce() + std::panic::UnwindSafe) -> bool {
    std::panic::catch_unwind(f).is_err()
}

fn short_rows_panic<T: Sample + std::panic::RefUnwindSafe>(one: T) {
    for kernel in all_kernels() {
        for out_len in [1usize, 7, 8, 16, 33, 64] {
            for short in [0usize, 1, 2 * out_len - 1] {
                let full = vec![one; 2 * out_len];
                let cut = vec![one; short];
                // Each of the four rows in turn is the short one.
                for which in 0..4 {
                    let rows: Vec<&[T]> = (0..4)
                        .map(|i| if i == which { &cut[..] } else { &full[..] })
                        .collect();
                    assert!(
                        panics(|| {
                            let mut out = vec![T::default(); out_len];
                            average_rows(kernel, rows[0], rows[1], rows[2], rows[3], &mut out);
                        }),
                        "{} kernel read {short} {} samples as {}",
                        kernel.name(),
                        T::TYPE,
                        2 * out_len
                    );
                }
            }
        }
    }
}

#[test]
fn short_rows_panic_before_any_kernel_reads() {
    short_rows_panic(1u8);
    short_rows_panic(1u16);
    short_rows_panic(-1i16);
    short_rows_panic(1.0f32);
}

#[test]
fn empty_output_reads_nothing() {
    for kernel in all_kernels() {
        let mut out: [u16; 0] = [];
        average_rows(kernel, &[], &[], &[], &[], &mut out);
        let mut out: [f32; 0] = [];
        average_rows(kernel, &[], &[], &[], &[], &mut out);
    }
}

#[test]
fn longer_rows_are_fine() {
    for kernel in all_kernels() {
        let long = vec![8u16; 100];
        let mut out = vec![0u16; 33];
        average_rows(kernel, &long, &long, &long, &long, &mut out);
        assert!(out.iter().all(|&v| v == 8), "{}", kernel.name());
        let long = vec![-8i16; 100];
        let mut out = vec![0i16; 33];
        average_rows(kernel, &long, &long, &long, &long, &mut out);
        assert!(out.iter().all(|&v| v == -8), "{}", kernel.name());
    }
}
