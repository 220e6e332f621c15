//! The provisioning audit log: one JSON line per write (create, replace,
//! patch, delete), whatever its outcome, so an operator can answer "why was
//! this user not provisioned?". The correlation id in each line is the one the
//! IdP saw in the error's `detail`.

use std::fs::{File, OpenOptions};
use std::io::{LineWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// One upstream call a write made, as its provisioning record lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The mapping's call (`users.update`), never the path with its ids.
    pub call: String,
    pub method: String,
    /// The upstream's status; 0 when no answer came (timeout, refused connection).
    pub status: u16,
    pub latency_ms: f64,
}

/// The upstream calls of the write being served, collected by the upstream
/// client while a [`Journal::scope`] runs (only writes have one).
#[derive(Debug, Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<Step>>>);

tokio::task_local! {
    static JOURNAL: Journal;
}

impl Journal {
    /// Runs `work` with this journal collecting its upstream calls.
    pub async fn scope<F: Future>(&self, work: F) -> F::Output {
        JOURNAL.scope(self.clone(), work).await
    }

    /// Notes a call if a journal is collecting (a write); nothing otherwise.
    pub fn note(step: impl FnOnce() -> Step) {
        let _ = JOURNAL.try_with(|journal| {
            if let Ok(mut steps) = journal.0.lock() {
                steps.push(step());
            }
        });
    }

    pub fn steps(&self) -> Vec<Step> {
        self.0.lock().map(|steps| steps.clone()).unwrap_or_default()
    }
}

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
    /// The IdP client: its User-Agent and the peer address it came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_address: Option<String>,
    /// The dialect the request was read with.
    pub dialect: &'a str,
    /// Every upstream call the write made, in order.
    pub steps: Vec<Step>,
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
                user_agent: Some("Okta SCIM Client 1.0.0"),
                client_address: None,
                dialect: "okta",
                steps: vec![],
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

    #[tokio::test]
    async fn a_journal_collects_the_calls_made_in_its_scope_only() {
        let journal = Journal::default();
        let step = |call: &str| Step {
            call: call.into(),
            method: "GET".into(),
            status: 200,
            latency_ms: 1.5,
        };
        Journal::note(|| step("outside"));
        journal
            .scope(async {
                Journal::note(|| step("users.get"));
                Journal::note(|| step("users.update"));
            })
            .await;
        Journal::note(|| step("after"));
        let calls: Vec<String> = journal.steps().into_iter().map(|s| s.call).collect();
        assert_eq!(calls, ["users.get", "users.update"]);
    }
}
