//! The engine's layering, checked on its source (a tidy test, as rust-analyzer keeps its
//! architecture): every module of `engine/src` lives in a layer folder, imports only from its
//! own layer and the layers below it, and no modules import each other in a circle, within a
//! layer or across. ARCHITECTURE.md, *Layers*, says why the layers are what they are.
//!
//! A module's dependencies are every `crate::` path in its code: its `use` statements
//! (grouped ones expanded) and the paths written out in place, a root re-export
//! (`crate::JetError`, `crate::page`) counting as the module it re-exports. Comments, strings
//! and `#[cfg(test)]` items are left out: a unit test may build its subject with what lies
//! above it (the log's tests run an instance), and is no part of the engine's data flow.

#![allow(
    clippy::disallowed_methods,
    reason = "the test reads the engine's source files, which the Vfs does not reach"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, bottom to top: a module may import from its own layer and those before it.
const LAYERS: &[&str] = &["base", "store", "wal", "txn", "backups"];

/// A module: its layer and its name (`store`, `pager`).
type Module = (String, String);

/// One `crate::` path a module's code names, and where.
#[derive(Clone, Debug)]
struct Import {
    /// The file, from the repository's root.
    file: String,
    line: usize,
    /// The path as written, expanded from its `use` group.
    path: String,
}

#[test]
fn layers_import_only_downward_and_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (modules, imports) = read_engine(&src);
    // A parser that stopped seeing imports would pass everything; these must be found.
    for layer in LAYERS {
        assert!(
            modules.iter().any(|(l, _)| l == layer),
            "layer {layer} has no module"
        );
    }
    let roots = root_names(&fs::read_to_string(src.join("lib.rs")).unwrap());
    let edges = edges(&modules, &roots, &imports);
    for (from, to) in [
        (("txn", "instance"), ("wal", "log")),
        (("store", "pager"), ("store", "doublewrite")),
        (("backups", "backup"), ("txn", "instance")),
        (("store", "btree"), ("base", "error")),
    ] {
        let (from, to) = (module(from), module(to));
        assert!(
            edges.get(&from).is_some_and(|deps| deps.contains_key(&to)),
            "the test no longer sees {} import {}: fix its parser",
            name(&from),
            name(&to)
        );
    }
    let problems = [upward(&edges), cycles(&edges)].concat();
    assert!(
        problems.is_empty(),
        "the engine's layering is broken (layers bottom to top: {}; see ARCHITECTURE.md, \
         Layers):\n\n{}",
        LAYERS.join(" → "),
        problems.join("\n")
    );
}

/// The extractor reads every form of import the engine writes, and nothing in comments,
/// strings or tests.
#[test]
fn the_extractor_reads_every_import_form() {
    let source = r##"
//! A doc comment naming crate::txn::instance.
use std::fmt;
use crate::base::error::{Result, bail};
use crate::{
    store::{self, header::{DbHeader, Lgpos}},
    wal::log,
};
pub(crate) use crate::base::vfs::Vfs;
/* a block comment: crate::backups::backup /* nested */ crate::backups::restore */
fn f<'a>(x: &'a str) -> char {
    let s = "crate::txn::session";
    let r = r#"crate::txn::event "quoted""#;
    let b = br"crate::txn::writeset \";
    let c = '"';
    let _ = crate::JetError::new(crate::ErrorKind::DiskIO, "{");
    $crate::base::codec::is_zero(&[]);
    'x'
}
#[cfg(test)]
mod tests {
    use crate::txn::instance::Core;
    fn g() { let _ = "}"; crate::backups::manifest::read(); }
}
#[cfg(test)]
use crate::txn::version;
fn after_tests() -> crate::store::page::Pgno { 0 }
"##;
    let paths: Vec<String> = imports_in(source)
        .into_iter()
        .map(|(_, path)| path)
        .collect();
    assert_eq!(
        paths,
        [
            "crate::base::error::Result",
            "crate::base::error::bail",
            "crate::store",
            "crate::store::header::DbHeader",
            "crate::store::header::Lgpos",
            "crate::wal::log",
            "crate::base::vfs::Vfs",
            "crate::JetError::new",
            "crate::ErrorKind::DiskIO",
            "crate::base::codec::is_zero",
            "crate::store::page::Pgno",
        ]
    );
    // Line numbers survive the stripping.
    assert_eq!(imports_in(source)[0].0, 4);
    assert_eq!(imports_in(source).last().unwrap().0, 27);
}

