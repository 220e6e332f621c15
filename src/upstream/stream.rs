//! A list answer read item by item as its body arrives: an upstream that
//! lists 100,000 users in one unpaged answer (Wrike's contacts) is read
//! with one item in memory at a time, never the whole body, nor the whole
//! tree of JSON values it would parse to (about ten times the body).
//!
//! The body's chunks go over a bounded channel to a blocking thread, where
//! serde_json parses them from a reader and hands each item at the list's
//! pointer to the caller's visitor.

use std::io::Read;

use bytes::{Buf, Bytes};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{CallError, UpstreamClient, UpstreamError};
use crate::mapping::UpstreamRequest;

/// Chunks in flight between the connection and the parser.
const CHUNKS_AHEAD: usize = 8;

impl UpstreamClient {
    /// Makes the list call `request` and hands each item at `items` (a JSON
    /// pointer; `None` for a bare array) to `visit`, on a blocking thread.
    /// Answers the visitor back, and whether the pointer named a list at all.
    pub async fn visit_items<V>(
        &self,
        request: &UpstreamRequest,
        items: Option<&str>,
        mut visit: V,
    ) -> Result<(V, bool), CallError>
    where
        V: FnMut(Value) + Send + 'static,
    {
        let path = pointer_segments(items.unwrap_or_default());
        let (chunks, receiver) = tokio::sync::mpsc::channel(CHUNKS_AHEAD);
        let parser = tokio::task::spawn_blocking(move || {
            let reader = std::io::BufReader::new(ChunkReader {
                receiver,
                chunk: Bytes::new(),
            });
            let mut deserializer = serde_json::Deserializer::from_reader(reader);
            let mut found = false;
            let parsed = Items {
                path: &path,
                visit: &mut visit,
                found: &mut found,
            }
            .deserialize(&mut deserializer)
            .and_then(|()| deserializer.end());
            (visit, found, parsed.is_ok())
        });
        let called = self
            .call_with(request, super::Reading::Stream(&chunks))
            .await;
        // The body's end, for the parser (or no body at all, on an error).
        drop(chunks);
        let parsed = parser.await;
        called?;
        match parsed {
            Ok((visit, found, true)) => Ok((visit, found)),
            _ => Err(CallError::Failed(UpstreamError::BadBody)),
        }
    }
}

/// `/data/0` → ["data", "0"], with `~1` and `~0` (RFC 6901) undone.
fn pointer_segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// The body as a reader, fed by the connection's chunks.
struct ChunkReader {
    receiver: tokio::sync::mpsc::Receiver<Bytes>,
    chunk: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.receiver.blocking_recv() {
                Some(chunk) => self.chunk = chunk,
                None => return Ok(0),
            }
        }
        let taken = buffer.len().min(self.chunk.len());
        buffer[..taken].copy_from_slice(&self.chunk[..taken]);
        self.chunk.advance(taken);
        Ok(taken)
    }
}

/// Walks down `path` and visits each element of the array found there;
/// everything else is skipped unparsed.
struct Items<'a, V> {
    path: &'a [String],
    visit: &'a mut V,
    found: &'a mut bool,
}

impl<'de, V: FnMut(Value)> DeserializeSeed<'de> for Items<'_, V> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, V: FnMut(Value)> Visitor<'de> for Items<'_, V> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON document")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            *self.found = true;
            while let Some(item) = seq.next_element::<Value>()? {
                (self.visit)(item);
            }
            return Ok(());
        };
        let wanted = first.parse::<usize>().ok();
        let mut position = 0;
        loop {
            let more = if wanted == Some(position) {
                let inner = Items {
                    path: rest,
                    visit: &mut *self.visit,
                    found: &mut *self.found,
                };
                seq.next_element_seed(inner)?.is_some()
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                return Ok(());
            }
            position += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let first = self.path.first();
        while let Some(key) = map.next_key::<String>()? {
            match first {
                Some(first) if *first == key => map.next_value_seed(Items {
                    path: &self.path[1..],
                    visit: &mut *self.visit,
                    found: &mut *self.found,
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    // Anything else where a list was looked for: not a list (`found` stays false).
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The items `visit_items` would hand over, from `body` cut into
    /// chunks of `size` bytes.
    fn items_of(body: &str, pointer: &str, size: usize) -> Option<(Vec<Value>, bool)> {
        let (sender, receiver) = tokio::sync::mpsc::channel(body.len() + 1);
        for chunk in body.as_bytes().chunks(size.max(1)) {
            sender.try_send(Bytes::copy_from_slice(chunk)).ok()?;
        }
        drop(sender);
        let reader = std::io::BufReader::new(ChunkReader {
            receiver,
            chunk: Bytes::new(),
        });
        let mut deserializer = serde_json::Deserializer::from_reader(reader);
        let mut seen = Vec::new();
        let mut found = false;
        let path = pointer_segments(pointer);
        Items {
            path: &path,
            visit: &mut |item| seen.push(item),
            found: &mut found,
        }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end())
        .ok()?;
        Some((seen, found))
    }

    #[test]
    fn items_come_out_as_the_pointer_would_find_them_whatever_the_chunks() {
        let body = r#"{"kind": "contacts", "skip": [1, {"data": [9]}], "data": [{"id": "A", "x": {"data": 1}}, {"id": "B"}], "tail": "é"}"#;
        let whole: Value = serde_json::from_str(body).unwrap();
        for size in [1, 2, 7, 64, 4096] {
            let (items, found) = items_of(body, "/data", size).unwrap();
            assert!(found);
            assert_eq!(
                &Value::Array(items),
                whole.pointer("/data").unwrap(),
                "{size}"
            );
        }
        let nested = r#"{"a/b": [[0], [{"id": 1}, {"id": 2}]]}"#;
        let (items, found) = items_of(nested, "/a~1b/1", 3).unwrap();
        assert!(found);
        assert_eq!(
            items,
            [serde_json::json!({"id": 1}), serde_json::json!({"id": 2})]
        );
        let (items, found) = items_of("[1, 2, 3]", "", 1).unwrap();
        assert_eq!((items.len(), found), (3, true));
    }

    #[test]
    fn a_pointer_to_no_list_finds_none_and_a_broken_body_fails() {
        assert_eq!(
            items_of(r#"{"data": 5}"#, "/data", 2),
            Some((vec![], false))
        );
        assert_eq!(
            items_of(r#"{"other": []}"#, "/data", 2),
            Some((vec![], false))
        );
        assert_eq!(items_of(r#"{"data": [1, 2"#, "/data", 2), None);
        assert_eq!(items_of(r#"{"data": []} trailing"#, "/data", 2), None);
    }
}
