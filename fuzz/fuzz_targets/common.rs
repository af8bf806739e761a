//! What both targets do with a byte string: open it, read every row, average it
//! with itself. Anything but a panic, a hang or an allocation past the limits is fine;
//! an error must be one of the kinds a hostile file may cause.

use ctstack::{ErrorKind, OpenOptions, Sample, Slice, average_pair};

fn exercise<T: Sample + Into<u64>>(slice: &Slice) {
    let rows = slice.rows::<T>().expect("rows of the slice's own depth");
    let (w, h) = (slice.width() as usize, slice.height() as usize);
    assert_eq!((rows.width(), rows.height()), (w, h));
    let mut n = 0;
    let mut sum = 0u64;
    for row in rows.iter() {
        assert_eq!(row.len(), w);
        sum = row.iter().fold(sum, |s, &v| s.wrapping_add(v.into()));
        n += 1;
    }
    assert_eq!(n, h);
    let mut out = vec![T::default(); (w / 2) * (h / 2)];
    average_pair(&rows, &rows, &mut out).expect("average of a slice with itself");
    std::hint::black_box((sum, out));
}

pub fn run(data: &[u8], options: &OpenOptions) {
    match Slice::from_bytes("fuzz.tif", data, options) {
        Ok(slice) => {
            assert!(slice.width() > 0 && slice.height() > 0);
            assert!(
                u64::from(slice.width()) * u64::from(slice.height()) <= options.limits.max_pixels
            );
            match slice.bits() {
                8 => exercise::<u8>(&slice),
                16 => exercise::<u16>(&slice),
                b => panic!("opened a {b}-bit slice"),
            }
        }
        Err(e) => {
            assert!(
                matches!(
                    e.kind(),
                    ErrorKind::Format | ErrorKind::Unsupported | ErrorKind::LimitsExceeded
                ),
                "unexpected error kind {:?}: {e}",
                e.kind()
            );
            assert!(
                e.to_string().contains("fuzz.tif"),
                "error names no file: {e}"
            );
        }
    }
}
