//! The sample types ctstack handles, and owned pixel buffers of any of them.
//!
//! [`Sample`] is the public, sealed trait that names a sample type; what the
//! library does with samples (decoding, averaging) lives in the crate-private
//! supertrait [`internal::SampleInternal`], whose methods take a token that only
//! this crate can make, so code outside the crate can name a sample type but not
//! reach the kernels behind it.

use crate::bytes::ByteOrder;
use crate::kernels::RowKernels;

/// The type of one grayscale sample.
///
/// The discriminants are stable (the C ABI reports them): 1 u8, 2 u16, 3 i16, 4 f32.
/// Files with other integer depths are unpacked into the next wider type: 1-7 bits
/// into `U8`, 9-15 bits into `U16`, values unchanged.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleType {
    /// Unsigned 8-bit.
    U8 = 1,
    /// Unsigned 16-bit.
    U16 = 2,
    /// Signed 16-bit (two's complement): CT in Hounsfield units.
    I16 = 3,
    /// 32-bit IEEE 754 float: reconstructions (tomopy, synchrotron pipelines).
    F32 = 4,
}

impl SampleType {
    /// Every sample type, in the order of their numbers.
    pub const ALL: [SampleType; 4] = [
        SampleType::U8,
        SampleType::U16,
        SampleType::I16,
        SampleType::F32,
    ];

    /// The type [`SampleType::name`] calls `name`, if any.
    pub fn from_name(name: &str) -> Option<SampleType> {
        SampleType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Bits per sample.
    pub const fn bits(self) -> u32 {
        match self {
            SampleType::U8 => 8,
            SampleType::U16 | SampleType::I16 => 16,
            SampleType::F32 => 32,
        }
    }

    /// The TIFF SampleFormat tag's value for the type: 1 unsigned, 2 signed, 3 float.
    pub const fn tiff_sample_format(self) -> u16 {
        match self {
            SampleType::U8 | SampleType::U16 => 1,
            SampleType::I16 => 2,
            SampleType::F32 => 3,
        }
    }

    /// Bytes per sample.
    pub const fn bytes(self) -> usize {
        self.bits() as usize / 8
    }

    /// The name numpy gives the type: `uint8`, `uint16`, `int16`, `float32`.
    pub const fn name(self) -> &'static str {
        match self {
            SampleType::U8 => "uint8",
            SampleType::U16 => "uint16",
            SampleType::I16 => "int16",
            SampleType::F32 => "float32",
        }
    }
}

impl std::fmt::Display for SampleType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs `$body` with `$T` bound to the Rust type of the [`SampleType`] `$ty`: the
/// one place a run-time sample type becomes a compile-time one.
macro_rules! with_sample_type {
    ($ty:expr, $T:ident => $body:expr) => {
        match $ty {
            $crate::SampleType::U8 => {
                type $T = u8;
                $body
            }
            $crate::SampleType::U16 => {
                type $T = u16;
                $body
            }
            $crate::SampleType::I16 => {
                type $T = i16;
                $body
            }
            $crate::SampleType::F32 => {
                type $T = f32;
                $body
            }
        }
    };
}
pub(crate) use with_sample_type;

pub(crate) mod internal {
    use super::{ByteOrder, RowKernels, Samples};

    /// Proof that a call comes from inside the crate: only this crate can make one.
    #[derive(Clone, Copy)]
    pub struct Token(());

    /// The token, for the crate's own calls.
    pub(crate) const TOKEN: Token = Token(());

    /// What the library does with a sample type. Reachable from outside only by
    /// name: every method takes a [`Token`].
    pub trait SampleInternal: Sized {
        /// Decodes `src` (samples in byte order `order`) into `dst`, one sample each.
        fn decode_into(_: Token, src: &[u8], order: ByteOrder, dst: &mut [Self]);
        /// The owned buffer's samples, if it holds this type.
        fn samples(_: Token, owned: &Samples) -> Option<&[Self]>;
        /// Wraps an owned buffer.
        fn into_samples(_: Token, v: Vec<Self>) -> Samples;
        /// The row kernels for this type.
        fn row_kernels(_: Token) -> RowKernels<Self>;
    }
}

