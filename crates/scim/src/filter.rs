//! SCIM filters (RFC 7644 §3.4.2.2): parsing, canonical printing and
//! evaluation against a resource.
//!
//! The parser is a small recursive descent over tokens with an explicit depth
//! counter, so hostile input gets an error instead of a stack overflow. One
//! deliberate extension: Entra ID sends `emails[type eq "work"].value eq "x"`,
//! which the RFC grammar does not allow; it is read as the value path
//! `emails[type eq "work" and value eq "x"]`, which means the same thing.

use std::fmt;

use serde_json::Value;

use crate::path::{AttrPath, PathError, is_attr_name};

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 8 * 1024;
/// Deepest nesting of parentheses, value-path brackets and `not` accepted.
pub const MAX_FILTER_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// Case-insensitive, as RFC 7644 requires for operators.
    pub fn parse(word: &str) -> Option<CompareOp> {
        const ALL: [CompareOp; 9] = [
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Co,
            CompareOp::Sw,
            CompareOp::Ew,
            CompareOp::Gt,
            CompareOp::Ge,
            CompareOp::Lt,
            CompareOp::Le,
        ];
        ALL.into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(word))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `value` is a string, number, boolean or null.
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: Value,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `emails[type eq "work"]`: paths in `filter` are relative to the element.
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
}

impl Filter {
    /// Whether the filter reads the top-level attribute `name` anywhere
    /// (case-insensitive): decided on the parsed filter, never its text, so
    /// a string that merely contains the name does not count.
    pub fn references(&self, name: &str) -> bool {
        match self {
            Filter::Compare { path, .. } | Filter::Present(path) => {
                path.name.eq_ignore_ascii_case(name)
            }
            Filter::ValuePath { path, .. } => path.name.eq_ignore_ascii_case(name),
            Filter::And(left, right) | Filter::Or(left, right) => {
                left.references(name) || right.references(name)
            }
            Filter::Not(inner) => inner.references(name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("filter: is empty; expected an expression such as `userName eq \"alice\"`")]
    Empty,
    #[error("filter: is {len} bytes long; the limit is {MAX_FILTER_LEN}")]
    TooLong { len: usize },
    #[error(
        "filter: nests parentheses, brackets and `not` more than {MAX_FILTER_DEPTH} levels deep \
         (at position {pos})"
    )]
    TooDeep { pos: usize },
    #[error("filter: expected {expected} at position {pos}, found {found}")]
    Unexpected {
        expected: String,
        pos: usize,
        found: String,
    },
    #[error("filter: unexpected character `{ch}` at position {pos}")]
    BadCharacter { ch: char, pos: usize },
    #[error("filter: the string starting at position {pos} is never closed; add a closing `\"`")]
    UnterminatedString { pos: usize },
    #[error("filter: the string at position {pos} is not a valid JSON string: {reason}")]
    BadString { pos: usize, reason: String },
    #[error("filter: `{text}` at position {pos} is not a valid attribute path ({source})")]
    BadPath {
        text: String,
        pos: usize,
        source: PathError,
    },
    #[error(
        "filter: a value filter cannot contain another one (`{path}[` at position {pos}); \
         combine the conditions with `and` inside one pair of brackets"
    )]
    NestedValuePath { path: String, pos: usize },
}

/// Parses a filter expression.
pub fn parse_filter(s: &str) -> Result<Filter, FilterError> {
    if s.len() > MAX_FILTER_LEN {
        return Err(FilterError::TooLong { len: s.len() });
    }
    let tokens = tokenize(s)?;
    if tokens.is_empty() {
        return Err(FilterError::Empty);
    }
    let mut parser = Parser {
        tokens,
        next: 0,
        depth: 0,
        end: s.chars().count(),
        in_value_path: false,
    };
    let filter = parser.or_expr()?;
    match parser.peek() {
        None => Ok(filter),
        Some(tok) => Err(parser.unexpected("`and`, `or` or the end of the filter", Some(tok))),
    }
}

