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

/// Loads 16 u16 of `row` at sample `i` and returns 8 pair sums, each less
/// 65536: the samples are moved into i16 range (`^ 0x8000` is `- 32768`) so
/// that one `madd` adds each pair into an i32. The kernel's accumulator starts
/// 4 * 65536 higher to make up for the four rows.
///
/// # Safety
/// AVX2 must be available and `row[i..i + 16]` in bounds.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn pairs_u16_avx2(row: &[u16], i: usize) -> __m256i {
    debug_assert!(i + 16 <= row.len());
    // SAFETY: the caller guarantees 16 samples from `i`; loadu has no alignment requirement.
    let v = unsafe { _mm256_loadu_si256(row.as_ptr().add(i).cast()) };
    let signed = _mm256_xor_si256(v, _mm256_set1_epi16(i16::MIN));
    _mm256_madd_epi16(signed, _mm256_set1_epi16(1))
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

/// Loads 32 u8 of `row` at sample `i` and returns 16 u16 pair sums: one
/// `maddubs` (unsigned bytes times signed ones, adjacent products added; at
/// most 510, so never saturated).
///
/// # Safety
/// AVX2 must be available and `row[i..i + 32]` in bounds.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn pairs_u8_avx2(row: &[u8], i: usize) -> __m256i {
    debug_assert!(i + 32 <= row.len());
    // SAFETY: the caller guarantees 32 samples from `i`.
    let v = unsafe { _mm256_loadu_si256(row.as_ptr().add(i).cast()) };
    _mm256_maddubs_epi16(v, _mm256_set1_epi8(1))
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

/// One row kernel: `$lanes` outputs per step from two `$pairs` loads per input
/// row (each giving `$lanes / 2` widened pair sums), accumulated from `$init`,
/// turned into `$lanes` outputs by `$finish` and stored with `$store`; the tail
/// shorter than a step goes to the scalar specification.
macro_rules! row_kernel {
    (
        $(#[$doc:meta])*
        $name:ident($T:ty), $feature:literal, lanes $lanes:literal,
        init $init:expr, add $add:ident, pairs $pairs:ident,
        finish |$lo:ident, $hi:ident| $finish:expr, store $store:ident
    ) => {
        $(#[$doc])*
        ///
        /// # Safety
        #[doc = concat!("The CPU must support ", $feature, ". Inputs hold at least `2 * out.len()` samples.")]
        #[target_feature(enable = $feature)]
        pub unsafe fn $name(a0: &[$T], a1: &[$T], b0: &[$T], b1: &[$T], out: &mut [$T]) {
            let n = out.len();
            let steps = n / $lanes;
            for s in 0..steps {
                let (i, o) = (2 * $lanes * s, $lanes * s);
                let (mut $lo, mut $hi) = ($init, $init);
                for row in [a0, a1, b0, b1] {
                    // SAFETY: i + 2 * lanes <= 2 * n <= row.len(); the feature is enabled.
                    unsafe {
                        $lo = $add($lo, $pairs(row, i));
                        $hi = $add($hi, $pairs(row, i + $lanes));
                    }
                }
                let res = $finish;
                // SAFETY: o + lanes <= n = out.len(); storeu has no alignment requirement.
                unsafe { $store(out.as_mut_ptr().add(o).cast(), res) };
            }
            tail(a0, a1, b0, b1, out, steps * $lanes);
        }
    };
}

row_kernel! {
    /// SSE2 kernel for 16-bit samples: 8 outputs per step. SSE2 has no unsigned
    /// 32->16 pack: the 0..=65535 results are shifted down by 32768 into i16
    /// range, packed with (here exact) signed saturation, then the sign bit is
    /// flipped to add the 32768 back.
    average_rows_u16_sse2(u16), "sse2", lanes 8,
    init _mm_set1_epi32(4), add _mm_add_epi32, pairs pairs_u16_sse2,
    finish |lo, hi| {
        let half = _mm_set1_epi32(32768);
        let lo = _mm_sub_epi32(_mm_srli_epi32(lo, 3), half);
        let hi = _mm_sub_epi32(_mm_srli_epi32(hi, 3), half);
        _mm_xor_si128(_mm_packs_epi32(lo, hi), _mm_set1_epi16(i16::MIN))
    },
    store _mm_storeu_si128
}

row_kernel! {
    /// AVX2 kernel for 16-bit samples: 16 outputs per step. Each lane is <= 65535
    /// after the shift, so unsigned saturation is exact; packus works per 128-bit
    /// half, so a 64-bit permute restores the order.
    average_rows_u16_avx2(u16), "avx2", lanes 16,
    init _mm256_set1_epi32(4 + 4 * 65536), add _mm256_add_epi32, pairs pairs_u16_avx2,
    finish |lo, hi| {
        let packed = _mm256_packus_epi32(_mm256_srli_epi32(lo, 3), _mm256_srli_epi32(hi, 3));
        _mm256_permute4x64_epi64(packed, 0b11_01_10_00)
    },
    store _mm256_storeu_si256
}

row_kernel! {
    /// SSE2 kernel for 8-bit samples: 16 outputs per step (sums stay <= 8 x 255 + 4).
    average_rows_u8_sse2(u8), "sse2", lanes 16,
    init _mm_set1_epi16(4), add _mm_add_epi16, pairs pairs_u8_sse2,
    finish |lo, hi| _mm_packus_epi16(_mm_srli_epi16(lo, 3), _mm_srli_epi16(hi, 3)),
    store _mm_storeu_si128
}

row_kernel! {
    /// AVX2 kernel for 8-bit samples: 32 outputs per step.
    average_rows_u8_avx2(u8), "avx2", lanes 32,
    init _mm256_set1_epi16(4), add _mm256_add_epi16, pairs pairs_u8_avx2,
    finish |lo, hi| {
        let packed = _mm256_packus_epi16(_mm256_srli_epi16(lo, 3), _mm256_srli_epi16(hi, 3));
        _mm256_permute4x64_epi64(packed, 0b11_01_10_00)
    },
    store _mm256_storeu_si256
}

row_kernel! {
    /// SSE2 kernel for signed 16-bit samples: 8 outputs per step. The arithmetic
    /// shift is the floor; the means lie in i16 range, so signed saturation is exact.
    average_rows_i16_sse2(i16), "sse2", lanes 8,
    init _mm_set1_epi32(4), add _mm_add_epi32, pairs pairs_i16_sse2,
    finish |lo, hi| _mm_packs_epi32(_mm_srai_epi32(lo, 3), _mm_srai_epi32(hi, 3)),
    store _mm_storeu_si128
}

row_kernel! {
    /// AVX2 kernel for signed 16-bit samples: 16 outputs per step.
    average_rows_i16_avx2(i16), "avx2", lanes 16,
    init _mm256_set1_epi32(4), add _mm256_add_epi32, pairs pairs_i16_avx2,
    finish |lo, hi| {
        let packed = _mm256_packs_epi32(_mm256_srai_epi32(lo, 3), _mm256_srai_epi32(hi, 3));
        _mm256_permute4x64_epi64(packed, 0b11_01_10_00)
    },
    store _mm256_storeu_si256
}

/// The outputs from `done` on, by the scalar specification.
#[inline(always)]
fn tail<T: scalar::Mean>(a0: &[T], a1: &[T], b0: &[T], b1: &[T], out: &mut [T], done: usize) {
    let i = 2 * done;
    scalar::average_rows(&a0[i..], &a1[i..], &b0[i..], &b1[i..], &mut out[done..]);
}
