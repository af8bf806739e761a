//! Compressed pages after the first are decoded from their own IFD.
//!
//! Every compression but LZW goes to the `tiff` crate, whose decoder starts
//! at IFD 0: a page k > 0 must be sought (and its IFD checked to be the one
//! ctstack parsed), or page k's header would be served with page 0's pixels.

mod common;

use std::path::Path;

use common::pyramid::temp_dir;
use ctstack::{OpenOptions, ReadMode, Slice};
use tiff::encoder::{Compression, DeflateLevel, TiffEncoder, colortype};

/// Three 37x23 pages of distinct u16 ramps, written by the `tiff` crate with
/// `compression`, in three strips each.
fn write_pages(path: &Path, compression: Compression) -> Vec<Vec<u16>> {
    let (w, h) = (37u32, 23u32);
    let pages: Vec<Vec<u16>> = (0..3u16)
        .map(|p| {
            (0..w * h)
                .map(|i| (i as u16).wrapping_mul(7).wrapping_add(p * 1000))
                .collect()
        })
        .collect();
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = TiffEncoder::new(file)
        .unwrap()
        .with_compression(compression);
    for pixels in &pages {
        let mut image = encoder.new_image::<colortype::Gray16>(w, h).unwrap();
        image.rows_per_strip(8).unwrap();
        image.write_data(pixels).unwrap();
    }
    pages
}

#[test]
fn every_page_of_a_compressed_multi_page_file_is_its_own() {
    let dir = temp_dir("compressed-pages");
    for (name, compression) in [
        ("deflate", Compression::Deflate(DeflateLevel::Fast)),
        ("packbits", Compression::Packbits),
        ("lzw", Compression::Lzw),
    ] {
        let path = dir.join(format!("{name}.tif"));
        let pages = write_pages(&path, compression);
        for mode in [ReadMode::Auto, ReadMode::Mmap, ReadMode::Buffered] {
            let options = OpenOptions {
                read_mode: mode,
                ..OpenOptions::default()
            };
            assert_eq!(Slice::page_count(&path, &options).unwrap(), 3);
            for (k, want) in pages.iter().enumerate() {
                let slice = Slice::open_page(&path, k, &options).unwrap();
                let got = slice.contiguous::<u16>().unwrap();
                assert!(
                    got == &want[..],
                    "{name} page {k} under {mode:?}: starts {:?}, page {k} starts {:?}",
                    &got[..3],
                    &want[..3]
                );
            }
        }
    }
}
