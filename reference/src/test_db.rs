//! Test support the reference APIs share.

/// A SQLite file path in the temp directory, unique to this test; the database and its
/// WAL side files are removed on drop.
pub(crate) struct TempDb {
    pub(crate) path: std::path::PathBuf,
}

impl TempDb {
    /// A fresh path for `api`'s test `label`.
    pub(crate) fn new(api: &str, label: &str) -> TempDb {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path = std::env::temp_dir().join(format!(
            "scimgate-{api}-{label}-{}-{nanos}.sqlite",
            std::process::id()
        ));
        TempDb { path }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = self.path.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
    }
}