// ---------------------------------------------------------------- tokens

#[derive(Debug, Clone, PartialEq)]
enum TokKind {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    /// A run of path/keyword/number characters: `userName`, `eq`, `-1.5e3`.
    Word(String),
    Str(String),
}

#[derive(Debug, Clone)]
struct Tok {
    kind: TokKind,
    /// Character offset, for error messages.
    pos: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | ':' | '.' | '-' | '+')
}

fn tokenize(s: &str) -> Result<Vec<Tok>, FilterError> {
    let chars: Vec<char> = s.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let pos = i;
        let kind = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => TokKind::Open,
            ')' => TokKind::Close,
            '[' => TokKind::OpenBracket,
            ']' => TokKind::CloseBracket,
            '"' => {
                let (text, after) = scan_string(&chars, i)?;
                i = after;
                tokens.push(Tok {
                    kind: TokKind::Str(text),
                    pos,
                });
                continue;
            }
            c if is_word_char(c) => {
                let start = i;
                while chars.get(i).is_some_and(|&c| is_word_char(c)) {
                    i += 1;
                }
                let word = chars.get(start..i).unwrap_or_default().iter().collect();
                tokens.push(Tok {
                    kind: TokKind::Word(word),
                    pos,
                });
                continue;
            }
            ch => return Err(FilterError::BadCharacter { ch, pos }),
        };
        tokens.push(Tok { kind, pos });
        i += 1;
    }
    Ok(tokens)
}

/// Reads a JSON string starting at the `"` at `start`; returns its decoded
/// text and the index after the closing quote. Decoding is left to serde_json
/// so every JSON escape (`\"`, `\u00e9`, …) means what it means in JSON.
fn scan_string(chars: &[char], start: usize) -> Result<(String, usize), FilterError> {
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(FilterError::UnterminatedString { pos: start }),
            Some('\\') => i += 2,
            Some('"') => break,
            Some(_) => i += 1,
        }
    }
    let raw: String = chars.get(start..=i).unwrap_or_default().iter().collect();
    let text = serde_json::from_str::<String>(&raw).map_err(|e| FilterError::BadString {
        pos: start,
        reason: e.to_string(),
    })?;
    Ok((text, i + 1))
}

fn describe(tok: Option<&Tok>) -> String {
    match tok.map(|t| &t.kind) {
        None => "the end of the filter".to_owned(),
        Some(TokKind::Open) => "`(`".to_owned(),
        Some(TokKind::Close) => "`)`".to_owned(),
        Some(TokKind::OpenBracket) => "`[`".to_owned(),
        Some(TokKind::CloseBracket) => "`]`".to_owned(),
        Some(TokKind::Word(w)) => format!("`{w}`"),
        Some(TokKind::Str(s)) => format!("the string {}", Value::from(s.as_str())),
    }
}

fn is_keyword(tok: Option<&Tok>, keyword: &str) -> bool {
    matches!(tok.map(|t| &t.kind), Some(TokKind::Word(w)) if w.eq_ignore_ascii_case(keyword))
}

// ---------------------------------------------------------------- parser

