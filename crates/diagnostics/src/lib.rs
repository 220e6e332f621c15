//! Problems found in files an operator writes (config, mapping files), each
//! reported as `file:line:col: what is wrong, what was expected`.
//!
//! Loaders collect every problem before failing, so an operator fixes ten
//! mistakes in one round rather than ten rounds.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {label}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// The text of one operator file, able to turn byte spans into line:column.
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        SourceFile {
            path: path.into(),
            text: text.into(),
        }
    }

    pub fn read(path: &Path) -> Result<Self, Diagnostic> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(SourceFile::new(path, text)),
            Err(error) => Err(Diagnostic {
                severity: Severity::Error,
                file: path.to_path_buf(),
                line: 1,
                column: 1,
                message: format!("cannot read file: {error}"),
            }),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before
            .get(line_start..)
            .map(|s| s.chars().count())
            .unwrap_or(0)
            + 1;
        (line, column)
    }

    pub fn error_at(&self, span: Option<Range<usize>>, message: impl Into<String>) -> Diagnostic {
        self.diagnostic(Severity::Error, span, message)
    }

    pub fn warning_at(&self, span: Option<Range<usize>>, message: impl Into<String>) -> Diagnostic {
        self.diagnostic(Severity::Warning, span, message)
    }

    fn diagnostic(
        &self,
        severity: Severity,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let (line, column) = span.map(|s| self.line_col(s.start)).unwrap_or((1, 1));
        Diagnostic {
            severity,
            file: self.path.clone(),
            line,
            column,
            message: message.into(),
        }
    }

    /// Deserialises the whole file; a syntax or shape error becomes one
    /// diagnostic at the offending key or value.
    pub fn parse_toml<T: serde::de::DeserializeOwned>(&self) -> Result<T, Diagnostic> {
        toml::from_str(&self.text).map_err(|error| {
            // toml's message already names the expected keys/types; drop its own
            // rendering of the location, which we give as file:line:col instead.
            self.error_at(error.span(), error.message().trim().to_string())
        })
    }
}

/// All problems found in one load; fails when any is an error.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for diagnostic in &self.diagnostics {
            writeln!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one_in_characters() {
        let source = SourceFile::new("m.toml", "a = 1\nbé = 2\n");
        assert_eq!(source.line_col(0), (1, 1));
        assert_eq!(source.line_col(6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(source.line_col(9), (2, 3));
    }

    #[test]
    fn unknown_key_is_reported_at_its_line() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Shape {
            name: String,
        }
        let source = SourceFile::new("m.toml", "name = \"x\"\nnmae = \"y\"\n");
        let diagnostic = source.parse_toml::<Shape>().unwrap_err();
        assert_eq!((diagnostic.line, diagnostic.column), (2, 1));
        assert!(
            diagnostic.message.contains("nmae"),
            "{}",
            diagnostic.message
        );
        assert!(diagnostic.to_string().starts_with("m.toml:2:1: error:"));
    }
}
