//! A voxel size from the scanner's files beside the slices (sidecars), for
//! slices that carry none. Only fields that the scanners' files document are
//! read, each with its unit:
//!
//! | Scanner (software) | File | Fields |
//! |---|---|---|
//! | Bruker SkyScan (NRecon) | `NAME_rec.log`, any `*.log` | `[Reconstruction]` `Pixel Size (um)` (x = y); z = that x `Section to Section Step` (1 when absent) |
//! | Nikon XT (CT Pro) | `*.xtekct` | `[XTekCT]` `VoxelSizeX`, `VoxelSizeY`, `VoxelSizeZ` in `Units` (`mm`, the only unit it writes) |
//! | GE phoenix datos\|x, reconstruction | `*.pcr` | `[VolumeData]` `VoxelSizeRec` (mm; cubic voxels) |
//! | GE phoenix datos\|x, acquisition | `*.pca` | `[Geometry]` `VoxelSizeX`, `VoxelSizeY` (mm); z = x |
//!
//! A Bruker log without a `[Reconstruction]` section (the acquisition's log of
//! the projections) is not a sidecar of the slices and is passed over. Zeiss
//! `.txrm` files are binary (OLE) and not read.
//!
//! Hostile input: each file is read up to [`MAX_SIDECAR_BYTES`] (the fields sit
//! in the first few KiB of a real one), at most [`MAX_CANDIDATES`] files are
//! read, and a field that is not a positive size is a warning naming the file,
//! the field and the value, never an error: a crop or a store is not refused for
//! a scanner's log.
//!
//! Which file: when several give a size, the one whose name begins the slices'
//! names (NRecon's `NAME_rec.log` beside `NAME_rec00000123.bmp`) wins, then a
//! reconstruction's file over an acquisition's (`.pcr` over `.pca`); files of
//! equal rank that disagree are a warning, and none is used.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The most bytes of a sidecar read: an NRecon log is about 4 KiB, a CT Pro
/// `.xtekct` 3 KiB, a datos|x `.pca` 10 KiB.
pub(crate) const MAX_SIDECAR_BYTES: u64 = 1 << 20;

/// The most candidate files read in one folder (a folder with more `.log`
/// files is not a scanner's output folder; the best-named ones are read).
pub(crate) const MAX_CANDIDATES: usize = 64;

/// The largest voxel size believed, in micrometres (1 m): a larger value is a
/// unit mistake, not a CT voxel.
const MAX_MICROMETRES: f64 = 1e6;

/// The kinds of sidecar, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    BrukerLog,
    NikonXtekct,
    PhoenixPcr,
    PhoenixPca,
}

