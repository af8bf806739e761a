//! SSE2 and AVX2 kernels for x86-64.
//!
//! The trick for every integer type: read a vector of 2N samples as N lanes of twice the
//! width, then `lane & low_mask` is the even sample and `lane >> bits` the odd
//! one, so one AND, one shift and one add give N horizontal pair sums already
//! widened (for i16 the even sample is sign-extended with a shift left and an
//! arithmetic shift right). Four rows of pair sums, plus 4, shifted right by 3, are the outputs.
//! Tails shorter than a vector go to the scalar specification.

#![allow(clippy::missing_safety_doc)]

use std::arch::x86_64::*;

use super::scalar;

/// Loads 8 u16 of `row` starting at sample `i` and returns 4 u32 horizontal pair sums.
///
/// # Safety
/// `row[i..i + 8]` must be in bounds.
#[inline]
#[target_feature(enable = "sse2")]
unsafe fn pairs_u16_sse2(row: &[u16], i: usize) -> __m128i {
    debug_assert!(i + 8 <= row.len());
    // SAFETY: the caller guarantees 8 samples from `i`; loadu has no alignment requirement.
    let v = unsafe { _mm_loadu_si128(row.as_ptr().add(i).cast()) };
    _mm_add_epi32(
        _mm_and_si128(v, _mm_set1_epi32(0xFFFF)),
        _mm_srli_epi32(v, 16),
    )
}

/// SSE2 kernel for 16-bit samples: 8 outputs per step.
///
/// # Safety
/// The CPU must support SSE2 (every x86-64 CPU does). Inputs hold at least `2 * out.len()` samples.
#[target_feature(enable = "sse2")]
pub unsafe fn average_rows_u16_sse2(
    a0: &[u16],
    a1: &[u16],
    b0: &[u16],
    b1: &[u16],
    out: &mut [u16],
) {
    let n = out.len();
    let steps = n / 8;
    let four = _mm_set1_epi32(4);
    let half = _mm_set1_epi32(32768);
    let flip = _mm_set1_epi16(i16::MIN);
    for s in 0..steps {
        let (i, o) = (16 * s, 8 * s);
        let mut lo = four;
        let mut hi = four;
        for row in [a0, a1, b0, b1] {
            // SAFETY: i + 16 <= 2 * n <= row.len().
            unsafe {
                lo = _mm_add_epi32(lo, pairs_u16_sse2(row, i));
                hi = _mm_add_epi32(hi, pairs_u16_sse2(row, i + 8));
            }
        }
        // SSE2 has no unsigned 32->16 pack: shift the 0..=65535 results down by
        // 32768 into i16 range, pack with (here exact) signed saturation, then
        // flip the sign bit to add the 32768 back.
        let lo = _mm_sub_epi32(_mm_srli_epi32(lo, 3), half);
        let hi = _mm_sub_epi32(_mm_srli_epi32(hi, 3), half);
        let packed = _mm_packs_epi32(lo, hi);
        let res = _mm_xor_si128(packed, flip);
        // SAFETY: o + 8 <= n = out.len().
        unsafe { _mm_storeu_si128(out.as_mut_ptr().add(o).cast(), res) };
    }
    tail(a0, a1, b0, b1, out, steps * 8);
}

/// Loads 16 u16 of `row` at sample `i` and returns 8 u32 pair sums.
///
/// # Safety
/// AVX2 must be available and `row[i..i + 16]` in bounds.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn pairs_u16_avx2(row: &[u16], i: usize) -> __m256i {
    debug_assert!(i + 16 <= row.len());
    // SAFETY: the caller guarantees 16 samples from `i`; loadu has no alignment requirement.
    let v = unsafe { _mm256_loadu_si256(row.as_ptr().add(i).cast()) };
    _mm256_add_epi32(
        _mm256_and_si256(v, _mm256_set1_epi32(0xFFFF)),
        _mm256_srli_epi32(v, 16),
    )
}

/// AVX2 kernel for 16-bit samples: 16 outputs per step.
///
/// # Safety
/// The CPU must support AVX2. Inputs hold at least `2 * out.len()` samples.
#[target_feature(enable = "avx2")]
pub unsafe fn average_rows_u16_avx2(
    a0: &[u16],
    a1: &[u16],
    b0: &[u16],
    b1: &[u16],
    out: &mut [u16],
) {
    let n = out.len();
    let steps = n / 16;
    let four = _mm256_set1_epi32(4);
    for s in 0..steps {
        let (i, o) = (32 * s, 16 * s);
        let mut lo = four;
        let mut hi = four;
        for row in [a0, a1, b0, b1] {
            // SAFETY: i + 32 <= 2 * n <= row.len(); AVX2 is enabled for this function.
            unsafe {
                lo = _mm256_add_epi32(lo, pairs_u16_avx2(row, i));
                hi = _mm256_add_epi32(hi, pairs_u16_avx2(row, i + 16));
            }
        }
        // Each lane is <= 65535 after the shift, so unsigned saturation is exact;
        // packus works per 128-bit half, so restore order with a 64-bit permute.
        let packed = _mm256_packus_epi32(_mm256_srli_epi32(lo, 3), _mm256_srli_epi32(hi, 3));
        let res = _mm256_permute4x64_epi64(packed, 0b11_01_10_00);
        // SAFETY: o + 16 <= n = out.len().
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(o).cast(), res) };
    }
    tail(a0, a1, b0, b1, out, steps * 16);
}