use internal::{SampleInternal, Token};

/// A grayscale sample type: `u8`, `u16`, `i16` or `f32`. Sealed: no other type
/// can implement it.
pub trait Sample:
    bytemuck::Pod
    + Default
    + Copy
    + Send
    + Sync
    + PartialEq
    + std::fmt::Debug
    + SampleInternal
    + 'static
{
    /// The sample type.
    const TYPE: SampleType;
    /// Bits per sample.
    const BITS: u32 = Self::TYPE.bits();
}

impl SampleInternal for u8 {
    fn decode_into(_: Token, src: &[u8], _order: ByteOrder, dst: &mut [u8]) {
        let n = dst.len().min(src.len());
        dst[..n].copy_from_slice(&src[..n]);
    }
    fn samples(_: Token, owned: &Samples) -> Option<&[u8]> {
        match owned {
            Samples::U8(v) => Some(v),
            _ => None,
        }
    }
    fn into_samples(_: Token, v: Vec<u8>) -> Samples {
        Samples::U8(v)
    }
    fn row_kernels(_: Token) -> RowKernels<u8> {
        crate::kernels::U8_KERNELS
    }
}

impl Sample for u8 {
    const TYPE: SampleType = SampleType::U8;
}

/// The sample types wider than a byte: decoded from either byte order.
macro_rules! wide_sample {
    ($T:ty, $variant:ident, $kernels:ident) => {
        impl SampleInternal for $T {
            fn decode_into(_: Token, src: &[u8], order: ByteOrder, dst: &mut [$T]) {
                const N: usize = std::mem::size_of::<$T>();
                let words = src.chunks_exact(N);
                // Two loops, each simple enough for LLVM to vectorize the byte swap.
                match order {
                    ByteOrder::LittleEndian => {
                        for (d, s) in dst.iter_mut().zip(words) {
                            *d = <$T>::from_le_bytes(s.try_into().expect("N bytes"));
                        }
                    }
                    ByteOrder::BigEndian => {
                        for (d, s) in dst.iter_mut().zip(words) {
                            *d = <$T>::from_be_bytes(s.try_into().expect("N bytes"));
                        }
                    }
                }
            }
            fn samples(_: Token, owned: &Samples) -> Option<&[$T]> {
                match owned {
                    Samples::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn into_samples(_: Token, v: Vec<$T>) -> Samples {
                Samples::$variant(v)
            }
            fn row_kernels(_: Token) -> RowKernels<$T> {
                crate::kernels::$kernels
            }
        }

        impl Sample for $T {
            const TYPE: SampleType = SampleType::$variant;
        }
    };
}

wide_sample!(u16, U16, U16_KERNELS);
wide_sample!(i16, I16, I16_KERNELS);
wide_sample!(f32, F32, F32_KERNELS);

/// An owned, row-major, native-endian pixel buffer of any sample type.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Samples {
    /// 8-bit samples.
    U8(Vec<u8>),
    /// Unsigned 16-bit samples.
    U16(Vec<u16>),
    /// Signed 16-bit samples.
    I16(Vec<i16>),
    /// 32-bit float samples.
    F32(Vec<f32>),
}

impl Samples {
    /// Wraps `v`.
    pub(crate) fn from_vec<T: Sample>(v: Vec<T>) -> Samples {
        T::into_samples(internal::TOKEN, v)
    }

    /// The samples, if they are of type `T`.
    pub(crate) fn get<T: Sample>(&self) -> Option<&[T]> {
        T::samples(internal::TOKEN, self)
    }
}

/// Decodes `src` (samples in byte order `order`) into `dst`.
pub(crate) fn decode_into<T: Sample>(src: &[u8], order: ByteOrder, dst: &mut [T]) {
    T::decode_into(internal::TOKEN, src, order, dst)
}
