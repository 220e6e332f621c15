//! JSON text (RFC 8259) into a [`Tree`] that borrows the text: each key and
//! string without an escape is a slice of it, so reading an upstream record
//! makes no `String` per key and per string and hashes no key. A record
//! only read (mapped into a resource and written out) never needs more.
//!
//! The reader is written here rather than driven through serde: serde_json
//! reads a token at a time through a visitor, which costs about 25
//! instructions a byte of an upstream page; this one finds the end of a
//! string eight bytes at a time. It accepts exactly what serde_json
//! accepts, to the same values (numbers other than small integers are
//! handed to serde_json itself), as the tests below check against it.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Number, Value};

use super::Shapes;
use super::tree::{Members, Tree};

/// Text that is not one JSON value, and the byte where it stops being one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not JSON: {what} at byte {at}")]
pub struct NotJson {
    pub at: usize,
    pub what: &'static str,
}

/// The value `text` holds, as a tree of its parts: the same value (keys in
/// the same order, a repeated key's last value in its first place) as
/// [`super::from_bytes`] reads, or an error where it refuses the text.
pub fn tree_from_str(text: &str) -> Result<Tree<'_>, NotJson> {
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        at: 0,
        shapes: Shapes::default(),
        unique_keys: Default::default(),
    };
    let tree = reader.value(0)?;
    reader.skip_space();
    match reader.at < reader.bytes.len() {
        true => Err(reader.error("text after the value")),
        false => Ok(tree),
    }
}

/// How deep arrays and objects may nest: serde_json's recursion limit
/// (its 128th level is refused).
const MAX_DEPTH: usize = 127;

struct Reader<'t> {
    text: &'t str,
    bytes: &'t [u8],
    at: usize,
    shapes: Shapes,
    /// The keys of the last object read at each of the first depths, in
    /// order, if they were all lent by the text and each held once: the
    /// records of a page share one shape, and an object with the same
    /// keys needs no search for a repeat.
    unique_keys: [Vec<&'t str>; 4],
}

impl<'t> Reader<'t> {
    fn error(&self, what: &'static str) -> NotJson {
        NotJson { at: self.at, what }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// Steps over `byte`, after any white space, or fails with `what`.
    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), NotJson> {
        self.skip_space();
        match self.peek() == Some(byte) {
            true => {
                self.at += 1;
                Ok(())
            }
            false => Err(self.error(what)),
        }
    }

