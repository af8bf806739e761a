//! PNG, decoded by the `png` crate: 8- and 16-bit gray as they are (PNG's
//! 16-bit samples are big-endian; the crate hands them over as bytes and they
//! are put in native order here), gray + alpha, RGB and RGBA converted to gray
//! with [`luma`] (alpha ignored), palettes expanded to RGB first, 1/2/4-bit gray
//! scaled to 8 bits (as Pillow does).

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Seek};
use std::ops::Range;
use std::path::Path;

use png::{BitDepth, ColorType, Decoder, DecodingError, Transformations};

use super::{Header, Image, ImagePixels, check_ratio, check_size, luma, to_gray};
use crate::error::{Problem, format_problem};
use crate::sample::{Sample, SampleType, Samples};
use crate::source::FileStamp;
use crate::tiff::Resolution;
use crate::{Error, Limits, OpenOptions};

type Reader<'a> = png::Reader<Cursor<&'a [u8]>>;

fn open<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Reader<'a>, Problem> {
    open_from(Cursor::new(bytes), bytes.len() as u64, limits)
}

/// Reads the header chunks (up to the first image data) of the `len`-byte PNG
/// `source` with the decoder's own memory budget set from `limits`.
fn open_from<R: BufRead + Seek>(
    source: R,
    len: u64,
    limits: &Limits,
) -> Result<png::Reader<R>, Problem> {
    let budget = usize::try_from(limits.max_decoded_bytes).unwrap_or(usize::MAX);
    let mut decoder = Decoder::new_with_limits(source, png::Limits { bytes: budget });
    decoder.set_transformations(Transformations::EXPAND);
    let reader = decoder.read_info().map_err(problem)?;
    let info = reader.info();
    let (width, height) = (info.width, info.height);
    let (color, depth) = reader.output_color_type();
    let channels = color.samples() as u64;
    let sample_bytes = if depth == BitDepth::Sixteen { 2 } else { 1 };
    // What the decoder will fill: every channel.
    check_size(width, height, channels * sample_bytes, limits)?;
    // Deflate's ratio bounds the rows as stored (a filter byte each, 1-bit gray or
    // palette indices packed), not the expanded pixels: 1-bit gray expands 8 times
    // beyond what it inflates to, a 1-bit palette (to RGB) 24 times.
    let stored = u64::from(height) * info.raw_row_length() as u64;
    check_ratio(
        stored,
        usize::try_from(len).unwrap_or(usize::MAX),
        "PNG",
        limits,
    )?;
    Ok(reader)
}

fn header<R: BufRead + Seek>(reader: &png::Reader<R>) -> Header {
    let info = reader.info();
    let (_, depth) = reader.output_color_type();
    // pHYs in pixels per metre; an unspecified unit is an aspect ratio only.
    let resolution = info.pixel_dims.and_then(|dims| match dims.unit {
        png::Unit::Meter => Resolution::per_metre(dims.xppu, dims.yppu),
        png::Unit::Unspecified => None,
    });
    Header {
        width: info.width,
        height: info.height,
        sample_type: if depth == BitDepth::Sixteen {
            SampleType::U16
        } else {
            SampleType::U8
        },
        resolution,
    }
}

pub(super) fn read_header(bytes: &[u8], limits: &Limits) -> Result<Header, Problem> {
    Ok(header(&open(bytes, limits)?))
}

