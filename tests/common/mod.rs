//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod docs;
pub mod pyramid;

use std::path::PathBuf;

use serde_json::Value;

/// The repository's fixtures folder.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// fixtures/expected.json, one object per single-slice fixture.
pub fn expected() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// A small deterministic generator (xorshift64*), so tests need no rand crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Every pixel of a decoded image via the `tiff` crate (the independent reference reader).
pub fn tiff_crate_pixels(path: &std::path::Path) -> Vec<u32> {
    let file = std::fs::File::open(path).unwrap();
    let mut dec = tiff::decoder::Decoder::new(std::io::BufReader::new(file))
        .unwrap()
        .with_limits(tiff::decoder::Limits::unlimited());
    match dec.read_image().unwrap() {
        tiff::decoder::DecodingResult::U8(v) => v.into_iter().map(u32::from).collect(),
        tiff::decoder::DecodingResult::U16(v) => v.into_iter().map(u32::from).collect(),
        _ => panic!("unexpected sample type in {}", path.display()),
    }
}

/// CRC-32 (ISO-HDLC, the one PNG chunks carry), bit by bit.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Whether a check may be skipped when a tool it needs is missing: only with
/// `CTSTACK_ALLOW_SKIPS=1`, and never under `CTSTACK_REQUIRE_EXTERNAL=1` (.ci/run).
/// By default a missing tool fails the check, so that a green `cargo test` means
/// every check ran (cargo hides what a passing test prints).
pub fn skips_allowed() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| v == "1");
    set("CTSTACK_ALLOW_SKIPS") && !set("CTSTACK_REQUIRE_EXTERNAL")
}

/// A check that cannot run because `missing` is not there: fails naming it and
/// `install` (how to get it), or, when [`skips_allowed`], says so on stderr and
/// returns (the caller then returns too).
pub fn missing_tool(missing: &str, install: &str) {
    assert!(
        skips_allowed(),
        "{missing} not found: {install}. To skip the checks that need it instead, run \
         CTSTACK_ALLOW_SKIPS=1 cargo test (README, Quick start)"
    );
    eprintln!("skipped (CTSTACK_ALLOW_SKIPS=1): {missing} not found ({install})");
}

/// How to install the Python packages the tests read outputs with (what .ci/run installs).
pub const PYTHON_PACKAGES: &str = "python3 -m pip install numpy tifffile imagecodecs Pillow dask \
     distributed tqdm \"zarr>=3\" ome-zarr-models ome-zarr ngff-zarr tensorstore, or set CTSTACK_PYTHON to a \
     Python that has them";

/// The value of `key = "..."` in section `[section]` of a TOML file's text.
pub fn toml_string(text: &str, section: &str, key: &str) -> Option<String> {
    let mut lines = text
        .lines()
        .skip_while(|l| l.trim() != format!("[{section}]"));
    lines.next()?;
    lines
        .take_while(|l| !l.trim_start().starts_with('['))
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
        })
}

/// A copy of the image files of `fixtures/<stack>` in `dir` (created), with the
/// scanner's files of `fixtures/sidecars/<sidecars>` beside them (none for
/// `None`): a scan folder as the scanner's software leaves it.
pub fn stack_with_sidecar(stack: &str, sidecars: Option<&str>, dir: &std::path::Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut sources = vec![fixtures().join(stack)];
    sources.extend(sidecars.map(|s| fixtures().join("sidecars").join(s)));
    for source in sources {
        for entry in std::fs::read_dir(source).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    dir.to_path_buf()
}

/// Every file under `dir` (relative path, `/` between its parts on every
/// platform -> bytes).
pub fn tree_files(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap();
                let rel = rel
                    .iter()
                    .map(|part| part.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}