/// Loads 16 u8 of `row` at sample `i` and returns 8 u16 pair sums.
///
/// # Safety
/// `row[i..i + 16]` must be in bounds.
#[inline]
#[target_feature(enable = "sse2")]
unsafe fn pairs_u8_sse2(row: &[u8], i: usize) -> __m128i {
    debug_assert!(i + 16 <= row.len());
    // SAFETY: the caller guarantees 16 samples from `i`.
    let v = unsafe { _mm_loadu_si128(row.as_ptr().add(i).cast()) };
    _mm_add_epi16(_mm_and_si128(v, _mm_set1_epi16(0xFF)), _mm_srli_epi16(v, 8))
}

/// SSE2 kernel for 8-bit samples: 16 outputs per step.
///
/// # Safety
/// The CPU must support SSE2. Inputs hold at least `2 * out.len()` samples.
#[target_feature(enable = "sse2")]
pub unsafe fn average_rows_u8_sse2(a0: &[u8], a1: &[u8], b0: &[u8], b1: &[u8], out: &mut [u8]) {
    let n = out.len();
    let steps = n / 16;
    let four = _mm_set1_epi16(4);
    for s in 0..steps {
        let (i, o) = (32 * s, 16 * s);
        let mut lo = four;
        let mut hi = four;
        for row in [a0, a1, b0, b1] {
            // SAFETY: i + 32 <= 2 * n <= row.len(). Sums stay <= 8 * 255 + 4.
            unsafe {
                lo = _mm_add_epi16(lo, pairs_u8_sse2(row, i));
                hi = _mm_add_epi16(hi, pairs_u8_sse2(row, i + 16));
            }
        }
        let res = _mm_packus_epi16(_mm_srli_epi16(lo, 3), _mm_srli_epi16(hi, 3));
        // SAFETY: o + 16 <= n = out.len().
        unsafe { _mm_storeu_si128(out.as_mut_ptr().add(o).cast(), res) };
    }
    tail(a0, a1, b0, b1, out, steps * 16);
}

/// Loads 32 u8 of `row` at sample `i` and returns 16 u16 pair sums.
///
/// # Safety
/// AVX2 must be available and `row[i..i + 32]` in bounds.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn pairs_u8_avx2(row: &[u8], i: usize) -> __m256i {
    debug_assert!(i + 32 <= row.len());
    // SAFETY: the caller guarantees 32 samples from `i`.
    let v = unsafe { _mm256_loadu_si256(row.as_ptr().add(i).cast()) };
    _mm256_add_epi16(
        _mm256_and_si256(v, _mm256_set1_epi16(0xFF)),
        _mm256_srli_epi16(v, 8),
    )
}

/// AVX2 kernel for 8-bit samples: 32 outputs per step.
///
/// # Safety
/// The CPU must support AVX2. Inputs hold at least `2 * out.len()` samples.
#[target_feature(enable = "avx2")]
pub unsafe fn average_rows_u8_avx2(a0: &[u8], a1: &[u8], b0: &[u8], b1: &[u8], out: &mut [u8]) {
    let n = out.len();
    let steps = n / 32;
    let four = _mm256_set1_epi16(4);
    for s in 0..steps {
        let (i, o) = (64 * s, 32 * s);
        let mut lo = four;
        let mut hi = four;
        for row in [a0, a1, b0, b1] {
            // SAFETY: i + 64 <= 2 * n <= row.len(); AVX2 is enabled for this function.
            unsafe {
                lo = _mm256_add_epi16(lo, pairs_u8_avx2(row, i));
                hi = _mm256_add_epi16(hi, pairs_u8_avx2(row, i + 32));
            }
        }
        let packed = _mm256_packus_epi16(_mm256_srli_epi16(lo, 3), _mm256_srli_epi16(hi, 3));
        let res = _mm256_permute4x64_epi64(packed, 0b11_01_10_00);
        // SAFETY: o + 32 <= n = out.len().
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(o).cast(), res) };
    }
    tail(a0, a1, b0, b1, out, steps * 32);
}

