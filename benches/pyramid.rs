//! The whole pyramid, end to end, on a generated stack of 16 slices of 2752 x 2752
//! (242 MB): memory map against streamed positional reads (ReadMode::Buffered). Outputs go to a fresh directory
//! each iteration (its removal is not timed).

mod common;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ctstack::{CancelFlag, PyramidBuilder, ReadMode};

const SLICES: u32 = 16;

fn pyramid(c: &mut Criterion) {
    let dir = common::TempDir::new("pyramid");
    let input = dir.0.join("stack");
    std::fs::create_dir_all(&input).unwrap();
    common::write_stack(&input, SLICES, common::SIZE);
    let out = dir.0.join("out");

    let mut g = c.benchmark_group("pyramid 16 x 2752x2752");
    g.throughput(Throughput::Bytes(
        u64::from(SLICES) * u64::from(common::SIZE).pow(2) * 2,
    ));
    g.sample_size(10);
    for (name, mode, populate) in [
        ("mmap + populate", ReadMode::Mmap, true),
        ("mmap", ReadMode::Mmap, false),
        (
            "buffered (streamed positional reads)",
            ReadMode::Buffered,
            false,
        ),
    ] {
        let plan = PyramidBuilder::from_dir(&input)
            .unwrap()
            .output_dir(&out)
            .read_mode(mode)
            .populate(populate)
            .plan()
            .unwrap();
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let _ = std::fs::remove_dir_all(&out);
                },
                |()| plan.run(&mut |_, _| {}, &CancelFlag::new()).unwrap(),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, pyramid);
criterion_main!(benches);
