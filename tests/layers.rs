//! `.ci/layers`, the check that no layer uses one above it, passes on this
//! tree and fails on an upward import: between modules of the gateway crate,
//! and between the workspace's crates.

use std::path::Path;
use std::process::Command;

fn layers(root: &Path) -> std::process::Output {
    Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/layers"))
        .arg(root)
        .output()
        .unwrap()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn the_tree_keeps_its_layers_and_an_upward_import_fails_the_check() {
    let here = layers(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(here.status.success(), "{here:?}");

    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    write(
        &root.join("Cargo.toml"),
        "[package]\nname = \"scimgate\"\n[workspace]\nmembers = [\".\", \"crates/scim\", \"crates/mapping\", \"reference\"]\n[dependencies]\nscimgate-scim = {}\n",
    );
    // The SCIM core may use nothing of the gateway; the mapping may use it,
    // and the test support only as a dev-dependency.
    write(
        &root.join("crates/scim/Cargo.toml"),
        "[package]\nname = \"scimgate-scim\"\n[dev-dependencies]\nscimgate-mapping = {}\n",
    );
    write(
        &root.join("crates/mapping/Cargo.toml"),
        "[package]\nname = \"scimgate-mapping\"\n[dependencies]\nscimgate-scim = {}\nscimgate-test-support = {}\n",
    );
    write(
        &root.join("reference/Cargo.toml"),
        "[package]\nname = \"scimgate-reference\"\n[dependencies]\nscimgate-scim = {}\n",
    );
    write(
        &root.join("src/server.rs"),
        "use crate::upstream::Client;\n",
    );
    write(
        &root.join("src/upstream/budget.rs"),
        "// crate::server in a comment is fine\nfn f() { crate::server::quota(); }\n",
    );
    let upward = layers(root);
    let stdout = String::from_utf8_lossy(&upward.stdout);
    assert!(!upward.status.success(), "{stdout}");
    let expected = [
        "crates/scim/Cargo.toml: `scimgate-scim` (layer 0) uses `scimgate-mapping` (layer 1), a layer above it",
        "crates/mapping/Cargo.toml: `scimgate-mapping` uses `scimgate-test-support` outside its dev-dependencies",
        "reference/Cargo.toml: `scimgate-reference` stands apart but uses `scimgate-scim`",
        "src/upstream/budget.rs:2: `upstream` (layer 3) uses `server` (layer 5), a layer above it",
    ];
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected, "{stdout}");
}
