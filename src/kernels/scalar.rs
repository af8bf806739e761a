//! The specification: one output sample at a time, exactly as the math is written.

use crate::Sample;

/// `out[x] = (a0[2x] + a0[2x+1] + a1[2x] + a1[2x+1] + b0[2x] + b0[2x+1] + b1[2x] + b1[2x+1] + 4) >> 3`
/// for every `x < out.len()`. Inputs hold at least `2 * out.len()` samples.
pub fn average_rows<T: Sample>(a0: &[T], a1: &[T], b0: &[T], b1: &[T], out: &mut [T]) {
    for (x, o) in out.iter_mut().enumerate() {
        let i = 2 * x;
        let mut sum = 4u32;
        for row in [a0, a1, b0, b1] {
            sum += row[i].to_u32() + row[i + 1].to_u32();
        }
        *o = T::from_u32(sum >> 3);
    }
}
