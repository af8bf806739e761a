//! Every kernel the CPU supports equals the scalar specification bit for bit, and
//! both equal a naive per-pixel reference written here from the formula.

mod common;

use common::Rng;
use ctstack::{Kernel, Rows, Sample, average_pair_with};

/// The unsigned sample types, with the conversions this test needs.
trait Unsigned: Sample + Into<u32> + TryFrom<u32> {
    const MAX: u32;
    fn of(v: u32) -> Self {
        Self::try_from(v).unwrap_or_else(|_| panic!("{v} out of range"))
    }
}
impl Unsigned for u8 {
    const MAX: u32 = u8::MAX as u32;
}
impl Unsigned for u16 {
    const MAX: u32 = u16::MAX as u32;
}

/// `average_pair_with` on one thread, as the row kernels run inside a task.
fn average_pair_serial<T: Sample>(
    kernel: Kernel,
    a: &Rows<'_, T>,
    b: &Rows<'_, T>,
    out: &mut [T],
) -> Result<(), ctstack::Error> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| average_pair_with(kernel, a, b, out))
}

/// The formula, written independently of the library: one output pixel at a time.
fn reference<T: Unsigned>(a: &[T], b: &[T], w: usize, h: usize) -> Vec<u32> {
    let mut out = Vec::new();
    for y in 0..h / 2 {
        for x in 0..w / 2 {
            let mut sum = 0u32;
            for img in [a, b] {
                for dy in 0..2 {
                    for dx in 0..2 {
                        sum += img[(2 * y + dy) * w + 2 * x + dx].into();
                    }
                }
            }
            out.push((sum + 4) / 8);
        }
    }
    out
}

/// Random samples biased towards 0 and the maximum, where rounding and overflow bugs live.
fn random<T: Unsigned>(rng: &mut Rng, n: usize) -> Vec<T> {
    let max = T::MAX;
    (0..n)
        .map(|_| {
            T::of(match rng.below(4) {
                0 => 0,
                1 => max,
                2 => max - rng.below(3) as u32,
                _ => rng.below(u64::from(max) + 1) as u32,
            })
        })
        .collect()
}

fn check_all_kernels<T: Unsigned>(seed: u64) {
    let mut rng = Rng::new(seed);
    let kernels = Kernel::available();
    assert!(kernels.contains(&Kernel::Scalar));
    for w in 1..=67usize {
        for h in [1usize, 2, 3, 5, 7] {
            let a = random::<T>(&mut rng, w * h);
            let b = random::<T>(&mut rng, w * h);
            let want = reference(&a, &b, w, h);
            let ra = Rows::from_contiguous(&a, w, h).unwrap();
            let rb = Rows::from_contiguous(&b, w, h).unwrap();
            for &k in &kernels {
                let mut out = vec![T::default(); (w / 2) * (h / 2)];
                average_pair_serial(k, &ra, &rb, &mut out).unwrap();
                let got: Vec<u32> = out.iter().map(|&v| v.into()).collect();
                assert_eq!(got, want, "{} kernel, {}-bit, {w}x{h}", k.name(), T::BITS);
                let mut par = vec![T::default(); out.len()];
                average_pair_with(k, &ra, &rb, &mut par).unwrap();
                assert_eq!(par, out, "{} kernel (parallel), {w}x{h}", k.name());
            }
        }
    }
}

#[test]
fn u16_kernels_match_the_specification() {
    check_all_kernels::<u16>(1);
}

#[test]
fn u8_kernels_match_the_specification() {
    check_all_kernels::<u8>(2);
}

#[test]
fn extremes_round_half_up_once() {
    for &k in &Kernel::available() {
        // All 65535: the mean is exactly 65535, no overflow.
        let a = vec![u16::MAX; 64 * 2];
        let ra = Rows::from_contiguous(&a, 64, 2).unwrap();
        let mut out = vec![0u16; 32];
        average_pair_serial(k, &ra, &ra, &mut out).unwrap();
        assert!(out.iter().all(|&v| v == u16::MAX), "{}", k.name());
        // Four ones and four zeros: 4/8 = 0.5 rounds up to 1. Three ones: 3/8 rounds to 0.
        let a: Vec<u16> = (0..128)
            .map(|i| if i < 64 { (i % 2) as u16 } else { 1 })
            .collect();
        let b: Vec<u16> = (0..128)
            .map(|i| if i < 64 { 0 } else { (i % 2) as u16 })
            .collect();
        let (ra, rb) = (
            Rows::from_contiguous(&a, 64, 2).unwrap(),
            Rows::from_contiguous(&b, 64, 2).unwrap(),
        );
        average_pair_serial(k, &ra, &rb, &mut out).unwrap();
        // Per output: a has row0 (0,1) + row1 (1,1) = 3, b has row0 (0,0) + row1 (0,1) = 1: (4+4)>>3 = 1.
        assert!(out.iter().all(|&v| v == 1), "{}: {out:?}", k.name());
    }
}

#[test]
fn size_mismatches_are_refused() {
    let a = vec![0u16; 16];
    let b = vec![0u16; 12];
    let ra = Rows::from_contiguous(&a, 4, 4).unwrap();
    let rb = Rows::from_contiguous(&b, 4, 3).unwrap();
    let mut out = vec![0u16; 4];
    assert_eq!(
        ctstack::average_pair(&ra, &rb, &mut out)
            .unwrap_err()
            .kind(),
        ctstack::ErrorKind::Mismatch
    );
    let mut wrong = vec![0u16; 5];
    assert_eq!(
        ctstack::average_pair(&ra, &ra, &mut wrong)
            .unwrap_err()
            .kind(),
        ctstack::ErrorKind::Mismatch
    );
    assert!(Rows::from_contiguous(&a, 5, 4).is_none());
}