impl Kind {
    fn of(path: &Path) -> Option<Kind> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "log" => Kind::BrukerLog,
            "xtekct" => Kind::NikonXtekct,
            "pcr" => Kind::PhoenixPcr,
            "pca" => Kind::PhoenixPca,
            _ => return None,
        })
    }

    /// What wrote it, for the note.
    fn writer(self) -> &'static str {
        match self {
            Kind::BrukerLog => "Bruker SkyScan NRecon log",
            Kind::NikonXtekct => "Nikon CT Pro project",
            Kind::PhoenixPcr => "GE phoenix datos|x reconstruction",
            Kind::PhoenixPca => "GE phoenix datos|x acquisition",
        }
    }

    /// Whether the file describes the reconstructed volume (the slices), not
    /// only the acquisition that the volume was reconstructed from.
    fn describes_reconstruction(self) -> bool {
        self != Kind::PhoenixPca
    }

    /// `(z, y, x)` in micrometres and the fields read, if the file is this
    /// kind's sidecar; `Err` for a field that is there but not a size.
    fn read(self, ini: &Ini) -> Result<Option<([f64; 3], &'static str)>, String> {
        match self {
            Kind::BrukerLog => {
                let Some(pixel) = ini.get("Reconstruction", "Pixel Size (um)") else {
                    return Ok(None);
                };
                let xy = size(pixel, 1.0, "[Reconstruction] Pixel Size (um)")?;
                let step = match ini.get("Reconstruction", "Section to Section Step") {
                    None => 1,
                    Some(v) => v.parse::<u32>().ok().filter(|s| *s >= 1).ok_or_else(|| {
                        format!(
                            "[Reconstruction] Section to Section Step = {v:?} is not a \
                                 whole number >= 1"
                        )
                    })?,
                };
                let fields = match step {
                    1 => "[Reconstruction] Pixel Size (um)",
                    _ => "[Reconstruction] Pixel Size (um), z times its Section to Section Step",
                };
                Ok(Some(([xy * f64::from(step), xy, xy], fields)))
            }
            Kind::NikonXtekct => {
                let field = |key| ini.get("XTekCT", key);
                let keys = ["VoxelSizeZ", "VoxelSizeY", "VoxelSizeX"];
                if keys.iter().all(|k| field(k).is_none()) {
                    return Ok(None);
                }
                let unit = field("Units").unwrap_or("mm");
                if unit != "mm" {
                    return Err(format!(
                        "[XTekCT] Units = {unit:?}: only mm (what CT Pro writes) is known"
                    ));
                }
                let mut zyx = [0.0; 3];
                for (v, key) in zyx.iter_mut().zip(keys) {
                    let text = field(key).ok_or_else(|| format!("[XTekCT] {key} is missing"))?;
                    *v = size(text, 1000.0, key)?;
                }
                Ok(Some((zyx, "[XTekCT] VoxelSizeX/Y/Z (mm)")))
            }
            Kind::PhoenixPcr => {
                let Some(v) = ini.get("VolumeData", "VoxelSizeRec") else {
                    return Ok(None);
                };
                let s = size(v, 1000.0, "[VolumeData] VoxelSizeRec")?;
                Ok(Some(([s; 3], "[VolumeData] VoxelSizeRec (mm)")))
            }
            Kind::PhoenixPca => {
                let (Some(x), Some(y)) = (
                    ini.get("Geometry", "VoxelSizeX"),
                    ini.get("Geometry", "VoxelSizeY"),
                ) else {
                    return Ok(None);
                };
                let x = size(x, 1000.0, "[Geometry] VoxelSizeX")?;
                let y = size(y, 1000.0, "[Geometry] VoxelSizeY")?;
                Ok(Some((
                    [x, y, x],
                    "[Geometry] VoxelSizeX/Y (mm), z taken equal to x",
                )))
            }
        }
    }
}

/// `text` as a size in micrometres, given `um_per_unit`: a number > 0 and at
/// most [`MAX_MICROMETRES`], else a message naming `field`.
fn size(text: &str, um_per_unit: f64, field: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .map(|v| v * um_per_unit)
        .filter(|v| v.is_finite() && *v > 0.0 && *v <= MAX_MICROMETRES)
        .ok_or_else(|| {
            format!("{field} = {text:?} is not a size > 0 (and at most 1 m) in its unit")
        })
}

/// The `[Section]` / `key=value` lines of an INI-style text, as the scanners
/// write them: keys and section names compared ignoring case and surrounding
/// spaces, values trimmed; the first occurrence counts.
struct Ini {
    entries: Vec<(String, String, String)>,
}

impl Ini {
    fn parse(text: &str) -> Ini {
        let mut section = String::new();
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.trim().to_ascii_lowercase();
            } else if let Some((key, value)) = line.split_once('=') {
                entries.push((
                    section.clone(),
                    key.trim().to_ascii_lowercase(),
                    value.trim().to_string(),
                ));
            }
        }
        Ini { entries }
    }

    fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(s, k, _)| s.eq_ignore_ascii_case(section) && k.eq_ignore_ascii_case(key))
            .map(|(_, _, v)| v.as_str())
    }
}

/// The text of the first [`MAX_SIDECAR_BYTES`] of `bytes`' file: UTF-16LE when
/// it starts with that byte-order mark, else UTF-8 (a BOM dropped; bytes that
/// are not UTF-8, as a Windows code page's `µ`, replaced).
fn decode(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16_lossy(&units);
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

/// A sidecar that gave a size.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sidecar {
    /// The file.
    pub path: PathBuf,
    /// `(z, y, x)` in micrometres.
    pub micrometres: [f64; 3],
    /// The fields read and the file's kind, for the note.
    pub fields: String,
}

