//! The provisioning audit log: one JSON line per write (create, replace,
//! patch, delete), whatever its outcome, so an operator can answer "why was
//! this user not provisioned?". The correlation id in each line is the one the
//! IdP saw in the error's `detail`.

use std::fs::{File, OpenOptions};
use std::io::{LineWriter, Write};
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

/// One provisioning write.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    pub time: String,
    pub connection: &'a str,
    pub operation: &'a str,
    /// The SCIM id (the mapping's ids are the upstream's, so this is also the upstream id).
    pub scim_id: Option<&'a str>,
    pub upstream_id: Option<&'a str>,
    #[serde(rename = "userName", skip_serializing_if = "Option::is_none")]
    pub user_name: Option<&'a str>,
    #[serde(rename = "displayName", skip_serializing_if = "Option::is_none")]
    pub display_name: Option<&'a str>,
    /// "ok" or "failed".
    pub outcome: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
    pub correlation_id: &'a str,
}

#[derive(Debug)]
enum Sink {
    File(Mutex<LineWriter<File>>),
    /// No file configured: lines go to the log under target `scimgate::audit`.
    Log,
}

#[derive(Debug)]
pub struct AuditLog {
    sink: Sink,
}

impl AuditLog {
    pub fn open(path: Option<&Path>) -> std::io::Result<AuditLog> {
        let sink = match path {
            Some(path) => {
                let file = OpenOptions::new().create(true).append(true).open(path)?;
                Sink::File(Mutex::new(LineWriter::new(file)))
            }
            None => Sink::Log,
        };
        Ok(AuditLog { sink })
    }

    pub fn write(&self, entry: &Entry<'_>) {
        let Ok(line) = serde_json::to_string(entry) else {
            return;
        };
        match &self.sink {
            Sink::File(file) => {
                let written = file
                    .lock()
                    .map(|mut file| writeln!(file, "{line}"))
                    .map_err(|_| std::io::Error::other("audit log lock poisoned"));
                if let Err(error) | Ok(Err(error)) = written {
                    tracing::error!(%error, "cannot write the audit log");
                }
            }
            // The line carries its own context: no request spans in it.
            Sink::Log => tracing::info!(target: "scimgate::audit", parent: None, "{line}"),
        }
    }
}

pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_appended_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(Some(&path)).unwrap();
        for id in ["1", "2"] {
            log.write(&Entry {
                time: now(),
                connection: "entra",
                operation: "create_user",
                scim_id: Some(id),
                upstream_id: Some(id),
                user_name: Some("a@example.com"),
                display_name: None,
                outcome: "ok",
                status: 201,
                detail: None,
                correlation_id: "c1",
            });
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["scim_id"], "2");
        assert_eq!(lines[0]["userName"], "a@example.com");
        assert!(lines[0].get("detail").is_none());
    }
}