    /// The value at the reader (after white space), `depth` arrays and
    /// objects down.
    fn value(&mut self, depth: usize) -> Result<Tree<'t>, NotJson> {
        self.skip_space();
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Tree::Text),
            Some(b't') => self.word("true", Value::Bool(true)),
            Some(b'f') => self.word("false", Value::Bool(false)),
            Some(b'n') => self.word("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a value")),
            None => Err(self.error("end of text where a value was expected")),
        }
    }

    fn word(&mut self, word: &'static str, value: Value) -> Result<Tree<'t>, NotJson> {
        match self.bytes.get(self.at..self.at + word.len()) == Some(word.as_bytes()) {
            true => {
                self.at += word.len();
                Ok(Tree::Owned(value))
            }
            false => Err(self.error("expected a value")),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Tree<'t>, NotJson> {
        let empty = self.open(depth, b']')?;
        let mut items = Vec::with_capacity(self.shapes.last(depth));
        if !empty {
            loop {
                items.push(self.value(depth)?);
                if !self.more(b']', "expected `,` or `]`")? {
                    break;
                }
            }
        }
        self.shapes.note(depth, items.len());
        Ok(Tree::Array(items))
    }

    fn object(&mut self, depth: usize) -> Result<Tree<'t>, NotJson> {
        let empty = self.open(depth, b'}')?;
        let mut read = Vec::with_capacity(self.shapes.last(depth));
        if !empty {
            loop {
                self.skip_space();
                if self.peek() != Some(b'"') {
                    return Err(self.error("expected a key"));
                }
                let key = self.string()?;
                self.expect(b':', "expected `:`")?;
                read.push((key, self.value(depth)?));
                if !self.more(b'}', "expected `,` or `}`")? {
                    break;
                }
            }
        }
        self.shapes.note(depth, read.len());
        Ok(Tree::Object(self.unique_members(depth, read)))
    }

    /// Steps into the array or object whose opening byte is at the reader,
    /// unless it nests too deep; whether it is empty (its `close` is then
    /// stepped over too).
    fn open(&mut self, depth: usize, close: u8) -> Result<bool, NotJson> {
        if depth > MAX_DEPTH {
            return Err(self.error("arrays and objects nested too deep"));
        }
        self.at += 1;
        self.skip_space();
        let empty = self.peek() == Some(close);
        if empty {
            self.at += 1;
        }
        Ok(empty)
    }

    /// After an element: whether another follows (a `,`), or the array or
    /// object ends (its `close`, stepped over).
    fn more(&mut self, close: u8, what: &'static str) -> Result<bool, NotJson> {
        self.skip_space();
        match self.peek() {
            Some(b',') => {
                self.at += 1;
                Ok(true)
            }
            Some(byte) if byte == close => {
                self.at += 1;
                Ok(false)
            }
            _ => Err(self.error(what)),
        }
    }

    /// [`without_repeats`], or none of its search where the object has the
    /// keys of the last one at its depth.
    fn unique_members(&mut self, depth: usize, read: Vec<(Cow<'t, str>, Tree<'t>)>) -> Members<'t> {
        let Some(last) = self.unique_keys.get_mut(depth) else {
            return without_repeats(read);
        };
        if last.len() == read.len() && last.iter().zip(&read).all(|(held, (key, _))| held == key) {
            return Members::from_unique(read);
        }
        last.clear();
        for (key, _) in &read {
            match key {
                Cow::Borrowed(key) => last.push(key),
                Cow::Owned(_) => {
                    last.clear();
                    break;
                }
            }
        }
        let members = without_repeats(read);
        if members.len() != last.len() {
            last.clear();
        }
        members
    }

    /// The string whose opening quote is at the reader: a slice of the text
    /// up to its closing quote, or made where it holds an escape.
    fn string(&mut self) -> Result<Cow<'t, str>, NotJson> {
        self.at += 1;
        let start = self.at;
        self.at = plain_run_end(self.bytes, self.at);
        if self.peek() == Some(b'"') {
            let plain = self.slice(start)?;
            self.at += 1;
            return Ok(Cow::Borrowed(plain));
        }
        let mut made = String::with_capacity(self.at - start + 16);
        made.push_str(self.slice(start)?);
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(Cow::Owned(made));
                }
                Some(b'\\') => self.escape(&mut made)?,
                Some(_) => return Err(self.error("a control character in a string")),
                None => return Err(self.error("end of text in a string")),
            }
            let from = self.at;
            self.at = plain_run_end(self.bytes, self.at);
            made.push_str(self.slice(from)?);
        }
    }

    /// The text from `start` to the reader: it starts and ends next to
    /// ASCII bytes, so on character boundaries.
    fn slice(&self, start: usize) -> Result<&'t str, NotJson> {
        self.text
            .get(start..self.at)
            .ok_or_else(|| self.error("a string that is not text"))
    }

    /// The escape at the reader (its backslash), written into `made`.
    fn escape(&mut self, made: &mut String) -> Result<(), NotJson> {
        self.at += 1;
        let Some(kind) = self.peek() else {
            return Err(self.error("end of text in an escape"));
        };
        self.at += 1;
        let plain = match kind {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => return self.unicode_escape(made),
            _ => return Err(self.error("an invalid escape")),
        };
        made.push(plain);
        Ok(())
    }

    /// A `\uXXXX` escape after its `u`, a surrogate pair as one character.
    fn unicode_escape(&mut self, made: &mut String) -> Result<(), NotJson> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.bytes.get(self.at..self.at + 2) != Some(b"\\u") {
                    return Err(self.error("a lone surrogate in an escape"));
                }
                self.at += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.error("a lone surrogate in an escape"));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error("a lone surrogate in an escape")),
            code => code,
        };
        let character =
            char::from_u32(code).ok_or_else(|| self.error("an escape that is no character"))?;
        made.push(character);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, NotJson> {
        let digits = self
            .bytes
            .get(self.at..self.at + 4)
            .ok_or_else(|| self.error("end of text in an escape"))?;
        let mut code = 0;
        for &digit in digits {
            let value = (digit as char)
                .to_digit(16)
                .ok_or_else(|| self.error("an invalid escape"))?;
            code = code * 16 + value;
        }
        self.at += 4;
        Ok(code)
    }

    /// The number at the reader, to RFC 8259's grammar. A non-negative
    /// integer that fits is read here; any other is read by serde_json,
    /// which decides its value (a float, `-0`, one out of range).
    fn number(&mut self) -> Result<Tree<'t>, NotJson> {
        let start = self.at;
        let digits = |reader: &mut Self| {
            let from = reader.at;
            while let Some(b'0'..=b'9') = reader.peek() {
                reader.at += 1;
            }
            reader.at - from
        };
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let leading_zero = self.peek() == Some(b'0');
        let whole = digits(self);
        if whole == 0 || (leading_zero && whole > 1) {
            return Err(self.error("an invalid number"));
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.at += 1;
            integer = false;
            if digits(self) == 0 {
                return Err(self.error("an invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            integer = false;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if digits(self) == 0 {
                return Err(self.error("an invalid number"));
            }
        }
        let text = self.slice(start)?;
        if integer
            && !negative
            && let Ok(small) = text.parse::<u64>()
        {
            return Ok(Tree::Owned(Value::Number(Number::from(small))));
        }
        serde_json::from_str::<Value>(text)
            .map(Tree::Owned)
            .map_err(|_| NotJson {
                at: start,
                what: "a number out of range",
            })
    }
}

