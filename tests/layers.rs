//! The house plan of `src/`, checked: the layers import only downwards, the pure layers use no
//! client, runtime or clock, and no two files import each other, directly or round a cycle.
//! The rules and their reasons are in docs/design-decisions.md ("One house plan"). The check
//! reads the source as text: `use` trees are expanded and every `crate::`, `super::` and
//! `self::` path is resolved to the file that defines the module it names. Test-only files
//! (declared under `#[cfg(test)]`) and inline `#[cfg(test)]` modules are left out.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules, lowest layer first. A module may import only modules before it.
const LAYERS: &[&str] = &[
    "api",
    "calendar",
    "plan",
    "notes",
    "error",
    "readiness",
    "telemetry",
    "k8s",
    "leader",
    "metrics",
    "notify",
    "controller",
    "http",
    "plugin",
    "settings",
];

/// The pure layers: they decide from what they are given and never reach out.
const PURE: &[&str] = &["api", "calendar", "plan", "notes"];

/// What a pure layer may not name: a client, an API handle, the watch runtime, the async
/// runtime, the clock, the environment or the file system.
const IMPURE: &[&str] = &[
    "kube::Client",
    "kube::Api",
    "kube::api::Api",
    "kube::runtime",
    "kube_runtime",
    "tokio",
    "Utc::now",
    "Local::now",
    "SystemTime::now",
    "Instant::now",
    "std::env",
    "std::fs",
    "reqwest",
    "hyper",
];

/// A module path (`["plan", "lifecycle"]`) and the file that defines it.
struct Module {
    path: Vec<String>,
    file: PathBuf,
    code: String,
}

#[test]
fn every_top_level_module_has_a_layer() {
    let modules = modules();
    let top: BTreeSet<&str> = modules
        .iter()
        .filter_map(|m| m.path.first().map(String::as_str))
        .collect();
    let unplaced: Vec<&&str> = top.iter().filter(|m| !LAYERS.contains(m)).collect();
    assert!(
        unplaced.is_empty(),
        "top-level modules without a layer: {unplaced:?}; add them to LAYERS in tests/layers.rs, \
         to docs/design-decisions.md and to the README's layout"
    );
    let stale: Vec<&&str> = LAYERS.iter().filter(|m| !top.contains(*m)).collect();
    assert!(
        stale.is_empty(),
        "LAYERS names modules that do not exist: {stale:?}"
    );
}

