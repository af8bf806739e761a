//! The specification: one output sample at a time, exactly as the math is written.
//!
//! It is kept scalar on purpose: `black_box` on the index hides the loop's shape
//! from LLVM, which would otherwise vectorize it, so this function stays both the
//! readable specification every other kernel is tested against and an honest
//! one-sample-at-a-time baseline for the benchmarks. Production code never runs it
//! on x86-64 for integer samples; elsewhere [`super::portable`] is the default.

use std::hint::black_box;

/// The mean of eight samples, per sample type: the rule every kernel implements.
pub trait Mean: Copy {
    /// The mean of a 2x2 block of each slice; `a` and `b` hold
    /// `[row 0 even, row 0 odd, row 1 even, row 1 odd]`.
    fn mean(a: [Self; 4], b: [Self; 4]) -> Self;
}

/// Unsigned integers: the exact sum in `u32` (8 x 65535 fits), `(sum + 4) >> 3`.
macro_rules! unsigned_mean {
    ($($T:ty),*) => {$(
        impl Mean for $T {
            #[inline(always)]
            fn mean(a: [$T; 4], b: [$T; 4]) -> $T {
                let sum = a.iter().chain(&b).fold(4u32, |s, &v| s + u32::from(v));
                // At most (8 x MAX + 4) / 8 = MAX: fits.
                (sum >> 3) as $T
            }
        }
    )*};
}
unsigned_mean!(u8, u16);

impl Mean for i16 {
    /// The exact sum in `i32`, `(sum + 4) >> 3` with an arithmetic shift: floor of
    /// `mean + 1/2`, so halves round up (towards +infinity: -2.5 becomes -2).
    #[inline(always)]
    fn mean(a: [i16; 4], b: [i16; 4]) -> i16 {
        let sum = a.iter().chain(&b).fold(4i32, |s, &v| s + i32::from(v));
        // Between (8 x -32768 + 4) >> 3 = -32768 and (8 x 32767 + 4) >> 3 = 32767.
        (sum >> 3) as i16
    }
}

impl Mean for f32 {
    /// In `f64`, in this order: `((a0 + a1) + (a2 + a3)) + ((b0 + b1) + (b2 + b3))`,
    /// times 1/8 (exact), then rounded once to the nearest `f32` (ties to even).
    /// Converting to `f64` is exact, and so is the sum unless the block mixes
    /// magnitudes more than about 2^26 apart; NaN in, NaN out; an infinity stays
    /// one unless the block also holds the opposite one (then NaN).
    #[inline(always)]
    fn mean(a: [f32; 4], b: [f32; 4]) -> f32 {
        let block =
            |v: [f32; 4]| (f64::from(v[0]) + f64::from(v[1])) + (f64::from(v[2]) + f64::from(v[3]));
        ((block(a) + block(b)) * 0.125) as f32
    }
}

/// `out[x]` is the [`Mean`] of `a0[2x], a0[2x+1], a1[2x], a1[2x+1]` and the same of
/// `b0, b1`, for every `x < out.len()`. Inputs hold at least `2 * out.len()` samples.
#[allow(clippy::needless_range_loop)] // the index is the point: it is what black_box hides
pub fn average_rows<T: Mean>(a0: &[T], a1: &[T], b0: &[T], b1: &[T], out: &mut [T]) {
    for x in 0..out.len() {
        let i = 2 * black_box(x);
        out[x] = T::mean(
            [a0[i], a0[i + 1], a1[i], a1[i + 1]],
            [b0[i], b0[i + 1], b1[i], b1[i + 1]],
        );
    }
}
