//! The averaging kernels, one thread, in cache (a 256-pixel-wide pair: 4 rows of
//! 1 KB in, fits L1) and out of cache (a 2752 x 2752 pair: 30 MB in), and the
//! parallel whole-pair call.

mod common;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ctstack::{Kernel, Rows, Sample, average_pair_with};

fn data<T: Sample + TryFrom<u16>>(w: usize, h: usize, seed: u32) -> Vec<T> {
    common::phantom(w as u32, h as u32, seed)
        .into_iter()
        .map(|v| T::try_from(v >> (16 - T::BITS)).unwrap_or_default())
        .collect()
}

fn bench_depth<T: Sample + TryFrom<u16>>(c: &mut Criterion) {
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for (label, w, h) in [
        ("in cache 256x64", 256usize, 64usize),
        ("out of cache 2752x2752", 2752, 2752),
    ] {
        let (a, b) = (data::<T>(w, h, 1), data::<T>(w, h, 2));
        let (ra, rb) = (
            Rows::from_contiguous(&a, w, h).unwrap(),
            Rows::from_contiguous(&b, w, h).unwrap(),
        );
        let mut out = vec![T::default(); (w / 2) * (h / 2)];
        let mut g = c.benchmark_group(format!("kernels u{} {label}", T::BITS));
        g.throughput(Throughput::Bytes(
            (2 * w * h * std::mem::size_of::<T>()) as u64,
        ));
        if w > 1000 {
            g.sample_size(20);
        }
        for k in Kernel::available() {
            g.bench_with_input(BenchmarkId::new("one thread", k.name()), &k, |bench, &k| {
                one_thread.install(|| {
                    bench.iter(|| {
                        average_pair_with(k, black_box(&ra), black_box(&rb), &mut out).unwrap()
                    })
                })
            });
        }
        let best = Kernel::best();
        g.bench_with_input(
            BenchmarkId::new("all threads", best.name()),
            &best,
            |bench, &k| {
                bench.iter(|| {
                    average_pair_with(k, black_box(&ra), black_box(&rb), &mut out).unwrap()
                })
            },
        );
        g.finish();
    }
}

fn kernels(c: &mut Criterion) {
    bench_depth::<u16>(c);
    bench_depth::<u8>(c);
}

criterion_group!(benches, kernels);
criterion_main!(benches);
