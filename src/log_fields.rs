//! A span's fields for the JSON log, written as they are recorded.
//!
//! The JSON formatter encodes a span's fields when the span is made, whether
//! or not a line is ever logged inside it, and every request makes two (its
//! `request` and its `connection`). tracing-subscriber's own `JsonFields`
//! gathers them in a map of JSON values first, then serializes that map;
//! this writes each field straight into the object's text. The log line is
//! the same JSON object (fields in the order they are declared rather than
//! sorted), so the formatter reads it back as it reads `JsonFields`'s.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::Writer;

/// Span fields as one JSON object, for `fmt().json().fmt_fields(…)`.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonSpanFields;

impl<'writer> FormatFields<'writer> for JsonSpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut object = String::from("{");
        fields.record(&mut ObjectWriter {
            object: &mut object,
        });
        object.push('}');
        writer.write_str(&object)
    }

    /// A field recorded after the span was made (`Span::record`) joins the
    /// object; recorded twice, the last value is the one read back.
    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        if current.fields.is_empty() {
            return self.format_fields(current.as_writer(), fields);
        }
        current.fields.pop();
        fields.record(&mut ObjectWriter {
            object: &mut current.fields,
        });
        current.fields.push('}');
        Ok(())
    }
}

/// Appends `"name":value` pairs to an object's text, before its `}`.
struct ObjectWriter<'a> {
    object: &'a mut String,
}

impl ObjectWriter<'_> {
    fn key(&mut self, field: &Field) {
        if !self.object.ends_with('{') {
            self.object.push(',');
        }
        // As `JsonFields` names them: a raw identifier without its `r#`.
        let name = field.name();
        push_json_string(self.object, name.strip_prefix("r#").unwrap_or(name));
        self.object.push(':');
    }

    fn number(&mut self, field: &Field, value: impl fmt::Display) {
        self.key(field);
        let _ = write!(self.object, "{value}");
    }
}

impl Visit for ObjectWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        push_json_string(self.object, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.number(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        match serde_json::Number::from_f64(value) {
            Some(number) => self.number(field, number),
            // JSON has no NaN or infinity; `JsonFields` writes null too.
            None => {
                self.key(field);
                self.object.push_str("null");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        self.object.push('"');
        let _ = write!(
            Escaped {
                into: &mut *self.object
            },
            "{value:?}"
        );
        self.object.push('"');
    }
}

/// `text` as a JSON string.
fn push_json_string(into: &mut String, text: &str) {
    into.push('"');
    let _ = Escaped { into: &mut *into }.write_str(text);
    into.push('"');
}

/// Writes what it is given as the inside of a JSON string (RFC 8259 §7).
struct Escaped<'a> {
    into: &'a mut String,
}

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // Most field values hold nothing to escape: looked for eight bytes
        // at a time, they are copied whole.
        if !crate::scim::json::has_escape(text.as_bytes()) {
            self.into.push_str(text);
            return Ok(());
        }
        let mut plain = 0;
        for (at, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0x00..=0x1f => "",
                _ => continue,
            };
            self.into.push_str(&text[plain..at]);
            match escape {
                "" => {
                    let _ = write!(self.into, "\\u{byte:04x}");
                }
                escape => self.into.push_str(escape),
            }
            plain = at + 1;
        }
        self.into.push_str(&text[plain..]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::fmt::format::JsonFields;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// Spans of every kind of field, a field recorded later, and a line
    /// logged inside them.
    fn log_inside_spans() {
        struct Quoted;
        impl fmt::Debug for Quoted {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("say \"hi\"\\ \u{1}\t\u{e9}")
            }
        }
        let outer = tracing::info_span!(
            "request",
            request_id = %"r-1\n\"x\"",
            method = "GET",
            answered = tracing::field::Empty,
        );
        let _outer = outer.enter();
        let inner = tracing::info_span!(
            "connection",
            r#type = "entra",
            count = 3u64,
            delta = -2i64,
            ok = true,
            ratio = 0.5f64,
            nan = f64::NAN,
            debug = ?Quoted,
        );
        let _inner = inner.enter();
        outer.record("answered", 201u64);
        outer.record("answered", 204u64);
        tracing::warn!(detail = "inside", "a line");
    }

    /// The logged line as `fields` formats spans.
    fn line<F>(fields: F) -> Value
    where
        F: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .fmt_fields(fields)
            .with_writer(captured.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log_inside_spans);
        let bytes = captured.0.lock().unwrap().clone();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn spans_log_as_json_fields_logs_them() {
        let ours = line(JsonSpanFields);
        let theirs = line(JsonFields::new());
        // Maps compare whatever their order.
        assert_eq!(ours["span"], theirs["span"]);
        assert_eq!(ours["spans"], theirs["spans"]);
        assert_eq!(ours["fields"], theirs["fields"]);
        let spans = ours["spans"].as_array().unwrap();
        assert_eq!(spans[0]["request_id"], "r-1\n\"x\"");
        assert_eq!(spans[0]["answered"], 204);
        assert_eq!(spans[1]["type"], "entra");
        assert_eq!(spans[1]["debug"], "say \"hi\"\\ \u{1}\t\u{e9}");
        assert_eq!(spans[1]["nan"], Value::Null);
        assert_eq!(spans[1]["ratio"], 0.5);
    }

    #[test]
    fn a_string_is_escaped_as_json_wants_it() {
        let mut text = String::new();
        push_json_string(&mut text, "a\"b\\c\n\r\t\u{8}\u{c}\u{0}\u{1f}é\u{7f}");
        assert_eq!(text, "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0000\\u001fé\u{7f}\"");
        assert_eq!(
            serde_json::from_str::<String>(&text).unwrap(),
            "a\"b\\c\n\r\t\u{8}\u{c}\u{0}\u{1f}é\u{7f}"
        );
    }
}