pub(super) fn read(bytes: &[u8], limits: &Limits) -> Result<Image, Problem> {
    let mut reader = open(bytes, limits)?;
    let header = header(&reader);
    let source_color = reader.info().color_type;
    let (color, _) = reader.output_color_type();
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| Problem::Limits("the PNG image does not fit in memory".into()))?;
    let mut buffer = vec![0u8; size];
    let frame = reader.next_frame(&mut buffer).map_err(problem)?;
    buffer.truncate(frame.buffer_size());
    let channels = color.samples();
    let pixels = header.width as usize * header.height as usize;
    if buffer.len() != pixels * channels * header.sample_type.bytes() {
        return Err(format_problem!(
            "the png decoder returned {} bytes for a {}x{} image of {channels} channels",
            buffer.len(),
            header.width,
            header.height
        ));
    }
    let samples = if header.sample_type == SampleType::U16 {
        // Big-endian samples straight to native gray: no second full-size buffer.
        let sample = |p: &[u8], c: usize| u32::from(u16::from_be_bytes([p[2 * c], p[2 * c + 1]]));
        let gray: Vec<u16> = buffer
            .chunks_exact(2 * channels)
            .map(|p| match channels {
                1 | 2 => sample(p, 0) as u16,
                _ => luma(sample(p, 0), sample(p, 1), sample(p, 2)) as u16,
            })
            .collect();
        Samples::from_vec(gray)
    } else if channels == 1 {
        Samples::from_vec(buffer)
    } else {
        Samples::from_vec(to_gray(&buffer, channels))
    };
    let converted = match source_color {
        ColorType::Grayscale => None,
        ColorType::GrayscaleAlpha => Some("gray + alpha"),
        ColorType::Rgb => Some("RGB"),
        ColorType::Rgba => Some("RGBA"),
        ColorType::Indexed => Some("palette"),
    };
    let reason = match converted {
        Some(from) => format!("{from} to gray (PNG)"),
        None if header.sample_type == SampleType::U16 => "PNG, 16-bit big-endian".into(),
        None => "PNG".into(),
    };
    Ok(Image {
        header,
        pixels: ImagePixels::Owned {
            samples,
            converted: converted.is_some(),
            reason,
        },
    })
}

/// A PNG read in bands of rows, top to bottom, decoded once: the decoder (its
/// inflater's 32 KiB window and two rows) kept between the bands, each row
/// converted to gray as [`read`] converts the whole image. The file is closed
/// between bands ([`Parked`]): hundreds of inputs can be open at once.
pub(crate) struct PngRows {
    reader: png::Reader<BufReader<Parked>>,
    /// The decoder's file, closed after each band (opened again by the next read).
    file: std::sync::Arc<std::sync::Mutex<Option<File>>>,
    header: Header,
    channels: usize,
    /// The row the decoder gives next.
    next_row: u32,
    /// The file's stamp when it was opened: checked at every band.
    stamp: FileStamp,
}

