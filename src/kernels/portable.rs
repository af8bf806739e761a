//! The portable kernel: the specification's arithmetic, written as zipped
//! iterators over pairs of samples so LLVM auto-vectorizes it for whatever the
//! target offers (SSE2 on any x86-64, NEON on aarch64). Checked: the release
//! build's `average_rows_u16` uses packed adds (`paddd`/`vpaddd`), see the
//! kernels benchmark. The default on architectures without hand-written kernels.

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
