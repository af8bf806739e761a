//! How fast one 15 MB slice becomes a `&[u16]` the kernels can read, by each way
//! bytes can arrive. Each variant ends by summing every sample, so every byte is
//! really brought in (from the page cache: the file is read once before).

mod common;

use std::fs::File;
use std::hint::black_box;
use std::io::Read;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ctstack::{OpenOptions, ReadMode, Slice};

fn sum(samples: &[u16]) -> u64 {
    samples.iter().map(|&v| u64::from(v)).sum()
}

fn access(c: &mut Criterion) {
    let dir = common::TempDir::new("access");
    common::write_stack(&dir.0, 1, common::SIZE);
    let path = dir.0.join("slice_0000.tif");
    let image_bytes = u64::from(common::SIZE) * u64::from(common::SIZE) * 2;
    let _ = std::fs::read(&path).unwrap(); // warm the page cache

    let mut g = c.benchmark_group("access");
    g.throughput(Throughput::Bytes(image_bytes));
    g.sample_size(30);

    g.bench_function("mmap zero-copy", |b| {
        b.iter(|| {
            let s = Slice::open(&path).unwrap();
            black_box(sum(s.rows::<u16>().unwrap().as_contiguous().unwrap()))
        })
    });
    let populate = OpenOptions {
        populate: true,
        ..OpenOptions::default()
    };
    g.bench_function("mmap populate", |b| {
        b.iter(|| {
            let s = Slice::open_with(&path, &populate).unwrap();
            black_box(sum(s.rows::<u16>().unwrap().as_contiguous().unwrap()))
        })
    });
    g.bench_function("mmap willneed", |b| {
        b.iter(|| {
            let s = Slice::open(&path).unwrap();
            s.prefetch();
            black_box(sum(s.rows::<u16>().unwrap().as_contiguous().unwrap()))
        })
    });
    let buffered = OpenOptions {
        read_mode: ReadMode::Buffered,
        ..OpenOptions::default()
    };
    g.bench_function("buffered slice (one read)", |b| {
        b.iter(|| {
            let s = Slice::open_with(&path, &buffered).unwrap();
            black_box(sum(s.rows::<u16>().unwrap().as_contiguous().unwrap()))
        })
    });
    g.bench_function("std::fs::read + cast", |b| {
        b.iter(|| {
            let bytes = std::fs::read(&path).unwrap();
            // A Vec<u8> need not be 2-byte aligned: cast when it is, copy when not.
            let pixels = &bytes[176..];
            let samples: std::borrow::Cow<[u16]> = match bytemuck::try_cast_slice(pixels) {
                Ok(s) => s.into(),
                Err(_) => bytemuck::pod_collect_to_vec(pixels).into(),
            };
            black_box(sum(&samples))
        })
    });
    let mut reused = vec![0u16; (image_bytes / 2) as usize];
    g.bench_function("read into reused buffer", |b| {
        b.iter(|| {
            let mut f = File::open(&path).unwrap();
            let mut header = [0u8; 176];
            f.read_exact(&mut header).unwrap();
            f.read_exact(bytemuck::cast_slice_mut(&mut reused)).unwrap();
            black_box(sum(&reused))
        })
    });
    g.bench_function("tiff crate decoder", |b| {
        b.iter(|| {
            let f = std::io::BufReader::new(File::open(&path).unwrap());
            let mut d = tiff::decoder::Decoder::new(f).unwrap();
            match d.read_image().unwrap() {
                tiff::decoder::DecodingResult::U16(v) => black_box(sum(&v)),
                _ => unreachable!(),
            }
        })
    });
    g.finish();
}

criterion_group!(benches, access);
criterion_main!(benches);