struct Parser {
    tokens: Vec<Tok>,
    next: usize,
    depth: usize,
    /// Character length of the input: the position reported for "end".
    end: usize,
    in_value_path: bool,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.next)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Tok> {
        self.tokens.get(self.next + ahead)
    }

    fn bump(&mut self) -> Option<Tok> {
        let tok = self.tokens.get(self.next).cloned();
        self.next += 1;
        tok
    }

    fn unexpected(&self, expected: impl Into<String>, found: Option<&Tok>) -> FilterError {
        FilterError::Unexpected {
            expected: expected.into(),
            pos: found.map_or(self.end, |t| t.pos),
            found: describe(found),
        }
    }

    fn enter(&mut self, pos: usize) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(FilterError::TooDeep { pos });
        }
        Ok(())
    }

    fn expect(&mut self, kind: TokKind, expected: &str) -> Result<(), FilterError> {
        match self.peek() {
            Some(tok) if tok.kind == kind => {
                self.next += 1;
                Ok(())
            }
            other => Err(self.unexpected(expected, other)),
        }
    }

    /// `or` binds loosest; chains associate to the left.
    fn or_expr(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and_expr()?;
        while is_keyword(self.peek(), "or") {
            self.next += 1;
            let right = self.and_expr()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while is_keyword(self.peek(), "and") {
            self.next += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        let Some(tok) = self.peek().cloned() else {
            return Err(self.unexpected("an attribute path, `(` or `not`", None));
        };
        match &tok.kind {
            // `not` followed by anything but `(` is an attribute named "not".
            TokKind::Word(w)
                if w.eq_ignore_ascii_case("not")
                    && matches!(self.peek_at(1).map(|t| &t.kind), Some(TokKind::Open)) =>
            {
                self.next += 2;
                self.enter(tok.pos)?;
                let inner = self.or_expr()?;
                self.expect(TokKind::Close, "`)` to close `not (`")?;
                self.depth -= 1;
                Ok(Filter::Not(Box::new(inner)))
            }
            TokKind::Open => {
                self.next += 1;
                self.enter(tok.pos)?;
                let inner = self.or_expr()?;
                self.expect(
                    TokKind::Close,
                    &format!("`)` to close the `(` at position {}", tok.pos),
                )?;
                self.depth -= 1;
                Ok(inner)
            }
            TokKind::Word(w) => {
                self.next += 1;
                let path = parse_path(w, tok.pos)?;
                self.attr_expr(path, w, tok.pos)
            }
            _ => Err(self.unexpected("an attribute path, `(` or `not`", Some(&tok))),
        }
    }

    fn attr_expr(&mut self, path: AttrPath, text: &str, pos: usize) -> Result<Filter, FilterError> {
        if matches!(self.peek().map(|t| &t.kind), Some(TokKind::OpenBracket)) {
            return self.value_path(path, text, pos);
        }
        self.comparison(path, text)
    }

    /// `attr pr` or `attr op value`.
    fn comparison(&mut self, path: AttrPath, text: &str) -> Result<Filter, FilterError> {
        let op_tok = self.peek().cloned();
        let op_word = match op_tok.as_ref().map(|t| &t.kind) {
            Some(TokKind::Word(w)) => w.clone(),
            _ => {
                return Err(self.unexpected(
                    format!("a comparison operator (eq, ne, co, sw, ew, gt, ge, lt, le) or `pr` after `{text}`"),
                    op_tok.as_ref(),
                ));
            }
        };
        if op_word.eq_ignore_ascii_case("pr") {
            self.next += 1;
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::parse(&op_word) else {
            return Err(self.unexpected(
                format!("a comparison operator (eq, ne, co, sw, ew, gt, ge, lt, le) or `pr` after `{text}`"),
                op_tok.as_ref(),
            ));
        };
        self.next += 1;
        let value = self.comp_value(op)?;
        Ok(Filter::Compare { path, op, value })
    }

    fn comp_value(&mut self, op: CompareOp) -> Result<Value, FilterError> {
        let expected = || {
            format!(
                "a value after `{}` (a quoted string, a number, true, false or null)",
                op.as_str()
            )
        };
        let tok = self.peek().cloned();
        let value = match tok.as_ref().map(|t| &t.kind) {
            Some(TokKind::Str(s)) => Value::String(s.clone()),
            Some(TokKind::Word(w)) if w.eq_ignore_ascii_case("true") => Value::Bool(true),
            Some(TokKind::Word(w)) if w.eq_ignore_ascii_case("false") => Value::Bool(false),
            Some(TokKind::Word(w)) if w.eq_ignore_ascii_case("null") => Value::Null,
            Some(TokKind::Word(w)) if w.starts_with(|c: char| c.is_ascii_digit() || c == '-') => {
                match parse_number(w) {
                    Some(number) => number,
                    None => return Err(self.unexpected(expected(), tok.as_ref())),
                }
            }
            _ => return Err(self.unexpected(expected(), tok.as_ref())),
        };
        self.next += 1;
        Ok(value)
    }

    /// `attr[filter]`, optionally followed by Entra's `.sub op value`.
    fn value_path(
        &mut self,
        path: AttrPath,
        text: &str,
        pos: usize,
    ) -> Result<Filter, FilterError> {
        if self.in_value_path {
            return Err(FilterError::NestedValuePath {
                path: text.to_owned(),
                pos,
            });
        }
        if path.sub.is_some() {
            return Err(FilterError::Unexpected {
                expected: format!(
                    "a multi-valued attribute before `[`, not the sub-attribute `{text}`"
                ),
                pos,
                found: format!("`{text}`"),
            });
        }
        let bracket_pos = self.bump().map_or(self.end, |t| t.pos);
        self.enter(bracket_pos)?;
        self.in_value_path = true;
        let inner = self.or_expr()?;
        self.in_value_path = false;
        self.expect(
            TokKind::CloseBracket,
            &format!("`]` to close `{text}[` opened at position {bracket_pos}"),
        )?;
        self.depth -= 1;
        let trailing = match self.peek().map(|t| (&t.kind, t.pos)) {
            Some((TokKind::Word(w), pos)) if w.starts_with('.') => Some((w.clone(), pos)),
            _ => None,
        };
        let filter = match trailing {
            None => inner,
            Some((word, word_pos)) => {
                self.next += 1;
                let sub = word.get(1..).unwrap_or_default();
                if !is_attr_name(sub) {
                    return Err(FilterError::Unexpected {
                        expected: format!("a sub-attribute name after `{text}[…]`"),
                        pos: word_pos,
                        found: format!("`{word}`"),
                    });
                }
                let sub_filter =
                    self.comparison(AttrPath::simple(sub), &format!("{text}[…]{word}"))?;
                Filter::And(Box::new(inner), Box::new(sub_filter))
            }
        };
        Ok(Filter::ValuePath {
            path,
            filter: Box::new(filter),
        })
    }
}

/// A JSON number. serde_json checks the grammar, but its default float
/// parsing may be off by an ulp; std's is exact, so printed filters re-parse
/// to the same value.
fn parse_number(word: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(word).ok()? {
        Value::Number(n) if n.is_f64() => {
            let exact = word.parse::<f64>().ok()?;
            serde_json::Number::from_f64(exact).map(Value::Number)
        }
        number @ Value::Number(_) => Some(number),
        _ => None,
    }
}

fn parse_path(text: &str, pos: usize) -> Result<AttrPath, FilterError> {
    AttrPath::parse(text).map_err(|source| FilterError::BadPath {
        text: text.to_owned(),
        pos,
        source,
    })
}

// ---------------------------------------------------------------- printing

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Prints the canonical form: lower-case keywords, JSON literals, and
/// parentheses exactly where needed for the same tree to parse back.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::And(left, right) => {
                write_operand(f, left, matches!(**left, Filter::Or(..)))?;
                f.write_str(" and ")?;
                write_operand(
                    f,
                    right,
                    matches!(**right, Filter::Or(..) | Filter::And(..)),
                )
            }
            Filter::Or(left, right) => {
                write_operand(f, left, false)?;
                f.write_str(" or ")?;
                write_operand(f, right, matches!(**right, Filter::Or(..)))
            }
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
        }
    }
}

fn write_operand(f: &mut fmt::Formatter<'_>, filter: &Filter, parens: bool) -> fmt::Result {
    if parens {
        write!(f, "({filter})")
    } else {
        write!(f, "{filter}")
    }
}

mod eval;
pub use eval::{matches, matches_element};

#[cfg(test)]
mod tests;
