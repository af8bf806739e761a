//! The documentation is checked like code: every relative link of its pages
//! (README.md, python/README.md, benches/results.md, docs/*.md) points to a file
//! that exists, and an `#anchor` to a heading of it; every `console` transcript
//! runs and prints what it shows; every page with a Rust block is among the
//! doctests of src/lib.rs; the README stays a front page.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::docs::{fenced_blocks, pages, prose_lines, read, root};

const BIN: &str = env!("CARGO_BIN_EXE_ctstack");

/// The README's length limit (issue 27: what it is, install, the CLI, the
/// interfaces, a summary; the depth lives in docs/).
const README_MAX_LINES: usize = 300;

/// `text` without its inline code spans (a link inside one is an example, not a link).
fn without_code_spans(text: &str) -> String {
    text.split('`').step_by(2).collect()
}

/// The targets of the Markdown links `[text](target)` on a line.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    line.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &line[at + 2..];
            rest.find(')').map(|end| rest[..end].trim().to_string())
        })
        .collect()
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a page's headings.
fn anchors(markdown: &str) -> Vec<String> {
    prose_lines(markdown)
        .into_iter()
        .filter(|(_, line)| line.starts_with('#'))
        .map(|(_, line)| anchor(line.trim_start_matches('#')))
        .collect()
}

/// What is wrong with one link of `page`, if anything.
fn broken(page: &Path, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (file, fragment) = match target.split_once('#') {
        Some((file, fragment)) => (file, Some(fragment)),
        None => (target, None),
    };
    let linked = if file.is_empty() {
        page.to_path_buf()
    } else {
        page.parent().unwrap_or(Path::new("")).join(file)
    };
    let path = root().join(&linked);
    if !path.exists() {
        return Some(format!("{target}: {} does not exist", linked.display()));
    }
    if let Some(fragment) = fragment {
        let text = std::fs::read_to_string(&path).ok()?;
        if !anchors(&text).iter().any(|a| a == fragment) {
            return Some(format!(
                "{target}: {} has no heading #{fragment}",
                linked.display()
            ));
        }
    }
    None
}

