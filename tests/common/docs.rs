//! The documentation's pages and their fenced blocks, for the tests that run the
//! examples (tests/docs.rs, tests/c_abi.rs).

use std::path::{Path, PathBuf};

/// The checkout's top folder.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, python/README.md, benches/results.md and every docs/*.md (sorted), as
/// paths relative to the checkout: the pages whose examples and links are tested.
pub fn pages() -> Vec<PathBuf> {
    let root = root();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .map(|path| path.strip_prefix(&root).unwrap().to_path_buf())
        .collect();
    docs.sort();
    let mut pages: Vec<PathBuf> = ["README.md", "python/README.md", "benches/results.md"]
        .iter()
        .map(PathBuf::from)
        .collect();
    pages.extend(docs);
    pages
}

/// The text of a page (a path relative to the checkout).
pub fn read(page: &Path) -> String {
    std::fs::read_to_string(root().join(page)).unwrap_or_else(|e| panic!("{}: {e}", page.display()))
}

/// The fenced blocks of `markdown` whose info string is `lang`, in order: the line
/// of the opening fence (1-based) and the body.
pub fn fenced_blocks(markdown: &str, lang: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    // The open block: its language, its first line, its body.
    let mut open: Option<(String, usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let fence = line.trim_end().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(info)) => open = Some((info.trim().to_string(), i + 1, String::new())),
            (Some(_), Some("")) => {
                let (info, start, body) = open.take().unwrap();
                if info == lang {
                    blocks.push((start, body));
                }
            }
            (Some((_, _, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

/// The lines of `markdown` outside fenced blocks, with their line numbers (1-based).
pub fn prose_lines(markdown: &str) -> Vec<(usize, &str)> {
    let mut in_block = false;
    let mut lines = Vec::new();
    for (i, line) in markdown.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
        } else if !in_block {
            lines.push((i + 1, line));
        }
    }
    lines
}