/// The checks fire, naming the import: one going up a layer, and two modules in a circle.
#[test]
fn the_checks_name_the_offending_import() {
    let import = |file: &str, line, path: &str| Import {
        file: file.to_string(),
        line,
        path: path.to_string(),
    };
    let mut edges: BTreeMap<Module, BTreeMap<Module, Import>> = BTreeMap::new();
    let mut add = |from, to, import| {
        edges
            .entry(module(from))
            .or_default()
            .insert(module(to), import);
    };
    add(
        ("store", "pager"),
        ("txn", "instance"),
        import("pager.rs", 7, "crate::txn::instance::Core"),
    );
    add(
        ("store", "header"),
        ("store", "catalog"),
        import("header.rs", 3, "crate::store::catalog::CATALOG_ROOT"),
    );
    add(
        ("store", "catalog"),
        ("store", "header"),
        import("catalog.rs", 9, "crate::store::header::DbHeader"),
    );
    let upward = upward(&edges);
    assert_eq!(
        upward,
        ["- pager.rs:7: `crate::txn::instance::Core`: store imports from txn, a layer above it"]
    );
    let cycles = cycles(&edges);
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(
        cycles[0].contains("store::catalog → store::header (catalog.rs:9:")
            && cycles[0].contains("store::header → store::catalog (header.rs:3:"),
        "{}",
        cycles[0]
    );
}

/// Every module of the engine (by layer folder) and the `crate::` paths each file names.
fn read_engine(src: &Path) -> (BTreeSet<Module>, BTreeMap<Module, Vec<Import>>) {
    let mut modules = BTreeSet::new();
    let mut imports: BTreeMap<Module, Vec<Import>> = BTreeMap::new();
    for entry in sorted_dir(src) {
        let name = file_name(&entry);
        if entry.is_dir() {
            if name == "bin" {
                continue; // jetutil: a crate of its own, using jetdb's public API
            }
            assert!(
                LAYERS.contains(&name.as_str()),
                "engine/src/{name}/ is no layer: add it to LAYERS in engine/tests/layers.rs, in \
                 its place bottom to top, and to ARCHITECTURE.md"
            );
            let declared = fs::read_to_string(src.join(format!("{name}.rs")))
                .unwrap_or_else(|e| panic!("engine/src/{name}.rs, the layer's module: {e}"));
            for file in rust_files(&entry) {
                let relative = file.strip_prefix(&entry).unwrap();
                let module_name = file_name(relative.components().next().unwrap().as_ref())
                    .trim_end_matches(".rs")
                    .to_string();
                assert!(
                    strip(&declared).contains(&format!("mod {module_name};")),
                    "engine/src/{name}.rs does not declare `mod {module_name};`"
                );
                let module = (name.clone(), module_name);
                modules.insert(module.clone());
                let source = fs::read_to_string(&file).unwrap();
                let shown = format!("engine/src/{name}/{}", relative.display());
                imports
                    .entry(module)
                    .or_default()
                    .extend(imports_in(&source).into_iter().map(|(line, path)| Import {
                        file: shown.clone(),
                        line,
                        path,
                    }));
            }
        } else if name.ends_with(".rs") && name != "lib.rs" {
            let stem = name.trim_end_matches(".rs");
            assert!(
                LAYERS.contains(&stem),
                "engine/src/{name} is in no layer: move it into the layer folder its imports \
                 allow (see ARCHITECTURE.md, Layers)"
            );
            let code = strip(&fs::read_to_string(&entry).unwrap());
            assert!(
                !code.contains("crate::"),
                "engine/src/{name} only declares its layer's modules; it imports nothing"
            );
        }
    }
    (modules, imports)
}

/// Each module's dependencies on other modules, with the first import that makes each.
fn edges(
    modules: &BTreeSet<Module>,
    roots: &BTreeMap<String, Module>,
    imports: &BTreeMap<Module, Vec<Import>>,
) -> BTreeMap<Module, BTreeMap<Module, Import>> {
    let mut edges: BTreeMap<Module, BTreeMap<Module, Import>> = BTreeMap::new();
    for (from, list) in imports {
        let deps = edges.entry(from.clone()).or_default();
        for import in list {
            let to = resolve(&import.path, modules, roots).unwrap_or_else(|| {
                panic!(
                    "{}:{}: `{}` names no module of a layer (nor a root re-export of one)",
                    import.file, import.line, import.path
                )
            });
            let Some(to) = to else { continue };
            if &to != from {
                deps.entry(to).or_insert_with(|| import.clone());
            }
        }
    }
    edges
}

