//! Every TOML block in the README and `docs/` is checked, so the docs cannot
//! drift from what the gateway accepts. A ```` ```toml ```` block is compiled
//! as what it is: a whole mapping, dialect or gateway config as such, a
//! mapping fragment (a call, some attributes, `[groups.members]`…) inside a
//! minimal mapping that it completes or overrides. A ```` ```toml keys ````
//! block lists keys side by side that no one file would combine (every call
//! key at once, placeholders such as `"…"`): it must still parse and name
//! only keys, in their places, that the gateway knows.

use std::path::{Path, PathBuf};

use scimgate::diagnostics::{Report, SourceFile};
use toml::{Table, Value};

/// A valid mapping a fragment is dropped into.
const BASE_MAPPING: &str = r#"
[upstream]
name = "docs"
base_url = "http://127.0.0.1:9"

[users]
id = { field = "id" }
list = { method = "GET", path = "/users", paging = { style = "none" } }
get = { method = "GET", path = "/users/{id}" }
create = { method = "POST", path = "/users" }
update = { method = "PATCH", path = "/users/{id}", partial = true }
delete = { hard = { method = "DELETE", path = "/users/{id}" } }
attributes = [{ scim = "userName", field = "login" }]

[groups]
id = { field = "id" }
list = { method = "GET", path = "/groups", paging = { style = "none" } }
get = { method = "GET", path = "/groups/{id}" }
create = { method = "POST", path = "/groups" }
update = { method = "PATCH", path = "/groups/{id}", partial = true }
delete = { hard = { method = "DELETE", path = "/groups/{id}" } }
attributes = [{ scim = "displayName", field = "name" }]
"#;

const CONFIG_KEYS: &[&str] = &["server", "upstreams", "connections"];

struct Block {
    at: String,
    text: String,
    keys_only: bool,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The TOML blocks of a Markdown file, indented ones (in lists) too.
fn blocks(path: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.strip_prefix(root()).unwrap().display().to_string();
    let mut found = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let trimmed = line.trim_start();
        let Some(info) = trimmed.strip_prefix("```toml") else {
            continue;
        };
        let indent = line.len() - trimmed.len();
        let mut body = String::new();
        for (_, inner) in lines.by_ref() {
            if inner.trim_start().starts_with("```") {
                break;
            }
            body.push_str(inner.get(indent..).unwrap_or(inner.trim_start()));
            body.push('\n');
        }
        found.push(Block {
            at: format!("{name}:{}", number + 1),
            text: body,
            keys_only: info.trim() == "keys",
        });
    }
    found
}

fn all_blocks() -> Vec<Block> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files.iter().flat_map(|path| blocks(path)).collect()
}

/// `fragment` laid over the base mapping: its attributes replace the base's
/// of the same SCIM path and join the rest; every other key replaces.
fn completed(fragment: &Table) -> Table {
    let mut mapping: Table = BASE_MAPPING.parse().unwrap();
    for (section, value) in fragment {
        match (mapping.get_mut(section), value) {
            (Some(Value::Table(base)), Value::Table(given)) => {
                for (key, value) in given {
                    if key == "attributes"
                        && let (Some(Value::Array(kept)), Value::Array(added)) =
                            (base.get_mut(key), value)
                    {
                        kept.retain(|old| {
                            !added.iter().any(|new| new.get("scim") == old.get("scim"))
                        });
                        kept.extend(added.iter().cloned());
                    } else {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
            _ => {
                mapping.insert(section.clone(), value.clone());
            }
        }
    }
    mapping
}

/// Errors of one block, as text; empty when it checks.
fn check(block: &Block) -> Vec<String> {
    let table: Table = match block.text.parse() {
        Ok(table) => table,
        Err(error) => return vec![format!("not TOML: {error}")],
    };
    let mut report = Report::default();
    if table.contains_key("dialect") {
        let source = SourceFile::new(&block.at, block.text.clone());
        scimgate::dialect::compile(&source, &mut report);
    } else if CONFIG_KEYS.iter().any(|key| table.contains_key(*key)) {
        let source = SourceFile::new(&block.at, block.text.clone());
        if block.keys_only {
            if let Err(diagnostic) = scimgate::config::check_shape(&source) {
                report.push(diagnostic);
            }
        } else {
            // Beside the shipped mappings, as a config in the repository is.
            let dir = tempfile::tempdir().unwrap();
            std::os::unix::fs::symlink(root().join("mappings"), dir.path().join("mappings"))
                .unwrap();
            let path = dir.path().join("scimgate.toml");
            std::fs::write(&path, &block.text).unwrap();
            if let Err(failed) =
                scimgate::config::load_with(&path, scimgate::config::Environment::Ignore)
            {
                report = failed;
            }
        }
    } else {
        let text = toml::to_string(&completed(&table)).unwrap();
        let source = SourceFile::new(&block.at, text);
        if block.keys_only {
            if let Err(diagnostic) = source.parse_toml::<scimgate::mapping::file::MappingFile>() {
                report.push(diagnostic);
            }
        } else {
            scimgate::mapping::compile(&source, &mut report);
        }
    }
    report
        .diagnostics
        .iter()
        .filter(|d| d.severity == scimgate::diagnostics::Severity::Error)
        .map(|d| d.to_string())
        .collect()
}

#[test]
fn every_toml_block_in_the_readme_and_docs_is_accepted_by_the_gateway() {
    let blocks = all_blocks();
    assert!(blocks.len() > 20, "found only {} blocks", blocks.len());
    let failures: Vec<String> = blocks
        .iter()
        .filter_map(|block| {
            let errors = check(block);
            (!errors.is_empty()).then(|| format!("{}:\n  {}", block.at, errors.join("\n  ")))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_block_with_an_unknown_key_or_a_wrong_value_fails_the_check() {
    for (text, keys_only) in [
        (
            "[[users.attributes]]\nscim = \"title\"\nfeild = \"title\"\n",
            false,
        ),
        (
            "[[users.attributes]]\nscim = \"title\"\nfeild = \"title\"\n",
            true,
        ),
        (
            "[[users.attributes]]\nscim = \"title\"\nfield = \"title\"\nfallback = [\"nosuch\"]\n",
            false,
        ),
        ("[server]\nlisten = \"0.0.0.0:8080\"\nmax_body = 1\n", true),
        (
            "[dialect]\nname = \"x\"\n[request]\nstring_booleans = \"yes\"\n",
            false,
        ),
        ("[users.list]\npaging = { … }\n", false),
    ] {
        let block = Block {
            at: "test.md:1".into(),
            text: text.into(),
            keys_only,
        };
        assert!(!check(&block).is_empty(), "accepted: {text}");
    }
}
