//! The 2x2x2 averaging kernels: the scalar specification, per-ISA vector
//! versions, and the one dispatch that picks among them.
//!
//! Each output sample is the mean of eight: a 2x2 block of slice `a` and the
//! same block of slice `b`. An odd last row or column is dropped. The rule per
//! sample type:
//!
//! - **u8, u16, i16**: `(sum of the eight + 4) >> 3`, the sum exact (in `u32` or
//!   `i32`), the shift arithmetic for i16: the exact mean, rounded once, halves
//!   upwards (towards +infinity, so -2.5 gives -2 and 2.5 gives 3).
//! - **f32**: the sum in `f64`, in the order `((a00 + a01) + (a10 + a11)) +
//!   ((b00 + b01) + (b10 + b11))`, times 1/8, rounded once to the nearest `f32`
//!   (ties to even). Widening is exact and so is the sum unless a block mixes
//!   magnitudes more than about 2^26 apart. A NaN anywhere in the block gives NaN;
//!   +inf and -inf in one block give NaN; one infinity gives that infinity.
//!
//! Every kernel gives the scalar specification's result bit for bit (for f32,
//! NaN for NaN); `tests/kernels.rs` checks all of them on every tail width.

mod portable;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

use rayon::prelude::*;

use crate::sample::internal::TOKEN;
use crate::{Error, Rows, Sample};

/// One implementation of the row kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kernel {
    /// The specification, one sample at a time, deliberately not vectorized. Always available.
    Scalar,
    /// The specification's arithmetic written for LLVM's auto-vectorizer. Always available.
    Portable,
    /// x86-64 SSE2 (every x86-64 CPU has it).
    Sse2,
    /// x86-64 AVX2, where the CPU has it.
    Avx2,
}

impl Kernel {
    /// The fastest kernel this CPU supports (checked at run time, once per call).
    pub fn best() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                return Kernel::Avx2;
            }
            Kernel::Sse2
        }
        #[cfg(not(target_arch = "x86_64"))]
        Kernel::Portable
    }

    /// Every kernel this CPU can run, scalar first.
    pub fn available() -> Vec<Kernel> {
        [Kernel::Scalar, Kernel::Portable, Kernel::Sse2, Kernel::Avx2]
            .into_iter()
            .filter(|k| k.is_supported())
            .collect()
    }

    /// Whether this CPU can run the kernel.
    pub fn is_supported(self) -> bool {
        match self {
            Kernel::Scalar | Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Sse2 => std::arch::is_x86_feature_detected!("sse2"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// A short name: `scalar`, `sse2`, `avx2`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Portable => "portable",
            Kernel::Sse2 => "sse2",
            Kernel::Avx2 => "avx2",
        }
    }
}

/// Output rows per rayon task. Rows of a 2752-wide slice are 2.7 KB of output
/// and 22 KB of input: 16 rows make tasks of ~350 KB input, large enough that
/// scheduling costs vanish, small enough to balance two to many cores.
const ROWS_PER_TASK: usize = 16;

/// Writes the 2x2x2 mean of `a` and `b` into `out`, row-major,
/// `(width / 2) * (height / 2)` samples, with the fastest kernel, rows split across
/// rayon's threads.
///
/// `a` and `b` must have the same size (`a` and `b` may be the same slice).
pub fn average_pair<T: Sample>(
    a: &Rows<'_, T>,
    b: &Rows<'_, T>,
    out: &mut [T],
) -> Result<(), Error> {
    average_pair_with(Kernel::best(), a, b, out)
}

/// [`average_pair`] with a chosen kernel: to compare kernels on your machine, or
/// to pin one. A kernel the CPU does not support runs the scalar specification.
///
/// ```
/// use ctstack::{Kernel, Rows, average_pair_with};
///
/// let a = [10u16, 20, 30, 40]; // a 2x2 slice
/// let b = [50u16, 60, 70, 80];
/// let (ra, rb) = (Rows::from_contiguous(&a, 2, 2).unwrap(), Rows::from_contiguous(&b, 2, 2).unwrap());
/// let mut out = [0u16; 1];
/// average_pair_with(Kernel::Scalar, &ra, &rb, &mut out)?;
/// assert_eq!(out, [45]); // (360 + 4) >> 3
/// # Ok::<(), ctstack::Error>(())
/// ```
pub fn average_pair_with<T: Sample>(
    kernel: Kernel,
    a: &Rows<'_, T>,
    b: &Rows<'_, T>,
    out: &mut [T],
) -> Result<(), Error> {
    check_pair(a, b, out)?;
    let ow = a.width() / 2;
    if ow == 0 {
        return Ok(());
    }
    out.par_chunks_mut(ow * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(task, chunk)| {
            for (r, orow) in chunk.chunks_exact_mut(ow).enumerate() {
                let y = 2 * (task * ROWS_PER_TASK + r);
                average_rows(kernel, a.row(y), a.row(y + 1), b.row(y), b.row(y + 1), orow);
            }
        });
    Ok(())
}

