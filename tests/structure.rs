//! The crate's shape, checked: no import cycle between its source files, and no file so large
//! that it hides its jobs (800 lines before its tests; 600 in `src/feed/`).
//!
//! A file depends on another when it names something defined in it — through `use`, an inline
//! `crate::`/`super::`/`self::` path — resolved to the deepest module file the path reaches. A
//! child naming an item of its parent's file depends on the parent. Test code (`#[cfg(test)]`
//! blocks at the end of a file, `tests.rs` files and `tests/` folders) is left out: tests may
//! reach anything. `cargo test --test structure -- --nocapture` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A module: its path (`["feed", "core"]`) and its file.
type Modules = BTreeMap<Vec<String>, PathBuf>;

fn collect(dir: &Path, prefix: &[String], out: &mut Modules) {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let path = e.path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            if name == "tests" || name == "bin" {
                continue;
            }
            let mut p = prefix.to_vec();
            p.push(name);
            collect(&path, &p, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            if name == "tests" || name == "main" {
                continue;
            }
            let mut p = prefix.to_vec();
            if name != "mod" && name != "lib" {
                p.push(name);
            }
            out.insert(p, path);
        }
    }
}

/// The part of a file that is not its tests, without comments.
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let line = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Every path a file names from `crate`, `super` or `self`, with `use` groups expanded.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    // `use` statements, braces expanded.
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        let stmt_end = rest[i..].find(';').map_or(rest.len(), |e| i + e);
        if before.is_none_or(|c| !c.is_alphanumeric() && c != '_') {
            expand(&rest[i + 4..stmt_end], &mut Vec::new(), &mut out);
        }
        rest = &rest[stmt_end.min(rest.len() - 1) + 1..];
        if rest.is_empty() {
            break;
        }
    }
    // Inline paths.
    let bytes = code.as_bytes();
    for root in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(root) {
            let at = from + i;
            from = at + root.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let end = code[at..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| at + e);
            if code[end..].starts_with('{') {
                continue; // a `use` group, expanded above
            }
            let segs: Vec<String> = code[at..end]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            out.push(segs);
        }
    }
    out
}

/// Expands one `use` tree (`a::{b, c::d}`) into paths.
fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let n = prefix.len();
        prefix.extend(head);
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..i], prefix, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], prefix, out);
        prefix.truncate(n);
    } else {
        let tree = tree.split(" as ").next().unwrap_or("");
        let mut p = prefix.clone();
        p.extend(
            tree.split("::")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
        if !p.is_empty() {
            out.push(p);
        }
    }
}

/// The module file a path from module `at` reaches.
fn resolve(at: &[String], path: &[String], modules: &Modules) -> Option<Vec<String>> {
    let (mut module, rest): (Vec<String>, &[String]) = match path.first()?.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (at.to_vec(), &path[1..]),
        "super" => {
            let mut m = at.to_vec();
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                m.pop()?;
                rest = &rest[1..];
            }
            (m, rest)
        }
        _ => return None,
    };
    for seg in rest {
        let mut next = module.clone();
        next.push(seg.clone());
        if !modules.contains_key(&next) {
            break;
        }
        module = next;
    }
    Some(module)
}

fn graph() -> (Modules, BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) {
    let mut modules = Modules::new();
    collect(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
        &[],
        &mut modules,
    );
    let mut edges = BTreeMap::new();
    for (m, file) in &modules {
        let code = code(&fs::read_to_string(file).unwrap());
        let deps: BTreeSet<Vec<String>> = paths(&code)
            .iter()
            .filter_map(|p| resolve(m, p, &modules))
            .filter(|d| d != m)
            .collect();
        edges.insert(m.clone(), deps);
    }
    (modules, edges)
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    struct T<'a> {
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on: BTreeSet<&'a Vec<String>>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a Vec<String>) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        for w in t.edges.get(v).into_iter().flatten() {
            let Some((w, _)) = t.edges.get_key_value(w) else {
                continue;
            };
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                scc.push(name(w));
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.out.push(scc);
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn no_import_cycles_between_source_files() {
    let (modules, edges) = graph();
    assert!(
        modules.len() > 20,
        "the walk found the sources: {modules:?}"
    );
    for (m, deps) in &edges {
        let deps: Vec<String> = deps.iter().map(|d| name(d)).collect();
        println!("{} -> {}", name(m), deps.join(", "));
    }
    let found = cycles(&edges);
    assert!(found.is_empty(), "import cycles: {found:#?}");
}

#[test]
fn the_checker_finds_a_cycle_through_a_use_group_and_a_parent() {
    let modules: Modules = [
        vec![],
        vec!["a".to_string()],
        vec!["a".to_string(), "b".to_string()],
    ]
    .into_iter()
    .map(|m| (m, PathBuf::new()))
    .collect();
    let at = vec!["a".to_string(), "b".to_string()];
    let found: BTreeSet<_> = paths("use super::{Thing, other::X};\nfn f() { crate::a::b::g(); }")
        .iter()
        .filter_map(|p| resolve(&at, p, &modules))
        .collect();
    assert_eq!(found, BTreeSet::from([vec!["a".to_string()], at.clone()]));
    let mut edges = BTreeMap::new();
    edges.insert(at.clone(), BTreeSet::from([vec!["a".to_string()]]));
    edges.insert(vec!["a".to_string()], BTreeSet::from([at]));
    assert_eq!(cycles(&edges), [vec!["a".to_string(), "a::b".to_string()]]);
}

#[test]
fn no_source_file_hides_its_jobs_in_its_length() {
    let (modules, _) = graph();
    let mut over = Vec::new();
    for (m, file) in &modules {
        let text = fs::read_to_string(file).unwrap();
        let lines = text
            .lines()
            .take_while(|l| !l.trim_start().starts_with("#[cfg(test)]"))
            .count();
        let limit = if m.first().is_some_and(|s| s == "feed") {
            600
        } else {
            800
        };
        if lines > limit {
            over.push(format!("{} ({lines} > {limit})", file.display()));
        }
    }
    assert!(over.is_empty(), "too long: {over:?}");
}