#[test]
fn the_readme_layout_lists_every_top_level_module() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let layout = readme
        .split("## Layout")
        .nth(1)
        .expect("the README has a Layout section");
    let missing: Vec<&&str> = LAYERS
        .iter()
        .filter(|m| {
            !layout.contains(&format!("src/{m}/")) && !layout.contains(&format!("src/{m}.rs"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the README's layout does not list {missing:?}"
    );
}

#[test]
fn imports_run_only_down_the_layers() {
    let modules = modules();
    let mut wrong = Vec::new();
    for (from, to) in edges(&modules) {
        let (a, b) = (&modules[from].path[0], &modules[to].path[0]);
        if a == b {
            continue;
        }
        let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
        if rank(a) <= rank(b) {
            wrong.push(format!(
                "{} imports {}",
                modules[from].file.display(),
                modules[to].file.display()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that run up the layers ({}):\n{}",
        LAYERS.join(" < "),
        wrong.join("\n")
    );
}

#[test]
fn the_pure_layers_use_no_client_runtime_or_clock() {
    let mut wrong = Vec::new();
    for module in modules() {
        if !PURE.contains(&module.path[0].as_str()) {
            continue;
        }
        // Grouped imports (`use kube::{Api, Client}`) are expanded first.
        let uses = use_paths(&module.code).join("\n");
        for word in IMPURE {
            if contains_path(&module.code, word) || contains_path(&uses, word) {
                wrong.push(format!("{} names {word}", module.file.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the pure layers ({}) must not reach out:\n{}",
        PURE.join(", "),
        wrong.join("\n")
    );
}

#[test]
fn no_files_import_each_other() {
    let modules = modules();
    let mut graph: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for (from, to) in edges(&modules) {
        graph.entry(from).or_default().insert(to);
    }
    let cycles = cycles(&graph, modules.len());
    let described: Vec<String> = cycles
        .iter()
        .map(|cycle| {
            let imports: Vec<String> = cycle
                .iter()
                .flat_map(|&from| {
                    graph[&from]
                        .iter()
                        .filter(|to| cycle.contains(to))
                        .map(move |&to| (from, to))
                })
                .map(|(from, to)| {
                    format!(
                        "  {} imports {}",
                        modules[from].file.display(),
                        modules[to].file.display()
                    )
                })
                .collect();
            imports.join("\n")
        })
        .collect();
    assert!(
        described.is_empty(),
        "files that import each other, directly or round a cycle (move what they share into a \
         file they all import, and import items from the file that defines them, not from a \
         parent's re-export):\n{}",
        described.join("\n\n")
    );
}

#[test]
fn the_checker_reads_the_real_tree() {
    // On the real sources: a known import is seen, test-only files are left out, and grouped
    // imports are expanded. Without these the rules above could pass by seeing nothing.
    let modules = modules();
    let index = |path: &[&str]| {
        modules
            .iter()
            .position(|m| m.path == path)
            .unwrap_or_else(|| panic!("no module {path:?}"))
    };
    let found = edges(&modules);
    let consent = index(&["plan", "lifecycle", "consent"]);
    let pod_security = index(&["plan", "pod_security"]);
    assert!(
        found.contains(&(consent, pod_security)),
        "consent.rs imports pod_security.rs"
    );
    assert!(
        !modules
            .iter()
            .any(|m| m.path == ["api", "tests"] || m.path == ["plan", "sim"]),
        "test-only files are not checked as production code"
    );
    assert!(
        use_paths("use kube::{Api, api::{Patch, PatchParams}};")
            .contains(&"kube::api::PatchParams".to_owned())
    );
    assert!(
        strip("let q = '\\''; let s = \"crate::x\";")
            .trim()
            .ends_with("\"\";")
    );
}

#[test]
fn the_checker_sees_a_back_import_and_a_cycle() {
    // The rules above pass only if the parser finds imports at all: a file importing its
    // parent's re-export while the parent imports it is a cycle, and an upward import is seen.
    let modules = vec![
        module(&["plan"], "pub use lifecycle::plan;"),
        module(
            &["plan", "lifecycle"],
            "use super::Observed; use crate::controller::{Context, run};",
        ),
        module(&["controller"], "pub fn run() {}"),
    ];
    let found = edges(&modules);
    assert!(found.contains(&(0, 1)) && found.contains(&(1, 0)) && found.contains(&(1, 2)));
    let mut graph: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for (from, to) in found {
        graph.entry(from).or_default().insert(to);
    }
    assert_eq!(cycles(&graph, 3).len(), 1);
    assert!(contains_path(
        "let c = kube::Client::try_default();",
        "kube::Client"
    ));
    assert!(!contains_path(
        "// kube::Client in a comment",
        "kube::Client"
    ));
    assert!(!contains_path(
        "\"kube::Client in a string\"",
        "kube::Client"
    ));
}

fn module(path: &[&str], code: &str) -> Module {
    Module {
        path: path.iter().map(|s| (*s).to_owned()).collect(),
        file: PathBuf::from(path.join("/")),
        code: strip(code),
    }
}

/// Every library module file under `src/` (not `src/bin`), without test-only code.
fn modules() -> Vec<Module> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&root, &mut files);
    let mut modules: Vec<Module> = files
        .into_iter()
        .filter(|f| !f.starts_with(root.join("bin")))
        .map(|file| {
            let relative = file.strip_prefix(&root).unwrap().with_extension("");
            let mut path: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(path.last().map(String::as_str), Some("mod" | "lib")) {
                path.pop();
            }
            let text = std::fs::read_to_string(&file).unwrap();
            Module {
                path,
                file: file
                    .strip_prefix(root.parent().unwrap())
                    .unwrap()
                    .to_owned(),
                code: strip(&without_test_modules(&text)),
            }
        })
        .collect();
    // Files declared `#[cfg(test)] mod x;` (and everything under them) are test code.
    let test_only: Vec<Vec<String>> = modules
        .iter()
        .flat_map(|m| {
            let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(&m.file))
                .unwrap();
            test_declarations(&text)
                .into_iter()
                .map(|name| {
                    let mut path = m.path.clone();
                    path.push(name);
                    path
                })
                .collect::<Vec<_>>()
        })
        .collect();
    modules.retain(|m| !m.path.is_empty() && !test_only.iter().any(|t| m.path.starts_with(t)));
    modules
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The names of the `#[cfg(test)] mod name;` declarations in `text`.
fn test_declarations(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut out = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        if !line.starts_with("#[cfg(test)]") {
            continue;
        }
        // Other attributes may stand between `#[cfg(test)]` and the declaration.
        let Some(declaration) = lines[at + 1..].iter().find(|l| !l.starts_with("#[")) else {
            continue;
        };
        let rest = declaration.strip_prefix("pub ").unwrap_or(declaration);
        if let Some(name) = rest.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
            out.push(name.trim().to_owned());
        }
    }
    out
}

/// Every path a `use` item names, with its groups expanded: `use kube::{Api, Client}` gives
/// `kube::Api` and `kube::Client`.
fn use_paths(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if matches_at(&chars, i, "use") && !ident_before(&chars, i) {
            let mut j = i + 3;
            while chars.get(j).is_some_and(|c| c.is_whitespace()) {
                j += 1;
            }
            let start = j;
            while chars
                .get(j)
                .is_some_and(|c| c.is_alphanumeric() || *c == '_')
            {
                j += 1;
            }
            if j > start {
                let root: String = chars[start..j].iter().collect();
                let (found, end) = tree(&chars, j, vec![root]);
                out.extend(found.into_iter().map(|p| p.join("::")));
                i = end.max(i + 1);
                continue;
            }
        }
        i += 1;
    }
    out
}

/// `text` without its inline `#[cfg(test)] mod name { ... }` blocks.
fn without_test_modules(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(open) = after.find(['{', ';']) else {
            return out;
        };
        if after.as_bytes()[open] == b';' {
            rest = &after[open + 1..];
            continue;
        }
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `code` without comments and string literals, which may mention paths without importing.
fn strip(code: &str) -> String {
    let bytes: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < bytes.len() && bytes[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < bytes.len() && !(bytes[i] == '*' && bytes[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&bytes, i) {
            // A raw string: r"...", r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while bytes.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if bytes.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= bytes.len() {
                    break;
                }
                if bytes[j] == '"' && (0..hashes).all(|k| bytes.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < bytes.len() && bytes[i] != '"' {
                if bytes[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && next.is_some() && bytes.get(i + 2) == Some(&'\'') {
            // A char literal such as '"'.
            i += 3;
        } else if c == '\'' && next == Some('\\') {
            // An escaped char literal such as '\'' or '\"': skip the quote, the backslash and
            // the escaped character, then up to the closing quote.
            i += 3;
            while i < bytes.len() && bytes[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], at: usize) -> bool {
    at > 0 && (chars[at - 1].is_alphanumeric() || chars[at - 1] == '_')
}

/// Whether `code` names `path` as a path (not as part of a longer identifier).
fn contains_path(code: &str, path: &str) -> bool {
    let code = strip(code);
    code.match_indices(path).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + path.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Every path the code names that starts with `crate`, `super`, `self` or one of the module's
/// own submodules (`children`, read as `self::child`), with `use` trees expanded:
/// `use super::{a::B, c}` gives `super::a::B` and `super::c`.
fn paths(code: &str, children: &[&str]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts = ["crate", "super", "self"].iter().chain(children).find(|w| {
            matches_at(&chars, i, w)
                && !ident_before(&chars, i)
                && !(i >= 2 && chars[i - 1] == ':' && chars[i - 2] == ':')
        });
        if let Some(word) = starts {
            let prefix = if ["crate", "super", "self"].contains(word) {
                vec![(*word).to_owned()]
            } else {
                vec!["self".to_owned(), (*word).to_owned()]
            };
            let (expanded, end) = tree(&chars, i + word.len(), prefix);
            if prefix_only(&expanded, word) {
                i += 1;
                continue;
            }
            out.extend(expanded);
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// Whether a child module's name stood alone (a local variable of that name, not a path).
fn prefix_only(found: &[Vec<String>], word: &str) -> bool {
    !["crate", "super", "self"].contains(&word) && found.iter().all(|p| p.len() <= 2)
}

fn matches_at(chars: &[char], at: usize, word: &str) -> bool {
    let w: Vec<char> = word.chars().collect();
    chars.len() >= at + w.len()
        && chars[at..at + w.len()] == w[..]
        && !chars
            .get(at + w.len())
            .is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// Reads `::segment`s and `{...}` groups after `prefix` starting at `at`.
fn tree(chars: &[char], mut at: usize, prefix: Vec<String>) -> (Vec<Vec<String>>, usize) {
    let mut path = prefix;
    loop {
        let skip_ws = |mut j: usize| {
            while chars.get(j).is_some_and(|c| c.is_whitespace()) {
                j += 1;
            }
            j
        };
        let j = skip_ws(at);
        if !(chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&':')) {
            return (vec![path], at);
        }
        let k = skip_ws(j + 2);
        if chars.get(k) == Some(&'{') {
            let mut all = Vec::new();
            let mut m = k + 1;
            loop {
                m = skip_ws(m);
                match chars.get(m) {
                    None => return (all, m),
                    Some('}') => return (all, m + 1),
                    Some(',') => m += 1,
                    _ => {
                        let start = m;
                        while chars
                            .get(m)
                            .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '*')
                        {
                            m += 1;
                        }
                        if m == start {
                            m += 1;
                            continue;
                        }
                        let word: String = chars[start..m].iter().collect();
                        let mut inner = path.clone();
                        if word != "self" {
                            inner.push(word);
                        }
                        let (found, end) = tree(chars, m, inner);
                        all.extend(found);
                        m = end;
                        // Skip `as alias`.
                        let n = skip_ws(m);
                        if matches_at(chars, n, "as") {
                            m = skip_ws(n + 2);
                            while chars
                                .get(m)
                                .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                            {
                                m += 1;
                            }
                        }
                    }
                }
            }
        }
        let start = k;
        let mut end = k;
        while chars
            .get(end)
            .is_some_and(|c| c.is_alphanumeric() || *c == '_')
        {
            end += 1;
        }
        if end == start {
            return (vec![path], at);
        }
        path.push(chars[start..end].iter().collect());
        at = end;
    }
}

/// The (from, to) pairs of module files, one per import of another module's file. A module's
/// own submodules and its enclosing modules count like any other file.
fn edges(modules: &[Module]) -> BTreeSet<(usize, usize)> {
    let index: BTreeMap<&[String], usize> = modules
        .iter()
        .enumerate()
        .map(|(i, m)| (m.path.as_slice(), i))
        .collect();
    let mut out = BTreeSet::new();
    for (from, module) in modules.iter().enumerate() {
        let children: Vec<&str> = modules
            .iter()
            .filter(|m| m.path.len() == module.path.len() + 1 && m.path.starts_with(&module.path))
            .map(|m| m.path[module.path.len()].as_str())
            .collect();
        for path in paths(&module.code, &children) {
            if path.len() < 2 {
                // `self.field`, `pub(super)`: a receiver or a visibility, not an import.
                continue;
            }
            let mut full: Vec<String> = Vec::new();
            let mut segments = path.into_iter().peekable();
            match segments.next().as_deref() {
                Some("crate") => {}
                Some("self") => full = module.path.clone(),
                Some("super") => {
                    full = module.path.clone();
                    full.pop();
                    while segments.peek().map(String::as_str) == Some("super") {
                        segments.next();
                        full.pop();
                    }
                }
                _ => continue,
            }
            full.extend(segments);
            let target = (1..=full.len())
                .rev()
                .find_map(|n| index.get(&full[..n]).copied());
            if let Some(to) = target
                && to != from
            {
                out.insert((from, to));
            }
        }
    }
    out
}

/// The cycles of `graph` (one per strongly connected component of more than one file).
fn cycles(graph: &BTreeMap<usize, BTreeSet<usize>>, n: usize) -> Vec<Vec<usize>> {
    // Tarjan's algorithm, iterative enough for a few hundred files.
    struct State<'a> {
        graph: &'a BTreeMap<usize, BTreeSet<usize>>,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        let targets: Vec<usize> = s.graph.get(&v).into_iter().flatten().copied().collect();
        for w in targets {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(i) if s.on_stack[w] => s.low[v] = s.low[v].min(i),
                _ => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort_unstable();
                s.out.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if state.index[v].is_none() {
            visit(&mut state, v);
        }
    }
    state.out
}