fn check_pair<T: Sample>(a: &Rows<'_, T>, b: &Rows<'_, T>, out: &[T]) -> Result<(), Error> {
    if (a.width(), a.height()) != (b.width(), b.height()) {
        return Err(Error::mismatch(format!(
            "average_pair: slices differ in size ({}x{} and {}x{})",
            a.width(),
            a.height(),
            b.width(),
            b.height()
        )));
    }
    let want = (a.width() / 2) * (a.height() / 2);
    if out.len() != want {
        return Err(Error::mismatch(format!(
            "average_pair: output holds {} samples, a {}x{} pair makes {want}",
            out.len(),
            a.width(),
            a.height()
        )));
    }
    Ok(())
}

/// A row kernel: `out.len()` outputs from four input rows of at least
/// `2 * out.len()` samples each.
pub type RowFn<T> = fn(&[T], &[T], &[T], &[T], &mut [T]);

/// A vector row kernel.
///
/// # Safety
/// The CPU supports the kernel's instruction set, and every input row holds at
/// least `2 * out.len()` samples.
pub type UnsafeRowFn<T> = unsafe fn(&[T], &[T], &[T], &[T], &mut [T]);

/// The row kernels of one sample type: what [`Kernel`] chooses among. A vector
/// kernel a type lacks is `None` and runs the portable one.
#[derive(Clone, Copy)]
pub struct RowKernels<T: 'static> {
    pub scalar: RowFn<T>,
    pub portable: RowFn<T>,
    pub sse2: Option<UnsafeRowFn<T>>,
    pub avx2: Option<UnsafeRowFn<T>>,
}

/// `Some(kernel)` on x86-64, `None` elsewhere.
macro_rules! x86_kernel {
    ($name:ident) => {{
        #[cfg(target_arch = "x86_64")]
        let kernel: Option<UnsafeRowFn<_>> = Some(x86::$name);
        #[cfg(not(target_arch = "x86_64"))]
        let kernel = None;
        kernel
    }};
}

pub(crate) const U16_KERNELS: RowKernels<u16> = RowKernels {
    scalar: scalar::average_rows::<u16>,
    portable: portable::average_rows_u16,
    sse2: x86_kernel!(average_rows_u16_sse2),
    avx2: x86_kernel!(average_rows_u16_avx2),
};

pub(crate) const I16_KERNELS: RowKernels<i16> = RowKernels {
    scalar: scalar::average_rows::<i16>,
    portable: portable::average_rows_i16,
    sse2: x86_kernel!(average_rows_i16_sse2),
    avx2: x86_kernel!(average_rows_i16_avx2),
};

/// No hand-written vector kernel: the portable one, which LLVM vectorizes, is it.
pub(crate) const F32_KERNELS: RowKernels<f32> = RowKernels {
    scalar: scalar::average_rows::<f32>,
    portable: portable::average_rows_f32,
    sse2: None,
    avx2: None,
};

pub(crate) const U8_KERNELS: RowKernels<u8> = RowKernels {
    scalar: scalar::average_rows::<u8>,
    portable: portable::average_rows_u8,
    sse2: x86_kernel!(average_rows_u8_sse2),
    avx2: x86_kernel!(average_rows_u8_avx2),
};

/// The one dispatch: one output row from two rows of each slice, with `kernel`.
///
/// Panics unless every input row holds at least `2 * out.len()` samples: that
/// check is what makes the vector kernels' unchecked loads sound, so it is an
/// `assert!`, in every build.
#[inline]
pub(crate) fn average_rows<T: Sample>(
    kernel: Kernel,
    a0: &[T],
    a1: &[T],
    b0: &[T],
    b1: &[T],
    out: &mut [T],
) {
    let need = 2 * out.len();
    assert!(
        a0.len() >= need && a1.len() >= need && b0.len() >= need && b1.len() >= need,
        "average_rows: input rows shorter than 2 x {} samples",
        out.len()
    );
    let kernels = T::row_kernels(TOKEN);
    let vector = match kernel {
        Kernel::Sse2 if kernel.is_supported() => kernels.sse2,
        Kernel::Avx2 if kernel.is_supported() => kernels.avx2,
        Kernel::Scalar => return (kernels.scalar)(a0, a1, b0, b1, out),
        _ => None,
    };
    match vector {
        // SAFETY: the instruction set was just checked (`is_supported`), and the
        // assert above guarantees 2 * out.len() samples in every input row.
        Some(f) => unsafe { f(a0, a1, b0, b1, out) },
        None => (kernels.portable)(a0, a1, b0, b1, out),
    }
}

#[cfg(test)]
mod tests;
