//! The portable kernel: the specification's arithmetic, written as zipped
//! iterators over pairs of samples so LLVM auto-vectorizes it for whatever the
//! target offers (SSE2 on any x86-64, NEON on aarch64). Checked: the release
//! build's `average_rows_u16` uses packed adds (`paddd`/`vpaddd`), see the
//! kernels benchmark. The default on architectures without hand-written kernels,
//! and for `f32` everywhere (LLVM vectorizes the `f64` widening and adds).

/// 16-bit rows; sums in `u32` (8 x 65535 does not fit 16 bits).
pub fn average_rows_u16(a0: &[u16], a1: &[u16], b0: &[u16], b1: &[u16], out: &mut [u16]) {
    let pairs = a0
        .chunks_exact(2)
        .zip(a1.chunks_exact(2))
        .zip(b0.chunks_exact(2).zip(b1.chunks_exact(2)));
    for (o, ((p, q), (r, s))) in out.iter_mut().zip(pairs) {
        let sum = u32::from(p[0])
            + u32::from(p[1])
            + u32::from(q[0])
            + u32::from(q[1])
            + u32::from(r[0])
            + u32::from(r[1])
            + u32::from(s[0])
            + u32::from(s[1]);
        *o = ((sum + 4) >> 3) as u16;
    }
}

/// 8-bit rows; sums in `u16` (8 x 255 fits), which doubles the lanes per vector.
pub fn average_rows_u8(a0: &[u8], a1: &[u8], b0: &[u8], b1: &[u8], out: &mut [u8]) {
    let pairs = a0
        .chunks_exact(2)
        .zip(a1.chunks_exact(2))
        .zip(b0.chunks_exact(2).zip(b1.chunks_exact(2)));
    for (o, ((p, q), (r, s))) in out.iter_mut().zip(pairs) {
        let sum = u16::from(p[0])
            + u16::from(p[1])
            + u16::from(q[0])
            + u16::from(q[1])
            + u16::from(r[0])
            + u16::from(r[1])
            + u16::from(s[0])
            + u16::from(s[1]);
        *o = ((sum + 4) >> 3) as u8;
    }
}

/// Signed 16-bit rows; sums in `i32`, arithmetic shift (floor of mean + 1/2).
pub fn average_rows_i16(a0: &[i16], a1: &[i16], b0: &[i16], b1: &[i16], out: &mut [i16]) {
    let pairs = a0
        .chunks_exact(2)
        .zip(a1.chunks_exact(2))
        .zip(b0.chunks_exact(2).zip(b1.chunks_exact(2)));
    for (o, ((p, q), (r, s))) in out.iter_mut().zip(pairs) {
        let sum = i32::from(p[0])
            + i32::from(p[1])
            + i32::from(q[0])
            + i32::from(q[1])
            + i32::from(r[0])
            + i32::from(r[1])
            + i32::from(s[0])
            + i32::from(s[1]);
        *o = ((sum + 4) >> 3) as i16;
    }
}

/// 32-bit float rows: in `f64`, in the specification's order, one rounding.
pub fn average_rows_f32(a0: &[f32], a1: &[f32], b0: &[f32], b1: &[f32], out: &mut [f32]) {
    let pairs = a0
        .chunks_exact(2)
        .zip(a1.chunks_exact(2))
        .zip(b0.chunks_exact(2).zip(b1.chunks_exact(2)));
    let w = f64::from;
    for (o, ((p, q), (r, s))) in out.iter_mut().zip(pairs) {
        let a = (w(p[0]) + w(p[1])) + (w(q[0]) + w(q[1]));
        let b = (w(r[0]) + w(r[1])) + (w(s[0]) + w(s[1]));
        *o = ((a + b) * 0.125) as f32;
    }
}
