//! The source tree's house rules, checked on the files themselves: no source file over 400 lines,
//! and the module graph that `src/lib.rs` documents is the one the code has, without a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 400;
const SOURCE_EXTENSIONS: &[&str] = &["rs", "js", "mjs", "css", "html", "sh", "toml"];
const SKIPPED_DIRS: &[&str] = &["target", "node_modules", ".git", "data"];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if path.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_str()) {
                walk(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

fn files_under(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut all = Vec::new();
    walk(dir, &mut all);
    all.retain(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| extensions.contains(&e)));
    all.sort();
    all
}

#[test]
fn no_source_file_is_over_400_lines() {
    let files = files_under(&root(), SOURCE_EXTENSIONS);
    assert!(files.iter().any(|p| p.ends_with("src/lib.rs")), "the walk found no sources");
    let long: Vec<String> = files
        .iter()
        .filter_map(|p| {
            let lines = std::fs::read_to_string(p).ok()?.lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines})", p.strip_prefix(root()).unwrap_or(p).display()))
        })
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}

/// The top-level module a source file belongs to (`src/store/likes/tx.rs` → `store`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let first = file.strip_prefix(src).ok()?.components().next()?.as_os_str().to_str()?.to_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
    (name != "lib" && name != "main").then_some(name)
}

/// The code of a file without comments and without its test module: tests may reach anywhere.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The first segment of every path that starts with `crate::`, including each path of a
/// `crate::{a::x, b}` group.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            found.insert(ident_at(rest).to_owned());
            continue;
        };
        let (mut depth, mut start) = (1usize, true);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 1 => break,
                '}' => depth -= 1,
                ',' if depth == 1 => start = true,
                c if start && !c.is_whitespace() => {
                    start = false;
                    found.insert(ident_at(&group[i..]).to_owned());
                }
                _ => {}
            }
        }
    }
    found
}

fn code_graph() -> Graph {
    let src = root().join("src");
    let mut graph = Graph::new();
    for file in files_under(&src, &["rs"]) {
        let Some(module) = module_of(&src, &file) else { continue };
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let uses = if name == "tests.rs" || name.ends_with("_tests.rs") {
            BTreeSet::new()
        } else {
            crate_paths(&code_of(&std::fs::read_to_string(&file).expect("read source")))
        };
        graph.entry(module).or_default().extend(uses);
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for (module, uses) in graph.iter_mut() {
        uses.retain(|u| u != module && modules.contains(u));
    }
    graph
}

fn backticked(s: &str) -> Vec<String> {
    s.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The graph of `lib.rs`'s Layout section: one bullet per module, `- `m`: what it owns → `a`, `b``,
/// continued on indented lines; a bullet naming several modules before its colon lists leaves.
fn documented_graph() -> Graph {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).expect("read lib.rs");
    let mut bullets: Vec<String> = Vec::new();
    for line in lib.lines().filter_map(|l| l.strip_prefix("//!")) {
        if let Some(bullet) = line.strip_prefix(" - ") {
            bullets.push(bullet.to_owned());
        } else if let (Some(last), Some(more)) = (bullets.last_mut(), line.strip_prefix("   ")) {
            last.push(' ');
            last.push_str(more);
        }
    }
    let mut graph = Graph::new();
    for bullet in bullets {
        let (head, tail) = bullet.split_once(':').unwrap_or((&bullet, ""));
        let targets: BTreeSet<String> =
            tail.split_once('→').map(|(_, arrows)| backticked(arrows).into_iter().collect()).unwrap_or_default();
        for module in backticked(head) {
            graph.insert(module, targets.clone());
        }
    }
    graph
}

fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(graph: &Graph, at: &str, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|m| m == at) {
            return Some(path[i..].to_vec());
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.to_owned());
        for next in graph.get(at).into_iter().flatten() {
            if let Some(cycle) = visit(graph, next, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(at.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|m| visit(graph, m, &mut Vec::new(), &mut done))
}

#[test]
fn the_module_graph_has_no_cycle_and_is_the_one_lib_rs_documents() {
    let code = code_graph();
    assert!(code.len() > 10 && code.values().any(|uses| !uses.is_empty()), "no modules found: {code:?}");
    assert_eq!(find_cycle(&code), None, "an import cycle between modules");
    let documented = documented_graph();
    let diff: Vec<String> = code
        .keys()
        .chain(documented.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|m| code.get(*m) != documented.get(*m))
        .map(|m| format!("{m}: code → {:?}, lib.rs → {:?}", code.get(m), documented.get(m)))
        .collect();
    assert!(diff.is_empty(), "src/lib.rs's Layout differs from the code:\n{}", diff.join("\n"));
}

#[test]
fn the_graph_readers_see_groups_nested_paths_and_cycles() {
    let code = "use crate::{a::{x, y}, b, c::z};\nfn f() { crate::d::g(); }";
    let expected: BTreeSet<String> = ["a", "b", "c", "d"].map(String::from).into();
    assert_eq!(crate_paths(code), expected);
    assert_eq!(code_of("use crate::a;\n// crate::b\n#[cfg(test)]\nmod tests { use crate::c; }"), "use crate::a;");
    let graph: Graph = [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec![])]
        .into_iter()
        .map(|(m, to)| (m.to_owned(), to.into_iter().map(String::from).collect()))
        .collect();
    assert_eq!(find_cycle(&graph).map(|c| c.len()), Some(3));
}
