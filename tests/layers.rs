//! `.ci/layers`, the check that no module imports a layer above it, passes
//! on this tree and fails on an upward import.

use std::process::Command;

fn layers(src: &std::path::Path) -> std::process::Output {
    Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/layers"))
        .arg(src)
        .output()
        .unwrap()
}

#[test]
fn the_tree_keeps_its_layers_and_an_upward_import_fails_the_check() {
    let here = layers(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(here.status.success(), "{here:?}");

    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("upstream")).unwrap();
    std::fs::write(src.join("server.rs"), "use crate::upstream::Client;\n").unwrap();
    std::fs::write(
        src.join("upstream/budget.rs"),
        "// crate::server in a comment is fine\nfn f() { crate::server::quota(); }\n",
    )
    .unwrap();
    let upward = layers(&src);
    let stdout = String::from_utf8_lossy(&upward.stdout);
    assert!(!upward.status.success(), "{stdout}");
    assert!(
        stdout.contains("src/upstream/budget.rs:2: `upstream` (layer 3) uses `server` (layer 5)"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
}