/// Where the run of string bytes from `at` that need no care ends: at a
/// quote, a backslash, a control character or the end. Eight bytes are
/// looked at a time, the last few padded with quotes.
fn plain_run_end(bytes: &[u8], mut at: usize) -> usize {
    loop {
        let word = match bytes.get(at..at + 8) {
            Some(eight) => u64::from_le_bytes(eight.try_into().unwrap_or([b'"'; 8])),
            None => {
                let mut padded = [b'"'; 8];
                let rest = bytes.get(at..).unwrap_or_default();
                padded
                    .iter_mut()
                    .zip(rest)
                    .for_each(|(to, from)| *to = *from);
                u64::from_le_bytes(padded)
            }
        };
        let flags = super::escapes(word);
        if flags != 0 {
            let found = at + (flags.trailing_zeros() / 8) as usize;
            return found.min(bytes.len());
        }
        at += 8;
    }
}

/// Objects this large find a repeated key by hashing; smaller ones by
/// comparing, which costs less than hashing each key.
const COMPARED: usize = 32;

/// An object's members as read, each key once: a repeated key's last value
/// in its first place, as `serde_json::Map` keeps it. A repeat is looked
/// for in a way that stays linear in the object's size, for an upstream
/// that sends a huge one.
fn without_repeats<'a>(read: Vec<(Cow<'a, str>, Tree<'a>)>) -> Members<'a> {
    let repeats = if read.len() <= COMPARED {
        read.iter()
            .enumerate()
            .any(|(at, (key, _))| read[..at].iter().any(|(held, _)| held == key))
    } else {
        let mut seen = std::collections::HashSet::with_capacity(read.len());
        !read.iter().all(|(key, _)| seen.insert(&**key))
    };
    if !repeats {
        return Members::from_unique(read);
    }
    let mut places: HashMap<Cow<'a, str>, usize> = HashMap::with_capacity(read.len());
    let mut kept: Vec<(Cow<'a, str>, Tree<'a>)> = Vec::with_capacity(read.len());
    for (key, value) in read {
        match places.get(&key) {
            Some(&at) => kept[at].1 = value,
            None => {
                places.insert(key.clone(), kept.len());
                kept.push((key, value));
            }
        }
    }
    Members::from_unique(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::json::{from_bytes, to_vec, write_tree};

    /// A reader's value and the bytes written of it, or that it refused.
    type Read = Result<(Value, Vec<u8>), String>;

    /// What both readers make of `text`, as values and as the bytes written
    /// of them (equal bytes: the same keys in the same order).
    fn both(text: &str) -> (Read, Read) {
        let tree = tree_from_str(text)
            .map(|tree| {
                let mut written = Vec::new();
                write_tree(&mut written, &tree);
                (tree.into_value(), written)
            })
            .map_err(|_| "refused".to_string());
        let value = from_bytes(text.as_bytes())
            .map(|value| {
                let written = to_vec(&value);
                (value, written)
            })
            .map_err(|_| "refused".to_string());
        (tree, value)
    }

    #[test]
    fn reads_what_from_bytes_reads_and_refuses_what_it_refuses() {
        let many: String = format!(
            "{{{}, \"k3\": \"again\"}}",
            (0..40)
                .map(|n| format!("\"k{n}\": {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let cases = [
            r#"{"a": "b", "n": [1, 2.5, -3, 1e400, 18446744073709551616], "t": true, "z": null}"#,
            "{\"name\": \"Jos\u{e9} \u{1F600}\", \"esc\": \"\\u00e9\\n\", \"k\\u0041\": 1}",
            r#"[{"id": 1, "b": 2, "a": 3}, {"a": 1}, {"z": 1, "y": 2, "x": 3, "w": 4}, {}]"#,
            r#"{"dup": 1, "other": 2, "dup": 3}"#,
            r#"[{"a": 1, "b": 2}, {"a": 3, "b": 4}, {"a": 5, "a": 6}, {"a": 5, "a": 6}, {"a": 7, "b": 8, "a": 9}, {"a": 1, "b": 2}, {"\u0061": 1, "b": 2}, {"a": 1, "b": 2}]"#,
            r#"{"dup": 1, "d\u0075p": 2}"#,
            &many,
            r#"[[[[[{"deep": {"deeper": [1]}}]]]]]"#,
            "  [ ]  ",
            "{\"a\": 1,}",
            "{\"a\": \"\\ud800\"}",
            "",
            "[1] [2]",
            "{\"a\" 1}",
            "\"text\"",
        ];
        for case in cases {
            let (tree, value) = both(case);
            assert_eq!(tree, value, "{case}");
        }
    }

    #[test]
    fn a_plain_run_ends_at_the_first_byte_that_needs_care() {
        for length in 0..20 {
            let plain: Vec<u8> = (0..length).map(|n| b"a\x7f\xc3"[n % 3]).collect();
            assert_eq!(plain_run_end(&plain, 0), length);
            for at in 0..length {
                for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                    let mut bytes = plain.clone();
                    bytes[at] = special;
                    // A second one later must not be the one found.
                    if at + 1 < length {
                        bytes[length - 1] = b'"';
                    }
                    for from in 0..=at {
                        assert_eq!(plain_run_end(&bytes, from), at, "{bytes:?} from {from}");
                    }
                }
            }
        }
    }

    #[test]
    fn strings_without_escapes_are_lent_by_the_text() {
        let text = r#"{"login": "ada", "note": "a\nb"}"#;
        let tree = tree_from_str(text).unwrap();
        let Tree::Object(members) = &tree else {
            panic!("not an object: {tree:?}");
        };
        let lent: Vec<bool> = members
            .iter()
            .map(|(_, value)| matches!(value, Tree::Text(Cow::Borrowed(_))))
            .collect();
        assert_eq!(lent, [true, false]);
    }

    #[test]
    fn nesting_is_refused_where_serde_json_refuses_it() {
        for depth in [126, 127, 128, 200] {
            for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
                let deep = open.repeat(depth) + "1" + &close.repeat(depth);
                let (tree, value) = both(&deep);
                assert_eq!(tree, value, "{depth} {open}");
                assert_eq!(tree.is_ok(), depth < 128, "{depth} {open}");
            }
        }
    }

    proptest! {
        /// Any JSON text, and any repeat of a key in it, reads as
        /// `from_bytes` reads it.
        #[test]
        fn any_text_reads_as_from_bytes_reads_it(
            value in crate::json::tests::json_with_keys("[a-c]{1,2}"),
            pretty in any::<bool>(),
        ) {
            let text = match pretty {
                true => serde_json::to_string_pretty(&value).unwrap(),
                false => value.to_string(),
            };
            let (tree, read) = both(&text);
            prop_assert_eq!(tree, read);
            let repeated = format!("{{\"a\": 1, \"b\": {text}, \"a\": {text}}}");
            let (tree, read) = both(&repeated);
            prop_assert_eq!(tree, read);
        }

        /// Strings of escapes of every kind, surrogates paired and not,
        /// read as serde_json reads them.
        #[test]
        fn escapes_read_as_serde_json_reads_them(
            inside in r#"(\\u[dD][89abAB][0-9a-fA-F]{2}|\\u[dD][c-fC-F][0-9a-f]{2}|\\u[0-9a-fA-F]{4}|\\u[0-9a-g]{0,4}|\\[nrt"\\/bfx]|[a-z é"]|\u{1}){0,8}"#,
        ) {
            for text in [format!("\"{inside}\""), format!("{{\"{inside}\": \"{inside}\"}}")] {
                let (tree, read) = both(&text);
                prop_assert_eq!(tree, read, "{}", text);
            }
        }

        /// Numbers of every shape, and what only looks like one.
        #[test]
        fn numbers_read_as_serde_json_reads_them(
            number in r"-?(0|[1-9][0-9]{0,21}|0[0-9]{1,2})?(\.[0-9]{0,3})?([eE][+-]?[0-9]{0,4})?",
        ) {
            for text in [number.clone(), format!("[{number}]"), format!("{{\"n\": {number}}}")] {
                let (tree, read) = both(&text);
                prop_assert_eq!(tree, read, "{}", text);
            }
        }

        /// Bytes that are not JSON are refused by both, never a panic.
        #[test]
        fn any_text_is_read_or_refused_alike(text in "[\\[\\]{}\":,a-c0-9 \\\\n-]{0,24}") {
            let (tree, read) = both(&text);
            prop_assert_eq!(tree.is_ok(), read.is_ok());
            if let (Ok(tree), Ok(read)) = (tree, read) {
                prop_assert_eq!(tree, read);
            }
        }
    }
}
