//! The `ctstack` command-line tool: a thin layer over the library.

use std::process::ExitCode;

use ctstack::Slice;

const USAGE: &str = "\
usage:
  ctstack info FILE...     one line per file: size, depth, compression, byte order, access path
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("info") if args.len() > 1 => info(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Prints one line per file; exits non-zero if any file failed to open.
fn info(files: &[String]) -> ExitCode {
    let mut failed = false;
    for file in files {
        match Slice::open(file) {
            Ok(s) => println!(
                "{file}: {}x{} {}-bit, compression {}, {}{}, {}",
                s.width(),
                s.height(),
                s.bits(),
                s.compression().name(),
                s.byte_order().name(),
                if s.is_bigtiff() { " BigTIFF" } else { "" },
                s.access()
            ),
            Err(e) => {
                failed = true;
                println!("{file}: error ({}): {e}", e.kind());
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