/// The module a `crate::` path leads into: `Some(None)` for a path naming a layer alone
/// (`use crate::store::{self, ...}` brings in nothing by itself), `None` if it leads nowhere
/// known.
fn resolve(
    path: &str,
    modules: &BTreeSet<Module>,
    roots: &BTreeMap<String, Module>,
) -> Option<Option<Module>> {
    let path = path.split(" as ").next().unwrap();
    let parts: Vec<&str> = path.split("::").skip(1).collect();
    match parts.as_slice() {
        [layer] if LAYERS.contains(layer) => Some(None),
        [layer, name, ..] if LAYERS.contains(layer) => {
            let module = (layer.to_string(), name.to_string());
            modules.contains(&module).then_some(Some(module))
        }
        [name, ..] => roots.get(*name).cloned().map(Some),
        [] => None,
    }
}

/// What lib.rs re-exports at the root, by the module it comes from: `JetError` and `error`
/// from `(base, error)`.
fn root_names(lib: &str) -> BTreeMap<String, Module> {
    let mut names = BTreeMap::new();
    for (_, path) in uses(&strip(lib)) {
        let parts: Vec<&str> = path.split("::").collect();
        if parts.len() >= 2 && LAYERS.contains(&parts[0]) {
            let module = (parts[0].to_string(), parts[1].to_string());
            let last = parts.last().unwrap();
            let alias = last.rsplit(" as ").next().unwrap().to_string();
            names.insert(alias, module);
        }
    }
    names
}

/// Imports that go up a layer.
fn upward(edges: &BTreeMap<Module, BTreeMap<Module, Import>>) -> Vec<String> {
    let rank = |m: &Module| LAYERS.iter().position(|l| *l == m.0).unwrap();
    let mut problems = Vec::new();
    for (from, deps) in edges {
        for (to, import) in deps {
            if rank(to) > rank(from) {
                problems.push(format!(
                    "- {}:{}: `{}`: {} imports from {}, a layer above it",
                    import.file, import.line, import.path, from.0, to.0
                ));
            }
        }
    }
    problems
}

/// Circles of imports between modules, each named with the imports that close it.
fn cycles(edges: &BTreeMap<Module, BTreeMap<Module, Import>>) -> Vec<String> {
    let mut problems = Vec::new();
    for component in strongly_connected(edges) {
        if component.len() < 2 {
            continue;
        }
        // One circle through the component: from its first module, follow edges that stay
        // inside it until a module comes round again.
        let inside = |m: &Module| component.contains(m);
        let mut path = vec![component[0].clone()];
        let circle = loop {
            let here = path.last().unwrap();
            let (next, _) = edges[here]
                .iter()
                .find(|(to, _)| inside(to) && (!path.contains(to) || *to == &path[0]))
                .or_else(|| edges[here].iter().find(|(to, _)| inside(to)))
                .unwrap();
            if let Some(start) = path.iter().position(|m| m == next) {
                break path[start..].to_vec();
            }
            path.push(next.clone());
        };
        let mut text = format!(
            "- modules import each other in a circle ({}):",
            component.iter().map(name).collect::<Vec<_>>().join(", ")
        );
        for (i, from) in circle.iter().enumerate() {
            let to = &circle[(i + 1) % circle.len()];
            let import = &edges[from][to];
            write!(
                text,
                "\n    {} → {} ({}:{}: `{}`)",
                name(from),
                name(to),
                import.file,
                import.line,
                import.path
            )
            .unwrap();
        }
        problems.push(text);
    }
    problems
}

