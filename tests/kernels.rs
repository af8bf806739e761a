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

/// Signed and float samples: random values biased towards the extremes and
/// special values, the formula per pixel, and equality that treats NaN as NaN.
trait Case: Sample {
    fn random(rng: &mut Rng) -> Self;
    /// The mean of a 2x2 block of each slice (`[row 0 even, row 0 odd, row 1 even, row 1 odd]`).
    fn reference(a: [Self; 4], b: [Self; 4]) -> Self;
    fn same(x: Self, y: Self) -> bool;
}

impl Case for i16 {
    fn random(rng: &mut Rng) -> i16 {
        match rng.below(6) {
            0 => i16::MIN,
            1 => i16::MAX,
            2 => i16::MIN + rng.below(3) as i16,
            3 => i16::MAX - rng.below(3) as i16,
            4 => rng.below(5) as i16 - 2,
            _ => rng.next_u64() as i16,
        }
    }
    fn reference(a: [i16; 4], b: [i16; 4]) -> i16 {
        let sum: i64 = a.iter().chain(&b).map(|&v| i64::from(v)).sum();
        // floor((sum + 4) / 8): the mean rounded half up, towards +infinity.
        i16::try_from((sum + 4).div_euclid(8)).unwrap()
    }
    fn same(x: i16, y: i16) -> bool {
        x == y
    }
}

impl Case for f32 {
    fn random(rng: &mut Rng) -> f32 {
        match rng.below(12) {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            3 => -0.0,
            4 => f32::MAX,
            5 => -f32::MAX,
            6 => f32::from_bits(1 + rng.below(8) as u32), // subnormal
            7 => (rng.below(1 << 26) as f32) - (1 << 25) as f32, // ties in the f32 rounding
            8 => f32::from_bits(rng.next_u64() as u32),   // any pattern, NaNs included
            _ => (rng.below(1 << 20) as f32) / 1024.0 - 512.0,
        }
    }
    fn reference(a: [f32; 4], b: [f32; 4]) -> f32 {
        let w = f64::from;
        let sa = (w(a[0]) + w(a[1])) + (w(a[2]) + w(a[3]));
        let sb = (w(b[0]) + w(b[1])) + (w(b[2]) + w(b[3]));
        ((sa + sb) / 8.0) as f32
    }
    fn same(x: f32, y: f32) -> bool {
        x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
    }
}

fn check_all_kernels_on<T: Case>(seed: u64) {
    let mut rng = Rng::new(seed);
    let kernels = Kernel::available();
    for w in 1..=67usize {
        for h in [1usize, 2, 3, 5, 7] {
            let a: Vec<T> = (0..w * h).map(|_| T::random(&mut rng)).collect();
            let b: Vec<T> = (0..w * h).map(|_| T::random(&mut rng)).collect();
            let at = |img: &[T], y: usize, x: usize| {
                [
                    img[2 * y * w + 2 * x],
                    img[2 * y * w + 2 * x + 1],
                    img[(2 * y + 1) * w + 2 * x],
                    img[(2 * y + 1) * w + 2 * x + 1],
                ]
            };
            let want: Vec<T> = (0..h / 2)
                .flat_map(|y| (0..w / 2).map(move |x| (y, x)))
                .map(|(y, x)| T::reference(at(&a, y, x), at(&b, y, x)))
                .collect();
            let ra = Rows::from_contiguous(&a, w, h).unwrap();
            let rb = Rows::from_contiguous(&b, w, h).unwrap();
            for &k in &kernels {
                let mut out = vec![T::default(); want.len()];
                average_pair_serial(k, &ra, &rb, &mut out).unwrap();
                for (i, (&g, &e)) in out.iter().zip(&want).enumerate() {
                    assert!(
                        T::same(g, e),
                        "{} kernel, {}, {w}x{h}, output {i}: {g:?}, the formula gives {e:?}",
                        k.name(),
                        T::TYPE
                    );
                }
            }
        }
    }
}

#[test]
fn i16_kernels_match_the_specification() {
    check_all_kernels_on::<i16>(3);
}

#[test]
fn f32_kernels_match_the_specification() {
    check_all_kernels_on::<f32>(4);
}

#[test]
fn i16_halves_round_up_and_extremes_hold() {
    for &k in &Kernel::available() {
        let run = |a: &[i16], b: &[i16]| {
            let (ra, rb) = (
                Rows::from_contiguous(a, 64, 2).unwrap(),
                Rows::from_contiguous(b, 64, 2).unwrap(),
            );
            let mut out = vec![0i16; 32];
            average_pair_serial(k, &ra, &rb, &mut out).unwrap();
            out
        };
        for v in [i16::MIN, i16::MAX, -1, 0] {
            let a = vec![v; 128];
            assert!(run(&a, &a).iter().all(|&o| o == v), "{}: {v}", k.name());
        }
        // Sum -20 over eight: -2.5 rounds up to -2; sum -21: -2.625 to -3; 20: 2.5 to 3.
        for (fill, want) in [(-5i16, -2i16), (5, 3)] {
            let a: Vec<i16> = (0..128)
                .map(|i| if i % 2 == 0 { fill } else { 0 })
                .collect();
            assert!(run(&a, &a).iter().all(|&o| o == want), "{}", k.name());
        }
        let mut a = vec![-3i16; 128];
        a.iter_mut().step_by(2).for_each(|v| *v = -2);
        let b = vec![-3i16; 128];
        // a's block: -2 -3 -2 -3 = -10; b's: -12; sum -22: -2.75 rounds to -3.
        assert!(run(&a, &b).iter().all(|&o| o == -3), "{}", k.name());
    }
}

#[test]
fn f32_means_propagate_nan_and_round_once() {
    for &k in &Kernel::available() {
        let run = |a: &[f32], b: &[f32]| {
            let (ra, rb) = (
                Rows::from_contiguous(a, 64, 2).unwrap(),
                Rows::from_contiguous(b, 64, 2).unwrap(),
            );
            let mut out = vec![0f32; 32];
            average_pair_serial(k, &ra, &rb, &mut out).unwrap();
            out
        };
        let ones = vec![1.0f32; 128];
        let mut nan = ones.clone();
        nan[127] = f32::NAN;
        let out = run(&ones, &nan);
        assert!(out[31].is_nan() && out[..31].iter().all(|&v| v == 1.0));
        let mut inf = ones.clone();
        inf[0] = f32::INFINITY;
        assert_eq!(run(&inf, &ones)[0], f32::INFINITY);
        let mut both = inf.clone();
        both[1] = f32::NEG_INFINITY;
        assert!(run(&both, &ones)[0].is_nan());
        // f32::MAX everywhere: the f64 sum does not overflow, the mean is MAX.
        let max = vec![f32::MAX; 128];
        assert!(
            run(&max, &max).iter().all(|&v| v == f32::MAX),
            "{}",
            k.name()
        );
        // Eight values whose exact mean, 2^24 + 1, is not an f32: one rounding (to
        // even, 2^24), where summing in f32 would have rounded at every step.
        let a: Vec<f32> = (0..128)
            .map(|i| {
                if i % 2 == 0 {
                    16_777_216.0
                } else {
                    16_777_218.0
                }
            })
            .collect();
        assert!(
            run(&a, &a).iter().all(|&v| v == 16_777_216.0),
            "{}",
            k.name()
        );
    }
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
