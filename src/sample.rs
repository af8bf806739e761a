//! The two sample types ctstack handles, and owned pixel buffers of either.

use crate::kernels::{self, Kernel};
use crate::tiff::ByteOrder;

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for u16 {}
}

/// A grayscale sample type: `u8` or `u16`. Sealed: no other type can implement it.
pub trait Sample:
    bytemuck::Pod + Default + Copy + Send + Sync + Eq + std::fmt::Debug + sealed::Sealed + 'static
{
    /// Bits per sample: 8 or 16.
    const BITS: u32;
    /// The largest value.
    const MAX: Self;

    #[doc(hidden)]
    fn from_u32(v: u32) -> Self;
    #[doc(hidden)]
    fn to_u32(self) -> u32;
    /// Decodes `src` (samples in byte order `order`) into `dst`, one sample each.
    #[doc(hidden)]
    fn decode_into(src: &[u8], order: ByteOrder, dst: &mut [Self]);
    #[doc(hidden)]
    fn samples(owned: &Samples) -> Option<&[Self]>;
    #[doc(hidden)]
    fn into_samples(v: Vec<Self>) -> Samples;
    /// One output row of the 2x2x2 mean with `kernel`; inputs hold `2 * out.len()` samples.
    #[doc(hidden)]
    fn average_rows(
        kernel: Kernel,
        a0: &[Self],
        a1: &[Self],
        b0: &[Self],
        b1: &[Self],
        out: &mut [Self],
    );
}

impl Sample for u8 {
    const BITS: u32 = 8;
    const MAX: u8 = u8::MAX;

    fn from_u32(v: u32) -> u8 {
        v as u8
    }
    fn to_u32(self) -> u32 {
        u32::from(self)
    }
    fn decode_into(src: &[u8], _order: ByteOrder, dst: &mut [u8]) {
        let n = dst.len().min(src.len());
        dst[..n].copy_from_slice(&src[..n]);
    }
    fn samples(owned: &Samples) -> Option<&[u8]> {
        match owned {
            Samples::U8(v) => Some(v),
            Samples::U16(_) => None,
        }
    }
    fn into_samples(v: Vec<u8>) -> Samples {
        Samples::U8(v)
    }
    fn average_rows(kernel: Kernel, a0: &[u8], a1: &[u8], b0: &[u8], b1: &[u8], out: &mut [u8]) {
        kernels::dispatch_u8(kernel, a0, a1, b0, b1, out)
    }
}

impl Sample for u16 {
    const BITS: u32 = 16;
    const MAX: u16 = u16::MAX;

    fn from_u32(v: u32) -> u16 {
        v as u16
    }
    fn to_u32(self) -> u32 {
        u32::from(self)
    }
    fn decode_into(src: &[u8], order: ByteOrder, dst: &mut [u16]) {
        let pairs = src.chunks_exact(2);
        // Two loops, each simple enough for LLVM to vectorize the byte swap.
        match order {
            ByteOrder::LittleEndian => {
                for (d, s) in dst.iter_mut().zip(pairs) {
                    *d = u16::from_le_bytes([s[0], s[1]]);
                }
            }
            ByteOrder::BigEndian => {
                for (d, s) in dst.iter_mut().zip(pairs) {
                    *d = u16::from_be_bytes([s[0], s[1]]);
                }
            }
        }
    }
    fn samples(owned: &Samples) -> Option<&[u16]> {
        match owned {
            Samples::U16(v) => Some(v),
            Samples::U8(_) => None,
        }
    }
    fn into_samples(v: Vec<u16>) -> Samples {
        Samples::U16(v)
    }
    fn average_rows(
        kernel: Kernel,
        a0: &[u16],
        a1: &[u16],
        b0: &[u16],
        b1: &[u16],
        out: &mut [u16],
    ) {
        kernels::dispatch_u16(kernel, a0, a1, b0, b1, out)
    }
}

/// An owned, row-major, native-endian pixel buffer of either depth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Samples {
    /// 8-bit samples.
    U8(Vec<u8>),
    /// 16-bit samples.
    U16(Vec<u16>),
}

impl Samples {
    /// The samples as native-endian bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Samples::U8(v) => v,
            Samples::U16(v) => bytemuck::cast_slice(v),
        }
    }
}