#[test]
fn relative_links_point_to_files_that_exist() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = read(&page);
        for (line, content) in prose_lines(&text) {
            for target in link_targets(content) {
                checked += 1;
                if let Some(problem) = broken(&page, &target) {
                    problems.push(format!("{}:{line}: {problem}", page.display()));
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} links found: is the parser broken?"
    );
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

/// The link checker itself: it must see a missing file and a missing heading.
#[test]
fn the_link_checker_finds_broken_links() {
    let readme = Path::new("README.md");
    assert_eq!(
        link_targets("see [a](docs/a.md) and `[b](x.md)`"),
        ["docs/a.md"]
    );
    assert!(broken(readme, "docs/no-such-page.md").is_some());
    assert!(broken(readme, "docs/cli.md#no-such-heading").is_some());
    assert!(broken(readme, "docs/cli.md#exit-statuses").is_none());
    assert!(broken(readme, "#durability").is_none());
    assert!(broken(readme, "https://example.com/x").is_none());
    assert_eq!(anchor(" `ctstack crop`"), "ctstack-crop");
    assert_eq!(anchor(" OME-Zarr: napari, Fiji"), "ome-zarr-napari-fiji");
}

/// A copy of `from` (a folder tree) at `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Whether `actual` (a command's stdout) is what a transcript shows: line by line,
/// a shown line ending in `...` compared up to there, a line `...` alone standing
/// for the rest.
fn matches(shown: &[&str], actual: &str) -> bool {
    let actual: Vec<&str> = actual.lines().collect();
    for (i, line) in shown.iter().enumerate() {
        if *line == "..." {
            return true;
        }
        let Some(got) = actual.get(i) else {
            return false;
        };
        let fits = match line.strip_suffix("...") {
            Some(prefix) => got.starts_with(prefix),
            None => got == line,
        };
        if !fits {
            return false;
        }
    }
    actual.len() == shown.len()
}

/// One transcript: `$ ctstack ARGS` lines, each followed by what it prints on
/// stdout. Run in `scratch` (a copy of the fixtures); the mismatches, described.
fn run_transcript(page: &Path, start: usize, block: &str, scratch: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut commands: Vec<(usize, &str, Vec<&str>)> = Vec::new();
    for (i, line) in block.lines().enumerate() {
        match line.strip_prefix("$ ") {
            Some(command) => commands.push((start + 1 + i, command, Vec::new())),
            None => match commands.last_mut() {
                Some((_, _, shown)) => shown.push(line),
                None => problems.push(format!(
                    "{}:{start}: output before any command",
                    page.display()
                )),
            },
        }
    }
    for (line, command, shown) in commands {
        let where_ = format!("{}:{line}: `{command}`", page.display());
        let Some(args) = command.strip_prefix("ctstack ") else {
            problems.push(format!("{where_}: a transcript runs only ctstack"));
            continue;
        };
        assert!(
            !args.contains(['"', '\'', '$', '|', '>']),
            "{where_}: no shell syntax here"
        );
        let output = Command::new(BIN)
            .args(args.split_whitespace())
            .current_dir(scratch)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !matches(&shown, &stdout) {
            problems.push(format!(
                "{where_} printed\n{stdout}(stderr: {})\nbut the page shows\n{}",
                String::from_utf8_lossy(&output.stderr),
                shown.join("\n")
            ));
        }
        // An error status is a documented outcome (`info` on an unsupported file
        // exits 1); a crash or an internal error never is.
        match output.status.code() {
            Some(4) | None => problems.push(format!("{where_}: {}", output.status)),
            _ => {}
        }
    }
    problems
}

#[test]
fn console_transcripts_print_what_they_show() {
    let mut problems = Vec::new();
    let mut ran = 0;
    for page in pages() {
        let blocks = fenced_blocks(&read(&page), "console");
        if blocks.is_empty() {
            continue;
        }
        // One scratch checkout per page: its transcripts run in order (a store
        // written by one is described by the next).
        let name = page.display().to_string().replace(['/', '.'], "-");
        let scratch: PathBuf =
            std::env::temp_dir().join(format!("ctstack-docs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        copy_tree(&root().join("fixtures"), &scratch.join("fixtures"));
        std::fs::create_dir_all(scratch.join("target")).unwrap();
        for (start, block) in blocks {
            ran += 1;
            problems.extend(run_transcript(&page, start, &block, &scratch));
        }
        std::fs::remove_dir_all(&scratch).unwrap();
    }
    assert!(ran >= 2, "only {ran} console blocks found");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// The transcript matcher itself: a changed line, a missing line and an extra line
/// are mismatches.
#[test]
fn the_transcript_matcher_sees_differences() {
    assert!(matches(&["a", "b ..."], "a\nb 0.1 s\n"));
    assert!(matches(&["a", "..."], "a\nanything\nelse\n"));
    assert!(!matches(&["a", "b"], "a\nc\n"));
    assert!(!matches(&["a", "b"], "a\n"));
    assert!(!matches(&["a"], "a\nb\n"));
}

#[test]
fn pages_with_rust_examples_are_doctested() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    for page in pages() {
        let text = read(&page);
        let rust = fenced_blocks(&text, "rust").len() + fenced_blocks(&text, "rust,no_run").len();
        // The path as lib.rs spells it, with `/` on Windows too.
        let name = page.to_string_lossy().replace('\\', "/");
        let include = format!("include_str!(\"../{name}\")");
        assert!(
            rust == 0 || lib.contains(&include),
            "{name} has Rust examples: add #[doc = {include}] to src/lib.rs's doc_pages"
        );
    }
}

#[test]
fn readme_stays_a_front_page() {
    let lines = read(Path::new("README.md")).lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines (at most {README_MAX_LINES}): move the depth into docs/"
    );
}