/// Tarjan's strongly connected components.
fn strongly_connected(edges: &BTreeMap<Module, BTreeMap<Module, Import>>) -> Vec<Vec<Module>> {
    struct State<'e> {
        edges: &'e BTreeMap<Module, BTreeMap<Module, Import>>,
        index: BTreeMap<Module, usize>,
        low: BTreeMap<Module, usize>,
        stack: Vec<Module>,
        components: Vec<Vec<Module>>,
    }
    fn visit(state: &mut State<'_>, v: &Module) {
        let i = state.index.len();
        state.index.insert(v.clone(), i);
        state.low.insert(v.clone(), i);
        state.stack.push(v.clone());
        let edges = state.edges;
        for w in edges.get(v).into_iter().flat_map(|deps| deps.keys()) {
            if !state.index.contains_key(w) {
                visit(state, w);
                let low = state.low[v].min(state.low[w]);
                state.low.insert(v.clone(), low);
            } else if state.stack.contains(w) {
                let low = state.low[v].min(state.index[w]);
                state.low.insert(v.clone(), low);
            }
        }
        if state.low[v] == state.index[v] {
            let mut component = Vec::new();
            loop {
                let w = state.stack.pop().unwrap();
                let done = &w == v;
                component.push(w);
                if done {
                    break;
                }
            }
            component.sort();
            state.components.push(component);
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        components: Vec::new(),
    };
    for v in edges.keys() {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    state.components
}

/// The `crate::` paths a file's code names, with their lines, `use` statements expanded.
fn imports_in(source: &str) -> Vec<(usize, String)> {
    let code = without_tests(&strip(source));
    let mut found: Vec<(usize, String)> = uses(&code)
        .into_iter()
        .filter(|(_, path)| path.starts_with("crate::"))
        .collect();
    // Paths written out in place, outside `use` statements.
    let rest = blank_uses(&code);
    let bytes = rest.as_bytes();
    let mut at = 0;
    while let Some(offset) = rest[at..].find("crate::") {
        let start = at + offset;
        at = start + "crate::".len();
        if start > 0 && is_ident(bytes[start - 1] as char) {
            continue; // `my_crate::`, not `crate::`
        }
        let mut end = at;
        loop {
            let ident = rest[end..]
                .find(|c: char| !is_ident(c))
                .unwrap_or(rest.len() - end);
            end += ident;
            if ident > 0 && rest[end..].starts_with("::") {
                end += 2;
            } else {
                break;
            }
        }
        let path = rest[start..end].trim_end_matches("::").to_string();
        found.push((line_of(&rest, start), path));
    }
    found.sort_by_key(|(line, _)| *line);
    found
}

/// Every `use` statement's paths, expanded (`a::{b, c::d}` → `a::b`, `a::c::d`), with the
/// statement's line; `self` names the path it stands in.
fn uses(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (start, end) in use_spans(code) {
        let tree: String = code[start + "use".len()..end]
            .chars()
            .map(|c| if c.is_whitespace() { ' ' } else { c })
            .collect();
        let line = line_of(code, start);
        for path in expand(tree.trim()) {
            found.push((line, path));
        }
    }
    found
}

/// Where each `use` statement lies: from its keyword to its `;`.
fn use_spans(code: &str) -> Vec<(usize, usize)> {
    let bytes = code.as_bytes();
    let mut spans = Vec::new();
    let mut at = 0;
    while let Some(offset) = code[at..].find("use") {
        let start = at + offset;
        at = start + 3;
        let before = start.checked_sub(1).map(|i| bytes[i] as char);
        let after = bytes.get(start + 3).map(|b| *b as char);
        if before.is_some_and(is_ident) || !after.is_some_and(char::is_whitespace) {
            continue;
        }
        let end = start
            + code[start..]
                .find(';')
                .expect("a use statement ends with `;`");
        spans.push((start, end));
        at = end;
    }
    spans
}

/// The code with its `use` statements blanked out (lines kept).
fn blank_uses(code: &str) -> String {
    let mut out = code.to_string();
    for (start, end) in use_spans(code) {
        out.replace_range(start..end, &blank(&code[start..end]));
    }
    out
}

/// A use tree's paths: `a::{b, c::{d, self}}` → `a::b`, `a::c::d`, `a::c`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        // A leaf: `a::b`, `a::b as c`, `a::self`.
        let words: Vec<&str> = tree.split_whitespace().collect();
        let leaf = match words.as_slice() {
            [path, "as", alias] => format!("{path} as {alias}"),
            _ => words.concat(),
        };
        return vec![
            leaf.strip_suffix("::self")
                .map(str::to_string)
                .unwrap_or(leaf),
        ];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').expect("a use group closes")];
    let mut parts = Vec::new();
    let (mut depth, mut from) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[from..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .flat_map(|part| {
            expand(part).into_iter().map(move |p| match p.as_str() {
                "self" => prefix.trim_end_matches("::").to_string(),
                _ => format!("{prefix}{p}"),
            })
        })
        .collect()
}

/// The code with every `#[cfg(test)]` item blanked out (lines kept).
fn without_tests(code: &str) -> String {
    let mut out = code.to_string();
    let mut at = 0;
    while let Some(offset) = out[at..].find("#[cfg(test)]") {
        let start = at + offset;
        let item = start + "#[cfg(test)]".len();
        let rest = out[item..].trim_start();
        let end = if rest.starts_with("use ") || rest.starts_with("pub(crate) use ") {
            item + out[item..].find(';').unwrap() + 1
        } else {
            // To the item's `;` or `,` (a field), to the brace closing its first block, or to
            // the end of the block around it.
            let mut depth = 0;
            let mut end = None;
            for (i, c) in out[item..].char_indices() {
                match c {
                    ';' | ',' if depth == 0 => end = Some(item + i + 1),
                    '{' => depth += 1,
                    '}' if depth == 0 => end = Some(item + i),
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(item + i + 1);
                        }
                    }
                    _ => {}
                }
                if end.is_some() {
                    break;
                }
            }
            end.expect("a #[cfg(test)] item ends")
        };
        let blanked = blank(&out[start..end]);
        out.replace_range(start..end, &blanked);
        at = end;
    }
    out
}

