//! The specification: one output sample at a time, exactly as the math is written.
//!
//! It is kept scalar on purpose: `black_box` on the index hides the loop's shape
//! from LLVM, which would otherwise vectorize it, so this function stays both the
//! readable specification every other kernel is tested against and an honest
//! one-sample-at-a-time baseline for the benchmarks. Production code never runs it
//! on x86-64; elsewhere [`super::portable`] is the default.

use std::hint::black_box;

/// An unsigned sample whose sum of eight fits a `u32`.
pub trait Unsigned: Copy {
    fn widen(self) -> u32;
    /// `v` is at most the type's maximum.
    fn narrow(v: u32) -> Self;
}

impl Unsigned for u8 {
    fn widen(self) -> u32 {
        u32::from(self)
    }
    fn narrow(v: u32) -> u8 {
        v as u8
    }
}

impl Unsigned for u16 {
    fn widen(self) -> u32 {
        u32::from(self)
    }
    fn narrow(v: u32) -> u16 {
        v as u16
    }
}

/// `out[x] = (a0[2x] + a0[2x+1] + a1[2x] + a1[2x+1] + b0[2x] + b0[2x+1] + b1[2x] + b1[2x+1] + 4) >> 3`
/// for every `x < out.len()`. Inputs hold at least `2 * out.len()` samples.
#[allow(clippy::needless_range_loop)] // the index is the point: it is what black_box hides
pub fn average_rows<T: Unsigned>(a0: &[T], a1: &[T], b0: &[T], b1: &[T], out: &mut [T]) {
    for x in 0..out.len() {
        let i = 2 * black_box(x);
        let mut sum = 4u32;
        for row in [a0, a1, b0, b1] {
            sum += row[i].widen() + row[i + 1].widen();
        }
        out[x] = T::narrow(sum >> 3);
    }
}