/// Loads 8 i16 of `row` starting at sample `i` and returns 4 i32 horizontal pair
/// sums: the even sample sign-extended by a left then arithmetic right shift.
///
/// # Safety
/// `row[i..i + 8]` must be in bounds.
#[inline]
#[target_feature(enable = "sse2")]
unsafe fn pairs_i16_sse2(row: &[i16], i: usize) -> __m128i {
    debug_assert!(i + 8 <= row.len());
    // SAFETY: the caller guarantees 8 samples from `i`; loadu has no alignment requirement.
    let v = unsafe { _mm_loadu_si128(row.as_ptr().add(i).cast()) };
    _mm_add_epi32(
        _mm_srai_epi32(_mm_slli_epi32(v, 16), 16),
        _mm_srai_epi32(v, 16),
    )
}

/// SSE2 kernel for signed 16-bit samples: 8 outputs per step.
///
/// # Safety
/// The CPU must support SSE2. Inputs hold at least `2 * out.len()` samples.
#[target_feature(enable = "sse2")]
pub unsafe fn average_rows_i16_sse2(
    a0: &[i16],
    a1: &[i16],
    b0: &[i16],
    b1: &[i16],
    out: &mut [i16],
) {
    let n = out.len();
    let steps = n / 8;
    let four = _mm_set1_epi32(4);
    for s in 0..steps {
        let (i, o) = (16 * s, 8 * s);
        let mut lo = four;
        let mut hi = four;
        for row in [a0, a1, b0, b1] {
            // SAFETY: i + 16 <= 2 * n <= row.len().
            unsafe {
                lo = _mm_add_epi32(lo, pairs_i16_sse2(row, i));
                hi = _mm_add_epi32(hi, pairs_i16_sse2(row, i + 8));
            }
        }
        // The shifted means lie in i16 range, so signed saturation is exact.
        let res = _mm_packs_epi32(_mm_srai_epi32(lo, 3), _mm_srai_epi32(hi, 3));
        // SAFETY: o + 8 <= n = out.len().
        unsafe { _mm_storeu_si128(out.as_mut_ptr().add(o).cast(), res) };
    }
    tail(a0, a1, b0, b1, out, steps * 8);
}

/// Loads 16 i16 of `row` at sample `i` and returns 8 i32 pair sums.
///
/// # Safety
/// AVX2 must be available and `row[i..i + 16]` in bounds.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn pairs_i16_avx2(row: &[i16], i: usize) -> __m256i {
    debug_assert!(i + 16 <= row.len());
    // SAFETY: the caller guarantees 16 samples from `i`; loadu has no alignment requirement.
    let v = unsafe { _mm256_loadu_si256(row.as_ptr().add(i).cast()) };
    _mm256_add_epi32(
        _mm256_srai_epi32(_mm256_slli_epi32(v, 16), 16),
        _mm256_srai_epi32(v, 16),
    )
}

/// AVX2 kernel for signed 16-bit samples: 16 outputs per step.
///
/// # Safety
/// The CPU must support AVX2. Inputs hold at least `2 * out.len()` samples.
#[target_feature(enable = "avx2")]
pub unsafe fn average_rows_i16_avx2(
    a0: &[i16],
    a1: &[i16],
    b0: &[i16],
    b1: &[i16],
    out: &mut [i16],
) {
    let n = out.len();
    let steps = n / 16;
    let four = _mm256_set1_epi32(4);
    for s in 0..steps {
        let (i, o) = (32 * s, 16 * s);
        let mut lo = four;
        let mut hi = four;
        for row in [a0, a1, b0, b1] {
            // SAFETY: i + 32 <= 2 * n <= row.len(); AVX2 is enabled for this function.
            unsafe {
                lo = _mm256_add_epi32(lo, pairs_i16_avx2(row, i));
                hi = _mm256_add_epi32(hi, pairs_i16_avx2(row, i + 16));
            }
        }
        // Exact signed saturation; packs works per 128-bit half, so restore order.
        let packed = _mm256_packs_epi32(_mm256_srai_epi32(lo, 3), _mm256_srai_epi32(hi, 3));
        let res = _mm256_permute4x64_epi64(packed, 0b11_01_10_00);
        // SAFETY: o + 16 <= n = out.len().
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(o).cast(), res) };
    }
    tail(a0, a1, b0, b1, out, steps * 16);
}

/// The outputs from `done` on, by the scalar specification.
#[inline(always)]
fn tail<T: scalar::Mean>(a0: &[T], a1: &[T], b0: &[T], b1: &[T], out: &mut [T], done: usize) {
    let i = 2 * done;
    scalar::average_rows(&a0[i..], &a1[i..], &b0[i..], &b1[i..], &mut out[done..]);
}