/// What [`find`] found: the sidecar used, if any, and what went wrong on the way.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lookup {
    pub found: Option<Sidecar>,
    pub warnings: Vec<String>,
}

/// The scanner's voxel size for a stack whose first slice is the file
/// `first_slice` (its folder is searched; see the module docs).
pub(crate) fn find(first_slice: &Path) -> Lookup {
    let folder = match first_slice.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let slice_name = first_slice
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    // The slice's name begins with the file's stem: NRecon's `NAME_rec.log`.
    let named_for_slices = |path: &Path| {
        path.file_stem()
            .map(|s| s.to_string_lossy().to_lowercase())
            .is_some_and(|stem| !stem.is_empty() && slice_name.starts_with(&stem))
    };
    let mut candidates: Vec<(bool, Kind, PathBuf)> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let kind = Kind::of(&path)?;
            Some((!named_for_slices(&path), kind, path))
        })
        .collect();
    candidates.sort();
    candidates.truncate(MAX_CANDIDATES);

    let mut lookup = Lookup::default();
    // (rank: named for the slices, a reconstruction's file), the sidecar.
    let mut found: Vec<((bool, bool), Sidecar)> = Vec::new();
    for (not_named, kind, path) in candidates {
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            continue;
        }
        let mut bytes = Vec::new();
        if file
            .take(MAX_SIDECAR_BYTES)
            .read_to_end(&mut bytes)
            .is_err()
        {
            continue;
        }
        match kind.read(&Ini::parse(&decode(&bytes))) {
            Ok(Some((micrometres, fields))) => found.push((
                (!not_named, kind.describes_reconstruction()),
                Sidecar {
                    path,
                    micrometres,
                    fields: format!("{fields}, a {}", kind.writer()),
                },
            )),
            Ok(None) => {}
            Err(what) => lookup.warnings.push(format!(
                "{}: {what}: the voxel size is not read from it",
                path.display()
            )),
        }
    }
    let Some(best) = found.iter().map(|(rank, _)| *rank).max() else {
        return lookup;
    };
    let best: Vec<&Sidecar> = found
        .iter()
        .filter(|(rank, _)| *rank == best)
        .map(|(_, s)| s)
        .collect();
    let agree = |a: &Sidecar, b: &Sidecar| {
        a.micrometres
            .iter()
            .zip(&b.micrometres)
            .all(|(a, b)| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()))
    };
    if best.iter().all(|s| agree(s, best[0])) {
        lookup.found = Some(best[0].clone());
    } else {
        let said: Vec<String> = best
            .iter()
            .map(|s| {
                let [z, y, x] = s.micrometres;
                format!("{} says {z} x {y} x {x} um", s.path.display())
            })
            .collect();
        lookup.warnings.push(format!(
            "the scanner's files disagree on the voxel size ({}): none is used",
            said.join(", ")
        ));
    }
    lookup
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ctstack-sidecar-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, bytes) in files {
            std::fs::write(dir.join(file), bytes).unwrap();
        }
        dir
    }

    const NRECON: &str = "[System]\r\nScanner=SkyScan1272\r\n[Acquisition]\r\n\
        Image Pixel Size (um)=19.797722\r\n[Reconstruction]\r\n\
        Section to Section Step=1\r\nPixel Size (um)=12.500000\r\n";

    #[test]
    fn an_nrecon_log_gives_its_reconstruction_pixel_size() {
        let dir = folder("nrecon", &[("sample_rec.log", NRECON.as_bytes())]);
        let lookup = find(&dir.join("sample_rec00000001.bmp"));
        let found = lookup.found.unwrap();
        assert_eq!(found.micrometres, [12.5; 3]);
        assert!(found.fields.contains("Pixel Size (um)"), "{}", found.fields);
        assert!(lookup.warnings.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_section_step_spaces_the_slices() {
        let log = NRECON.replace("Step=1", "Step=3");
        let dir = folder("step", &[("s_rec.log", log.as_bytes())]);
        let found = find(&dir.join("s_rec0001.bmp")).found.unwrap();
        assert_eq!(found.micrometres, [37.5, 12.5, 12.5]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_acquisition_log_is_not_a_sidecar() {
        let log = "[System]\nScanner=SkyScan1272\n[Acquisition]\nImage Pixel Size (um)=9.0\n";
        let dir = folder("acq", &[("scan.log", log.as_bytes())]);
        let lookup = find(&dir.join("scan0001.tif"));
        assert!(lookup.found.is_none() && lookup.warnings.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_malformed_field_is_a_warning_never_a_panic() {
        for bad in ["abc", "-2", "0", "NaN", "inf", "1e300", ""] {
            let log = NRECON.replace("12.500000", bad);
            let dir = folder("bad", &[("s_rec.log", log.as_bytes())]);
            let lookup = find(&dir.join("s_rec0001.bmp"));
            assert!(lookup.found.is_none(), "{bad}");
            assert!(
                lookup.warnings[0].contains("s_rec.log") && lookup.warnings[0].contains("Pixel"),
                "{:?}",
                lookup.warnings
            );
            std::fs::remove_dir_all(&dir).unwrap();
        }
        // Bytes that are no text at all, an unterminated section, a huge line.
        let mut junk = vec![0xFFu8, 0x00, b'[', b'R', b'=', 0xC3];
        junk.extend(std::iter::repeat_n(b'=', 3 << 20));
        let dir = folder("junk", &[("s_rec.log", &junk)]);
        let lookup = find(&dir.join("s_rec0001.bmp"));
        assert!(lookup.found.is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_file_named_for_the_slices_wins_and_disagreement_is_reported() {
        let other = NRECON.replace("12.500000", "25");
        let dir = folder(
            "rank",
            &[
                ("a_rec.log", NRECON.as_bytes()),
                ("b_rec.log", other.as_bytes()),
            ],
        );
        let found = find(&dir.join("b_rec0001.bmp")).found.unwrap();
        assert_eq!(found.micrometres, [25.0; 3]);
        let lookup = find(&dir.join("c_rec0001.bmp"));
        assert!(lookup.found.is_none());
        assert!(
            lookup.warnings[0].contains("disagree"),
            "{:?}",
            lookup.warnings
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nikon_and_phoenix_files_give_their_sizes_in_millimetres() {
        let xtekct = "[XTekCT]\nVoxelSizeX=0.02\nVoxelSizeY=0.02\nVoxelSizeZ=0.025\nUnits=mm\n";
        let pcr = "[VolumeData]\nVolume_SizeX=456\nVoxelSizeRec=0.0102906534448266\n";
        let pca = "[Geometry]\nFDD=807.1\nVoxelSizeX=0.02\nVoxelSizeY=0.02\n";
        let dir = folder("nikon", &[("scan.xtekct", xtekct.as_bytes())]);
        let found = find(&dir.join("slice_0001.tif")).found.unwrap();
        assert_eq!(found.micrometres, [25.0, 20.0, 20.0]);
        std::fs::remove_dir_all(&dir).unwrap();
        // The reconstruction's file wins over the acquisition's.
        let dir = folder(
            "phoenix",
            &[("scan.pca", pca.as_bytes()), ("scan.pcr", pcr.as_bytes())],
        );
        let found = find(&dir.join("slice_0001.tif")).found.unwrap();
        assert!((found.micrometres[2] - 10.2906534448266).abs() < 1e-9);
        std::fs::remove_dir_all(&dir).unwrap();
        let dir = folder("pca", &[("scan.pca", pca.as_bytes())]);
        let found = find(&dir.join("slice_0001.tif")).found.unwrap();
        assert_eq!(found.micrometres, [20.0; 3]);
        std::fs::remove_dir_all(&dir).unwrap();
        let inches = xtekct.replace("Units=mm", "Units=inch");
        let dir = folder("inch", &[("scan.xtekct", inches.as_bytes())]);
        let lookup = find(&dir.join("slice_0001.tif"));
        assert!(lookup.found.is_none() && lookup.warnings[0].contains("Units"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn utf16_files_are_read() {
        let text = "[XTekCT]\r\nVoxelSizeX=0.01\r\nVoxelSizeY=0.01\r\nVoxelSizeZ=0.01\r\n";
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        let dir = folder("utf16", &[("scan.xtekct", &bytes)]);
        let found = find(&dir.join("slice_0001.tif")).found.unwrap();
        assert_eq!(found.micrometres, [10.0; 3]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
