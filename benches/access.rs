//! How fast one 15 MB slice's samples reach the CPU, by each way bytes can
//! arrive: a memory map (zero-copy), one read of the whole file, and reads of a
//! few rows at a time into a buffer that stays in cache (what the pyramid's
//! streamed path does). Each variant sums every sample, so every byte is really
//! brought in (from the page cache: the file is read once before).

mod common;

use std::fs::File;
use std::hint::black_box;
use std::io::Read;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ctstack::{OpenOptions, ReadMode, Slice};

fn sum(samples: &[u16]) -> u64 {
    samples.iter().map(|&v| u64::from(v)).sum()
}

/// Reads the whole file `chunk.len()` samples at a time into `chunk`, summing
/// each piece as it arrives (the header's bytes are summed too: a few hundred).
fn sum_in_chunks(path: &std::path::Path, chunk: &mut [u16]) -> u64 {
    let mut f = File::open(path).unwrap();
    let mut total = 0;
    loop {
        let bytes = bytemuck::cast_slice_mut::<u16, u8>(chunk);
        let n = f.read(bytes).unwrap();
        if n == 0 {
            return total;
        }
        total += sum(&chunk[..n / 2]);
    }
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

    g.bench_function("mmap (zero-copy view)", |b| {
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
    g.bench_function("whole-file read (Slice, ReadMode::Buffered)", |b| {
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
    // The pyramid's streamed path reads 256 KiB bands; the floor in benches/floor.c
    // reads 1 MiB chunks. Both stay in L2/L3 cache between the read and the sum.
    for kib in [64usize, 256, 1024] {
        let mut chunk = vec![0u16; kib << 9];
        g.bench_function(format!("chunked reads ({kib} KiB, reused buffer)"), |b| {
            b.iter(|| black_box(sum_in_chunks(&path, &mut chunk)))
        });
    }
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