impl PngRows {
    /// The PNG `file` (at `path`) ready to be read in bands, or `None` when it
    /// is not a PNG, is interlaced (its rows come in seven passes) or is served
    /// at another depth (`options.convert_depth`): those are read whole.
    pub fn open(path: &Path, file: File, options: &OpenOptions) -> Result<Option<PngRows>, Error> {
        let stamp = FileStamp::of(path, &file)?;
        let mut signature = [0u8; 8];
        if stamp.len < 8
            || crate::source::read_exact_at(&file, &mut signature, 0).is_err()
            || signature != *b"\x89PNG\r\n\x1a\n"
        {
            return Ok(None);
        }
        let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(file)));
        let parked = Parked {
            path: path.to_path_buf(),
            file: slot.clone(),
            pos: 0,
        };
        let reader = open_from(
            BufReader::with_capacity(1 << 16, parked),
            stamp.len,
            &options.limits,
        )
        .map_err(|p| p.at(path))?;
        let header = header(&reader);
        let converted = options
            .convert_depth
            .is_some_and(|t| t != header.sample_type);
        if reader.info().interlaced || converted {
            return Ok(None);
        }
        let channels = reader.output_color_type().0.samples();
        slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        Ok(Some(PngRows {
            reader,
            file: slot,
            header,
            channels,
            next_row: 0,
            stamp,
        }))
    }

    /// Width, height and sample type as served.
    pub fn shape(&self) -> (u32, u32, SampleType) {
        (
            self.header.width,
            self.header.height,
            self.header.sample_type,
        )
    }

    /// Reads rows `rows` (at or after the last band's) into `dst`, of `T`
    /// the image's sample type ([`PngRows::shape`]).
    pub fn read<T: Sample>(
        &mut self,
        path: &Path,
        rows: Range<u32>,
        dst: &mut [T],
    ) -> Result<(), Error> {
        let file = File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
        if FileStamp::of(path, &file)? != self.stamp {
            return Err(crate::source::changed_while_read(path));
        }
        // The decoder reads through this file until the band is read, then it is closed.
        *self.file.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
        let read = self.read_rows(path, rows, dst);
        let file = self.file.lock().unwrap_or_else(|e| e.into_inner()).take();
        read?;
        // A file rewritten in place during the band may have given a mix of two versions.
        match file {
            Some(file) if FileStamp::of(path, &file)? == self.stamp => Ok(()),
            _ => Err(crate::source::changed_while_read(path)),
        }
    }

    fn read_rows<T: Sample>(
        &mut self,
        path: &Path,
        rows: Range<u32>,
        dst: &mut [T],
    ) -> Result<(), Error> {
        let width = self.header.width as usize;
        if T::TYPE != self.header.sample_type
            || rows.start < self.next_row
            || rows.end > self.header.height
            || dst.len() != rows.len() * width
        {
            return Err(Error::mismatch_at(
                path,
                format!(
                    "rows {}..{} of {} into {} samples, after row {} of a {}x{} {} PNG",
                    rows.start,
                    rows.end,
                    T::TYPE,
                    dst.len(),
                    self.next_row,
                    width,
                    self.header.height,
                    self.header.sample_type
                ),
            ));
        }
        let at = |p: Problem| p.at(path);
        let mut out_rows = dst.chunks_exact_mut(width.max(1));
        while self.next_row < rows.end {
            let y = self.next_row;
            let row = self.reader.next_row().map_err(|e| at(problem(e)))?;
            let Some(row) = row else {
                return Err(at(format_problem!(
                    "the PNG ends after {y} of its {} rows",
                    self.header.height
                )));
            };
            self.next_row += 1;
            if y < rows.start {
                continue;
            }
            let (data, out) = (row.data(), out_rows.next().unwrap_or_default());
            let channels = self.channels;
            if data.len() != width * channels * self.header.sample_type.bytes() {
                return Err(at(format_problem!(
                    "the png decoder returned a row of {} bytes for {width} pixels of \
                     {channels} channels",
                    data.len()
                )));
            }
            if self.header.sample_type == SampleType::U16 {
                let out = bytemuck::cast_slice_mut::<T, u16>(out);
                let sample =
                    |p: &[u8], c: usize| u32::from(u16::from_be_bytes([p[2 * c], p[2 * c + 1]]));
                for (o, p) in out.iter_mut().zip(data.chunks_exact(2 * channels)) {
                    *o = match channels {
                        1 | 2 => sample(p, 0) as u16,
                        _ => luma(sample(p, 0), sample(p, 1), sample(p, 2)) as u16,
                    };
                }
            } else {
                let out = bytemuck::cast_slice_mut::<T, u8>(out);
                match channels {
                    1 => out.copy_from_slice(data),
                    _ => out.copy_from_slice(&to_gray(data, channels)),
                }
            }
        }
        #[cfg(test)]
        crate::source::probe::pixels_read(path, size_of_val(dst) as u64);
        Ok(())
    }
}

/// A file read from a position, whose handle [`PngRows`] puts in before a band
/// and takes out after it: reads past a band with no file are an error.
struct Parked {
    path: std::path::PathBuf,
    file: std::sync::Arc<std::sync::Mutex<Option<File>>>,
    pos: u64,
}

impl std::io::Read for Parked {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut slot = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let Some(file) = slot.as_mut() else {
            return Err(std::io::Error::other(format!(
                "{}: read between two bands",
                self.path.display()
            )));
        };
        file.seek(std::io::SeekFrom::Start(self.pos))?;
        let n = file.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Parked {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let len = || -> std::io::Result<u64> {
            let slot = self.file.lock().unwrap_or_else(|e| e.into_inner());
            match slot.as_ref() {
                Some(file) => Ok(file.metadata()?.len()),
                None => Err(std::io::Error::other("seek from the end between two bands")),
            }
        };
        let pos = match to {
            std::io::SeekFrom::Start(p) => Some(p),
            std::io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            std::io::SeekFrom::End(d) => len()?.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| std::io::Error::other("seek before the start"))?;
        Ok(self.pos)
    }
}

/// Sorts a `png` crate error into ctstack's classes.
fn problem(e: DecodingError) -> Problem {
    match e {
        DecodingError::Format(e) => format_problem!("PNG: {e}"),
        // The decoder reads from memory: an I/O error means the data ended early.
        DecodingError::IoError(e) => format_problem!("PNG data is truncated or corrupt: {e}"),
        DecodingError::LimitsExceeded => {
            Problem::Limits("the png decoder's memory limit was exceeded".into())
        }
        DecodingError::Parameter(e) => Problem::Unsupported(format!("PNG: {e}")),
    }
}
