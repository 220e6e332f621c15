//! What the benchmark and the soak share: the reference legacy API and the
//! gateway as separate processes, and the gateway's CPU time and memory as
//! `/proc` reports them.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use anyhow::bail;

pub const TOKEN: &str = "bench-token";
pub const API_KEY: &str = "bench-key";

/// A spawned process, killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The gateway's CPU seconds so far and its resident and peak memory (KiB).
pub fn usage(pid: u32) -> anyhow::Result<(f64, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which may contain spaces.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|f| f.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // USER_HZ is 100 on Linux.
    Ok((ticks / 100.0, kib("VmRSS:"), kib("VmHWM:")))
}

/// A config with one connection per dialect, all reaching the legacy API at `legacy_port`.
pub fn gateway_config(port: u16, legacy_port: u16) -> String {
    let mapping = concat!(env!("CARGO_MANIFEST_DIR"), "/mappings/upstream/legacy.toml");
    let hash = hex::encode(scimgate::server::hash_token(TOKEN));
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nmax_results = 100\nscan_cap = 1000\n\n[upstreams.legacy]\nmapping = \"{mapping}\"\nbase_url = \"http://127.0.0.1:{legacy_port}\"\nsecrets.api_key = {{ value = \"{API_KEY}\" }}\n"
    );
    for dialect in ["generic", "entra", "okta"] {
        text.push_str(&format!(
            "\n[connections.{dialect}]\nbase_path = \"/scim/{dialect}/v2\"\nupstream = \"legacy\"\ntoken_sha256 = \"{hash}\"\napproved_domains = [\"example.com\"]\ndialect = \"{dialect}\"\n"
        ));
    }
    text
}

/// A run's end as its exit status: an error is one message (`error: …`
/// with its causes), never the backtrace anyhow prints from `main` when
/// RUST_BACKTRACE is set.
pub fn exit_status(outcome: anyhow::Result<()>) -> std::process::ExitCode {
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

pub fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("scimgate-harness-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

pub async fn wait_for(url: &str, header: Option<(&str, &str)>) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        let mut request = http.get(url);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        if request.send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("{url} did not become ready")
}

/// The `scimgate` binary built beside this one.
pub fn scimgate_binary() -> anyhow::Result<PathBuf> {
    let bin = std::env::current_exe()?
        .parent()
        .ok_or_else(|| anyhow::anyhow!("no binary folder"))?
        .join("scimgate");
    if !bin.exists() {
        bail!(
            "{} is missing: run `cargo build --release --bins` first",
            bin.display()
        );
    }
    Ok(bin)
}

/// Starts the reference legacy API (in memory) and waits until it answers;
/// returns the process and its port.
pub async fn start_legacy(bin: &std::path::Path) -> anyhow::Result<(Process, u16)> {
    let port = free_port()?;
    let process = Process(
        std::process::Command::new(bin)
            .args([
                "legacy-api",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--db",
                ":memory:",
                "--api-key",
                API_KEY,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?,
    );
    wait_for(
        &format!("http://127.0.0.1:{port}/api/v1/users"),
        Some(("x-api-key", API_KEY)),
    )
    .await?;
    Ok((process, port))
}
