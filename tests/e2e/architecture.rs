//! ARCHITECTURE.md stays a true map: what it names in backticks exists.
//!
//! Rules (fenced code blocks are skipped; only inline `code` spans count):
//! * A span is a repository path when it is made of path characters only
//!   (`A-Z a-z 0-9 _ . - /`), contains a `/` and starts with one of
//!   [`ROOTS`]. It must exist, relative to the repository root; a trailing
//!   `/` means a directory. Other spans with a `/` are relative names
//!   (`spool/mod.rs` within a row about the edge), placeholders
//!   (`<spool_dir>/tls/`), routes or protocol names, and are not checked.
//! * A span is a module path when it starts with one of [`CRATES`] followed
//!   by `::`. Its segments resolve as modules under that crate's `src/`
//!   (`x.rs`, or a directory `x/`) as far as they go; at most one segment may
//!   remain, and it must be an item (fn, struct, enum, trait, type, const,
//!   static, mod) declared in the last module's file (`x.rs`, `x/mod.rs`, or
//!   `lib.rs` for the crate itself). Paths relative to a module of the core
//!   (`clickhouse::store`) or to a file (`lib.rs::run`) are not checked.

use std::path::{Path, PathBuf};

/// First segments of repository paths.
const ROOTS: [&str; 6] = ["core/", "edge/", "deploy/", "tests/", "plugins/", "wit/"];

/// How module paths name crates, and where each crate's source is.
const CRATES: [(&str, &str); 6] = [
    ("core", "core/service/src"),
    ("edge", "edge/src"),
    ("tally_filter", "core/filter/src"),
    ("tally_http", "core/http/src"),
    ("model", "core/model/src"),
    ("tally_model", "core/model/src"),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `path` as the map would name it: relative to the repository.
fn shown(path: &Path) -> String {
    path.strip_prefix(repo()).unwrap_or(path).display().to_string()
}

/// The inline code spans of a Markdown text, outside fenced blocks.
fn code_spans(markdown: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            spans.extend(line.split('`').skip(1).step_by(2).map(String::from));
        }
    }
    spans
}

fn is_repo_path(span: &str) -> bool {
    span.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b)) && ROOTS.iter().any(|r| span.starts_with(r))
}

/// What is wrong with a repository path, if anything.
fn check_path(span: &str) -> Option<String> {
    let path = repo().join(span);
    let (found, kind) = if span.ends_with('/') { (path.is_dir(), "directory") } else { (path.exists(), "file") };
    (!found).then(|| format!("`{span}`: no {kind} {span} in the repository"))
}

/// Whether `file` declares an item called `name`.
fn declares(file: &Path, name: &str) -> bool {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let words: Vec<&str> = text.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
    let kinds = ["fn", "struct", "enum", "trait", "type", "const", "static", "mod"];
    words.windows(2).any(|w| w[1] == name && kinds.contains(&w[0]))
}

/// What is wrong with a module path, if anything; `None` also when the
/// span is no module path of a known crate.
fn check_module(span: &str) -> Option<String> {
    let mut segments = span.split("::");
    let root = segments.next()?;
    let (_, src) = CRATES.iter().find(|(name, _)| *name == root)?;
    let segments: Vec<&str> = segments.collect();
    if segments.is_empty() {
        return None;
    }
    let mut dir = repo().join(src);
    let mut file = dir.join("lib.rs");
    let mut rest = &segments[..];
    while let Some((first, tail)) = rest.split_first() {
        let (as_file, as_dir) = (dir.join(format!("{first}.rs")), dir.join(first));
        if as_file.is_file() {
            file = as_file;
        } else if as_dir.is_dir() {
            file = as_dir.join("mod.rs");
        } else {
            break;
        }
        dir = as_dir;
        rest = tail;
    }
    match rest {
        [] => None,
        [item] if declares(&file, item) => None,
        [item] => Some(format!("`{span}`: no item `{item}` declared in {}", shown(&file))),
        [missing, ..] => Some(format!("`{span}`: no module `{missing}` in {}", shown(&dir))),
    }
}

#[test]
fn architecture_names_only_what_exists() {
    let path = repo().join("ARCHITECTURE.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let spans = code_spans(&text);
    let mut stale: Vec<String> = spans.iter().filter(|s| is_repo_path(s)).filter_map(|s| check_path(s)).collect();
    stale.extend(spans.iter().filter_map(|s| check_module(s)));
    stale.sort();
    stale.dedup();
    assert!(stale.is_empty(), "ARCHITECTURE.md names what is not there:\n{}", stale.join("\n"));
}

#[test]
fn the_rules_tell_paths_and_modules_apart() {
    assert!(is_repo_path("edge/src/spool/mod.rs") && is_repo_path("deploy/clickhouse/queries/"));
    for relative in ["spool/mod.rs", "<spool_dir>/tls/edge-*.pem", "tally-batch/1", "GET /v1/registry/manifest"] {
        assert!(!is_repo_path(relative), "{relative}");
    }
    assert_eq!(check_path("deploy/config/"), None);
    assert!(check_path("edge/src/nowhere.rs").unwrap().contains("edge/src/nowhere.rs"));
    assert!(check_path("edge/src/lib.rs/").is_some(), "a trailing slash names a directory");
    for fine in ["edge::spool::wal", "core::commit::plan", "model::batch::frame", "edge::spool::FORMAT", "tally_http::client::ApiClient", "clickhouse::store"] {
        assert_eq!(check_module(fine), None, "{fine}");
    }
    assert!(check_module("edge::spool::nowhere").unwrap().contains("no item `nowhere`"));
    assert!(check_module("core::nowhere::plan").unwrap().contains("no module `nowhere`"));
}
