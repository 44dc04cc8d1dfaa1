//! The layers of the library, as data, and the test that holds them.
//!
//! From the top: the face people use (the verbs, the sandbox), the shell
//! (the operator's loops), the runners of the other kinds (schedules,
//! policies), the adapters to the outside (AWS, the store, the leases kept
//! in it, and each feature's one I/O file), the request's decision, the
//! features' data and verdicts (gates, hooks, notices), and the ground
//! every layer may use. A module imports only from its own layer and those
//! below it; a feature imports no other feature (the request's decision
//! applies each one's verdict); and no two top-level modules import each
//! other, whatever their layers. docs/design.md draws the same picture.
//!
//! The test reads `src/` as text: every `use crate::…`/`use super::…`
//! and every `crate::…` path outside comments and strings is an import.
//! A second rule holds the pure core ([`PURE`]): it reads no clock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, top to bottom.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    Ground,
    Feature,
    Request,
    Adapter,
    Runner,
    Shell,
    Face,
}

impl Layer {
    /// Whether a module may import another top-level module of its own layer.
    fn shared(self) -> bool {
        !matches!(self, Self::Feature | Self::Runner)
    }
}

/// Module path (`::`-separated, below `crate`) → its layer; the longest
/// prefix of a path names its layer.
const LAYERS: &[(&str, Layer)] = &[
    ("lib", Layer::Face),
    ("layers", Layer::Face),
    ("cli", Layer::Face),
    ("sandbox", Layer::Face),
    ("dashboard", Layer::Face),
    // The simulated world the sandbox and the tests make: it imports
    // nothing of the crate.
    ("sandbox::fixture", Layer::Ground),
    ("operator", Layer::Shell),
    ("schedule", Layer::Runner),
    ("policy", Layer::Runner),
    ("aws", Layer::Adapter),
    ("store", Layer::Adapter),
    ("leases", Layer::Adapter),
    ("gates::observe", Layer::Adapter),
    ("hooks::call", Layer::Adapter),
    ("notify::deliver", Layer::Adapter),
    ("notify::config", Layer::Adapter),
    ("request", Layer::Request),
    ("gates", Layer::Feature),
    ("hooks", Layer::Feature),
    ("notify", Layer::Feature),
    ("duration", Layer::Ground),
    ("validate", Layer::Ground),
    ("fence", Layer::Ground),
    ("metrics", Layer::Ground),
    ("emf", Layer::Ground),
    ("clock", Layer::Ground),
    ("cron", Layer::Ground),
    ("message", Layer::Ground),
];

/// The entry of [`LAYERS`] a module falls under: its node in the picture.
fn node_of(module: &[String]) -> Option<(&'static str, Layer)> {
    let path = module.join("::");
    LAYERS
        .iter()
        .filter(|(prefix, _)| path == *prefix || path.starts_with(&format!("{prefix}::")))
        .max_by_key(|(prefix, _)| prefix.len())
        .copied()
}

/// The pure core: decisions over records and observations, with no I/O
/// and no clock of their own (the time comes in as a value).
const PURE: &[&str] = &[
    "request::decide",
    "request::hints",
    "request::look",
    "request::notices",
    "request::pacing",
    "request::preview",
    "gates::decide",
    "hooks::decide",
    "schedule::decide",
    "policy::decide",
];

/// What reads a clock.
const CLOCK_READS: &[&str] = &[
    "Utc::now(",
    "Local::now(",
    "Instant::now(",
    "SystemTime::now(",
    "tokio::time::sleep",
];

/// Every clock read in the pure core, as a sentence naming the file and line.
fn clock_reads(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src).expect("under src");
        let module = module_of(relative).join("::");
        if !PURE
            .iter()
            .any(|p| module == *p || module.starts_with(&format!("{p}::")))
        {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(&file).expect("readable source"));
        for (n, line) in code.lines().enumerate() {
            for read in CLOCK_READS.iter().filter(|r| line.contains(*r)) {
                problems.push(format!(
                    "src/{}:{}: reads a clock ({read}) in the pure core; take the time as a value",
                    relative.display(),
                    n + 1
                ));
            }
        }
    }
    problems
}

/// One import found in a file.
#[derive(Debug)]
struct Import {
    file: PathBuf,
    line: usize,
    /// The module path imported from, below `crate`.
    target: Vec<String>,
}

