//! Pyramid outputs are ordinary TIFFs: tifffile, Pillow and libtiff read them and
//! see the same pixels as ctstack.
//!
//! Needs Python with tifffile + Pillow (`CTSTACK_PYTHON`, default `python3`) and
//! libtiff's `tiffinfo`/`tiffcp`. When they are missing the test fails saying how to
//! install them, or skips with `CTSTACK_ALLOW_SKIPS=1` ([`common::missing_tool`]).

mod common;

use std::path::PathBuf;
use std::process::Command;

use ctstack::{CancelFlag, PyramidBuilder, Slice};

fn python() -> String {
    std::env::var("CTSTACK_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn have(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

const READ_SCRIPT: &str = r#"
import sys, numpy as np, tifffile
from PIL import Image
for path in sys.argv[1:]:
    a = tifffile.imread(path)
    b = np.asarray(Image.open(path))
    assert a.shape == b.shape, (path, a.shape, b.shape)
    assert (a.astype(np.uint32) == b.astype(np.uint32)).all(), path
    print(path, a.dtype.itemsize * 8, a.shape[1], a.shape[0], int(a.astype(np.uint64).sum()))
"#;

#[test]
fn tifffile_pillow_and_libtiff_read_our_outputs() {
    let py_ok = have(Command::new(python()).args(["-c", "import tifffile, PIL, numpy"]));
    let tiff_ok = have(Command::new("tiffinfo").arg("-h"))
        || have(Command::new("tiffcp").arg("-h"))
        || Command::new("tiffinfo").output().is_ok();
    if !py_ok {
        common::missing_tool(
            &format!("{} with numpy, tifffile and Pillow", python()),
            common::PYTHON_PACKAGES,
        );
        return;
    }
    if !tiff_ok {
        common::missing_tool(
            "libtiff's tiffinfo and tiffcp",
            "apt-get install libtiff-tools (Debian, Ubuntu), brew install libtiff (macOS)",
        );
        return;
    }
    let out = std::env::temp_dir().join(format!("ctstack-external-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut files: Vec<PathBuf> = Vec::new();
    for (stack, min_size) in [("stack", 80), ("stack_u8", 10)] {
        let dir = out.join(stack);
        let plan = PyramidBuilder::from_dir(common::fixtures().join(stack))
            .unwrap()
            .output_dir(&dir);
        plan.min_size(min_size)
            .plan()
            .unwrap()
            .run(&mut |_, _| {}, &CancelFlag::new())
            .unwrap();
        files.push(dir.join("1/000000.tif"));
        files.push(dir.join("2/000001.tif"));
    }

    let output = Command::new(python())
        .arg("-c")
        .arg(READ_SCRIPT)
        .args(&files)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python readers failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = String::from_utf8(output.stdout).unwrap();
    for (file, line) in files.iter().zip(lines.lines()) {
        let s = Slice::open(file).unwrap();
        let sum: u64 = match s.bits() {
            8 => s
                .contiguous::<u8>()
                .unwrap()
                .iter()
                .map(|&v| u64::from(v))
                .sum(),
            _ => s
                .contiguous::<u16>()
                .unwrap()
                .iter()
                .map(|&v| u64::from(v))
                .sum(),
        };
        let want = format!(
            "{} {} {} {} {sum}",
            file.display(),
            s.bits(),
            s.width(),
            s.height()
        );
        assert_eq!(line, want);
    }

    for file in &files {
        // libtiff: tiffinfo must parse it with no error, and tiffcp must decode every strip.
        let info = Command::new("tiffinfo").arg(file).output().unwrap();
        assert!(
            info.status.success() && info.stderr.is_empty(),
            "tiffinfo: {}",
            String::from_utf8_lossy(&info.stderr)
        );
        let text = String::from_utf8_lossy(&info.stdout);
        assert!(
            text.contains("Compression Scheme: None") && text.contains("min-is-black"),
            "{text}"
        );
        let copy = file.with_extension("lzw.tif");
        let status = Command::new("tiffcp")
            .args(["-c", "lzw"])
            .arg(file)
            .arg(&copy)
            .status()
            .unwrap();
        assert!(status.success());
        let (a, b) = (Slice::open(file).unwrap(), Slice::open(&copy).unwrap());
        assert_eq!(b.access().path, ctstack::AccessPath::Decoded);
        match a.bits() {
            8 => assert_eq!(a.contiguous::<u8>().unwrap(), b.contiguous::<u8>().unwrap()),
            _ => assert_eq!(
                a.contiguous::<u16>().unwrap(),
                b.contiguous::<u16>().unwrap()
            ),
        }
    }
    std::fs::remove_dir_all(&out).unwrap();
}
