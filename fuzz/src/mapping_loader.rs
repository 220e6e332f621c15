//! `mapping_loader`: any text as an upstream mapping file and as a dialect
//! file. Compiling reports problems; it never panics.

use scimgate::diagnostics::{Report, SourceFile};

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = SourceFile::new("f.toml", text);
    let mut report = Report::default();
    let _ = scimgate::mapping::compile(&source, &mut report);
    // Every diagnostic renders (file:line:col from the spans).
    let _ = report.to_string();
    let mut report = Report::default();
    let _ = scimgate::dialect::compile(&source, &mut report);
    let _ = report.to_string();
}