/// The module path of a source file below `src/` (`gates/observe.rs` →
/// `gates::observe`; `lib.rs` → `lib`; `aws/mod.rs` → `aws`).
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The text with comments and the insides of string and char literals
/// blanked (newlines kept, so line numbers hold).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&chars, i) {
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < chars.len() {
                if chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.extend(chars[i..j.min(chars.len())].iter().map(|c| blank(*c)));
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && is_char_literal(&chars, i) {
            // `'\''` and `'\u{..}'` end at the first quote after the escaped one.
            let end = if chars[i + 1] == '\\' {
                (i + 3..chars.len())
                    .find(|&j| chars[j] == '\'')
                    .unwrap_or(i)
            } else {
                i + 2
            };
            out.extend(std::iter::repeat_n(' ', end + 1 - i));
            i = end + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// `'x'` or `'\n'`, as opposed to a lifetime (`'a`).
fn is_char_literal(chars: &[char], i: usize) -> bool {
    matches!(
        (chars.get(i + 1), chars.get(i + 2)),
        (Some('\\'), _) | (Some(_), Some('\''))
    )
}

/// The paths a `use` tree names, braces expanded (`a::{b, c::d}` → `a::b`, `a::c::d`).
fn expand_use(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand_use(&format!("{prefix}{p}")))
        .collect()
}

/// A path as written in `module`, resolved below `crate`; `None` for an
/// outside crate's.
fn resolve(module: &[String], path: &str) -> Option<Vec<String>> {
    let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let (first, rest) = segments.split_first()?;
    // `module` includes the inline modules (`mod tests { .. }`) the path
    // is written in: `super` of `a/b.rs` is `a`, inside its `mod tests`, `a::b`.
    let mut base: Vec<String> = module.to_vec();
    let mut rest = rest;
    match *first {
        "crate" => base.clear(),
        "self" => {}
        "super" => {
            base.pop();
            while rest.first() == Some(&"super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    base.extend(
        rest.iter()
            .take_while(|s| {
                s.chars()
                    .next()
                    .is_some_and(|c| c.is_lowercase() || c == '_')
            })
            .map(|s| s.to_string()),
    );
    Some(base)
}

/// The inline modules of a file (`mod tests { .. }`): name and the span of
/// their body, outermost first.
fn inline_modules(code: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = code[at..].find("mod ") {
        let start = at + found;
        at = start + 4;
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            continue;
        }
        let rest = &code[at..];
        let name: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let after_name = rest.trim_start()[name.len()..].trim_start();
        if name.is_empty() || !after_name.starts_with('{') {
            continue;
        }
        let open = code.len() - after_name.len();
        let mut depth = 0;
        let close = code[open..]
            .char_indices()
            .find(|(_, c)| {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map_or(code.len(), |(i, _)| open + i);
        out.push((name, open..close));
    }
    out
}

fn imports_of(src: &Path, file: &Path) -> Vec<Import> {
    let relative = file.strip_prefix(src).expect("under src");
    let module = module_of(relative);
    let text = std::fs::read_to_string(file).expect("readable source");
    let code = code_only(&text);
    let inline = inline_modules(&code);
    let line_at = |offset: usize| code[..offset].matches('\n').count() + 1;
    let mut out: Vec<Import> = Vec::new();
    let mut push = |offset: usize, path: &str| {
        let mut here = module.clone();
        here.extend(
            inline
                .iter()
                .filter(|(_, span)| span.contains(&offset))
                .map(|(name, _)| name.clone()),
        );
        if let Some(target) = resolve(&here, path).filter(|t| !t.is_empty()) {
            let line = line_at(offset);
            if !out.iter().any(|i| i.line == line && i.target == target) {
                out.push(Import {
                    file: relative.to_path_buf(),
                    line,
                    target,
                });
            }
        }
    };
    let mut at = 0;
    while let Some(found) = code[at..].find("use ") {
        let start = at + found;
        at = start + 4;
        if start > 0 && code[..start].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(end) = code[at..].find(';') else {
            break;
        };
        let tree = &code[at..at + end];
        let trimmed = tree.trim_start();
        if trimmed.starts_with("crate::")
            || trimmed.starts_with("super::")
            || trimmed.starts_with("self::")
        {
            for path in expand_use(tree) {
                push(start, &path);
            }
        }
    }
    let mut at = 0;
    while let Some(found) = code[at..].find("crate::") {
        let start = at + found;
        at = start + 7;
        if start > 0
            && code[..start].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
        {
            continue;
        }
        let path: String = code[start..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        push(start, &path);
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every import that breaks a rule, as a sentence naming the file, the line and the import.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    // The binary (main.rs and its verbs under main/) stands above the
    // library: it may import anything, and nothing imports it.
    files.retain(|f| !f.ends_with("main.rs") && !f.starts_with(src.join("main")));
    files.sort();
    let mut problems = Vec::new();
    // Node (an entry of LAYERS) → the nodes it imports, with one example each.
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(file.strip_prefix(src).expect("under src"));
        let Some((node, from)) = node_of(&module) else {
            problems.push(format!(
                "src/{}: module {} has no layer in src/layers.rs",
                file.strip_prefix(src).unwrap().display(),
                module.join("::")
            ));
            continue;
        };
        for import in imports_of(src, file) {
            let target = node_of(&import.target);
            if target.is_some_and(|(other, _)| other == node) {
                continue;
            }
            let to = target.map(|(_, layer)| layer);
            let allowed = match to {
                Some(to) => to < from || (to == from && from.shared()),
                None => false,
            };
            if !allowed {
                problems.push(sentence(&import, from, to));
            }
            if let Some((other, _)) = target {
                edges
                    .entry(node.to_string())
                    .or_default()
                    .entry(other.to_string())
                    .or_insert_with(|| format!("src/{}:{}", import.file.display(), import.line));
            }
        }
    }
    let mut pairs = BTreeSet::new();
    for (a, targets) in &edges {
        for (b, example) in targets {
            if let Some(back) = edges.get(b).and_then(|t| t.get(a))
                && pairs.insert((a.min(b).clone(), a.max(b).clone()))
            {
                problems.push(format!(
                    "{a} and {b} import each other ({example} and {back})"
                ));
            }
        }
    }
    problems
}

fn sentence(import: &Import, from: Layer, to: Option<Layer>) -> String {
    format!(
        "src/{}:{}: imports crate::{} ({}) from the {:?} layer",
        import.file.display(),
        import.line,
        import.target.join("::"),
        to.map_or("a module with no layer".to_string(), |l| format!(
            "{l:?} layer"
        )),
        from
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
    }

    #[test]
    fn every_import_goes_down_the_layers_and_no_two_modules_import_each_other() {
        let problems = violations(&src());
        assert!(
            problems.is_empty(),
            "{} imports break the layers (src/layers.rs):\n{}",
            problems.len(),
            problems.join("\n")
        );
    }

    #[test]
    fn the_pure_core_reads_no_clock() {
        let problems = clock_reads(&src());
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn a_planted_clock_read_in_a_decision_is_named() {
        let dir = std::env::temp_dir().join(format!("layers-clock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("gates")).unwrap();
        std::fs::write(
            dir.join("gates/decide.rs"),
            "//! Utc::now() in a comment is no read\nfn f() { let _ = chrono::Utc::now(); }\n",
        )
        .unwrap();
        std::fs::write(dir.join("gates/observe.rs"), "fn g() { Utc::now(); }\n").unwrap();
        let problems = clock_reads(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            problems,
            [
                "src/gates/decide.rs:2: reads a clock (Utc::now() in the pure core; take the time as a value"
            ]
        );
    }

    #[test]
    fn a_planted_import_upwards_is_named_with_its_file_and_line() {
        let dir = std::env::temp_dir().join(format!("layers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("gates")).unwrap();
        std::fs::create_dir_all(dir.join("operator")).unwrap();
        std::fs::write(
            dir.join("gates/decide.rs"),
            "//! x\n// use crate::operator::Fence; (a comment: not an import)\nconst S: &str = \"crate::operator::x\";\nuse crate::{duration, operator::{step::Outcome}};\n",
        )
        .unwrap();
        std::fs::write(dir.join("duration.rs"), "//! ground\n").unwrap();
        std::fs::write(dir.join("operator/mod.rs"), "use crate::gates::decide;\n").unwrap();
        let problems = violations(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            problems,
            [
                "src/gates/decide.rs:4: imports crate::operator::step (Shell layer) from the Feature layer",
                "gates and operator import each other (src/gates/decide.rs:4 and src/operator/mod.rs:1)",
            ]
        );
    }

    #[test]
    fn use_trees_expand_and_relative_paths_resolve() {
        assert_eq!(
            expand_use("crate::a::{b, c::{d, e}}"),
            ["crate::a::b", "crate::a::c::d", "crate::a::c::e"]
        );
        let module = vec!["request".to_string(), "decide".to_string()];
        assert_eq!(
            resolve(&module, "super::status::Phase"),
            Some(vec!["request".to_string(), "status".to_string()])
        );
        assert_eq!(resolve(&module, "std::sync::Arc"), None);
    }
}