/// The source with comments, string and character literals blanked out, newlines kept, so that
/// what is left is code and its lines are the file's.
fn strip(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    // Blanks chars[from..to] into `out`.
    let blank_into = |out: &mut String, from: usize, to: usize| {
        for c in &chars[from..to] {
            out.push(if *c == '\n' { '\n' } else { ' ' });
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            let end = (i..chars.len())
                .find(|&j| chars[j] == '\n')
                .unwrap_or(chars.len());
            blank_into(&mut out, i, end);
            i = end;
        } else if c == '/' && next == Some('*') {
            let (mut depth, mut j) = (0, i);
            while j < chars.len() {
                if chars[j] == '/' && chars.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if chars[j] == '*' && chars.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank_into(&mut out, i, j);
            i = j;
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !is_ident(chars[i - 1]) || raw_byte_string(&chars, i))
        {
            // A raw string: r"…" or r#"…"# (or br"…"), with as many #s to close as to open.
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let body = i + 2 + hashes;
            let text: String = chars[body..].iter().collect();
            let end = body
                + text[..text.find(&close).expect("a raw string closes")]
                    .chars()
                    .count()
                + close.len();
            blank_into(&mut out, i, end);
            i = end;
        } else if c == '"' {
            let mut j = i + 1;
            while chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            blank_into(&mut out, i, j + 1);
            i = j + 1;
        } else if c == '\'' && next == Some('\\') {
            // An escaped character literal: '\n', '\'', '\u{…}'.
            let end = i + 2 + chars[i + 2..].iter().position(|c| *c == '\'').unwrap() + 1;
            blank_into(&mut out, i, end);
            i = end;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            blank_into(&mut out, i, i + 3);
            i += 3;
        } else {
            out.push(c); // code, or a lifetime's quote
            i += 1;
        }
    }
    out
}

/// Whether the `r` at `i` opens a raw byte string (`br"…"`).
fn raw_byte_string(chars: &[char], i: usize) -> bool {
    chars[i - 1] == 'b' && (i < 2 || !is_ident(chars[i - 2]))
}

fn blank(text: &str) -> String {
    text.chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect()
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte].matches('\n').count() + 1
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn module((layer, name): (&str, &str)) -> Module {
    (layer.to_string(), name.to_string())
}

fn name(module: &Module) -> String {
    format!("{}::{}", module.0, module.1)
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn sorted_dir(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    entries
}

/// Every `.rs` file under `dir`, submodules' folders included.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in sorted_dir(dir) {
        if entry.is_dir() {
            files.extend(rust_files(&entry));
        } else if entry.extension().is_some_and(|e| e == "rs") {
            files.push(entry);
        }
    }
    files
}
