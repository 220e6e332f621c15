//! Reloading a running gateway: on SIGHUP (and, with `watch = true`, when a
//! file it was read from changes) the config, every mapping and dialect and
//! the TLS certificate are read again. The new routers are built before any
//! is swapped in, so a reload changes everything or nothing, and a bad
//! reload leaves the last good state serving.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

use super::tls::Tls;
use crate::config::{self, GatewayConfig};

/// How often `watch = true` looks at the files' modification times.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// The admin listener (`admin_listen`) as a reload sees it: its address
/// cannot change without a restart, its routes can.
pub struct AdminRoutes {
    pub address: SocketAddr,
    pub routes: Arc<ArcSwap<axum::Router>>,
}

/// What one reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The new config serves, with this many connections.
    Applied { connections: usize },
    /// The previous config keeps serving, for this reason.
    Refused(String),
}

/// Everything a reload swaps.
pub struct Reloader {
    pub config: PathBuf,
    pub routes: Arc<ArcSwap<axum::Router>>,
    pub admin: Option<AdminRoutes>,
    pub tls: Option<Arc<Tls>>,
}

impl Reloader {
    /// Reloads on every SIGHUP and, given files to watch, on every change
    /// of the config or one of them; runs until the process ends.
    pub async fn run(self, watched: Option<Vec<PathBuf>>) {
        let (trigger, mut reloads) = mpsc::channel::<&'static str>(1);
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::hangup()) {
                Ok(mut hangups) => {
                    let trigger = trigger.clone();
                    tokio::spawn(async move {
                        while hangups.recv().await.is_some() {
                            let _ = trigger.try_send("SIGHUP");
                        }
                    });
                }
                Err(_) => tracing::warn!("cannot listen for SIGHUP: reload needs a restart"),
            }
        }
        if let Some(files) = watched {
            let mut paths = vec![self.config.clone()];
            paths.extend(files);
            tokio::spawn(watch_files(paths, WATCH_INTERVAL, trigger.clone()));
        }
        drop(trigger);
        while let Some(cause) = reloads.recv().await {
            self.reload(cause).await;
        }
    }

    /// One reload, logged with its `cause`.
    pub async fn reload(&self, cause: &str) -> Reloaded {
        let started = tokio::time::Instant::now();
        let outcome = match self.swap_config().await {
            Ok((gateway, report)) => {
                for warning in report.warnings() {
                    tracing::warn!(%warning, "config warning");
                }
                tracing::info!(
                    cause,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    connections = gateway.connections.len(),
                    "reloaded config and mappings"
                );
                Reloaded::Applied {
                    connections: gateway.connections.len(),
                }
            }
            Err(reason) => {
                tracing::error!(cause, problems = %reason, "reload failed; the previous config keeps serving");
                Reloaded::Refused(reason)
            }
        };
        super::observe::reloaded(matches!(outcome, Reloaded::Applied { .. }));
        if let Some(tls) = &self.tls {
            let tls = tls.clone();
            match tokio::task::spawn_blocking(move || tls.reload()).await {
                Ok(Ok(())) => tracing::info!("reloaded the TLS certificate"),
                Ok(Err(error)) => {
                    tracing::error!(%error, "TLS reload failed; the previous certificate keeps serving")
                }
                Err(error) => tracing::error!(%error, "TLS reload failed"),
            }
        }
        outcome
    }

    async fn swap_config(&self) -> Result<(GatewayConfig, crate::diagnostics::Report), String> {
        let owned = self.config.clone();
        let (gateway, report) = tokio::task::spawn_blocking(move || config::load(&owned))
            .await
            .map_err(|error| error.to_string())?
            .map_err(|report| report.to_string())?;
        if gateway.server.admin_listen != self.admin.as_ref().map(|a| a.address) {
            return Err("admin_listen changed, which needs a restart".to_string());
        }
        // Both routers are built before either is swapped in.
        let router = super::router(&gateway).map_err(|error| error.to_string())?;
        let admin_router = match &self.admin {
            Some(_) => Some(super::admin_router(&gateway).map_err(|error| error.to_string())?),
            None => None,
        };
        self.routes.store(Arc::new(router));
        if let (Some(admin), Some(admin_router)) = (&self.admin, admin_router) {
            admin.routes.store(Arc::new(admin_router));
        }
        Ok((gateway, report))
    }
}

/// Polls the files' modification times every `every`; a change asks for a
/// reload (a full channel means one is asked for already).
pub async fn watch_files(
    paths: Vec<PathBuf>,
    every: Duration,
    trigger: mpsc::Sender<&'static str>,
) {
    let mut last = stamps(&paths);
    loop {
        tokio::time::sleep(every).await;
        let now = stamps(&paths);
        if now != last {
            last = now;
            if trigger.try_send("a watched file changed").is_err() && trigger.is_closed() {
                return;
            }
        }
    }
}

fn stamps(paths: &[PathBuf]) -> Vec<Option<SystemTime>> {
    paths.iter().map(|path| modified(path)).collect()
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::{Request, StatusCode};
    use tower::ServiceExt;

    fn config_text(base_path: &str, admin: Option<&str>) -> String {
        let mapping = concat!(env!("CARGO_MANIFEST_DIR"), "/mappings/upstream/legacy.toml");
        let hash = hex::encode(crate::server::hash_token("reload-token"));
        let admin = admin
            .map(|a| format!("admin_listen = \"{a}\"\n"))
            .unwrap_or_default();
        format!(
            "[server]\n{admin}\n[upstreams.legacy]\nmapping = \"{mapping}\"\n\
             base_url = \"http://127.0.0.1:9\"\nsecrets.api_key = {{ value = \"k\" }}\n\n\
             [connections.idp]\nbase_path = \"{base_path}\"\nupstream = \"legacy\"\n\
             token_sha256 = \"{hash}\"\napproved_domains = [\"example.com\"]\ndialect = \"generic\"\n"
        )
    }

    /// A reloader over the config at `path`, as `scimgate serve` starts it.
    fn started(path: &Path) -> Reloader {
        let (gateway, _) = config::load(path).unwrap();
        let admin = gateway.server.admin_listen.map(|address| AdminRoutes {
            address,
            routes: Arc::new(ArcSwap::from_pointee(
                crate::server::admin_router(&gateway).unwrap(),
            )),
        });
        Reloader {
            config: path.to_path_buf(),
            routes: Arc::new(ArcSwap::from_pointee(
                crate::server::router(&gateway).unwrap(),
            )),
            admin,
            tls: None,
        }
    }

    async fn status(reloader: &Reloader, path: &str) -> StatusCode {
        let router = reloader.routes.load_full().as_ref().clone();
        let request = Request::get(path)
            .header("authorization", "Bearer reload-token")
            .header("host", "localhost")
            .body(Body::empty())
            .unwrap();
        router.oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn a_good_config_is_swapped_in_and_a_bad_one_keeps_the_last_good_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scimgate.toml");
        std::fs::write(&path, config_text("/scim/v2", None)).unwrap();
        let reloader = started(&path);
        let old = "/scim/v2/ServiceProviderConfig";
        let new = "/scim/new/ServiceProviderConfig";
        assert_eq!(status(&reloader, old).await, StatusCode::OK);

        std::fs::write(&path, config_text("/scim/new", None)).unwrap();
        assert_eq!(
            reloader.reload("test").await,
            Reloaded::Applied { connections: 1 }
        );
        assert_eq!(status(&reloader, new).await, StatusCode::OK);
        assert_eq!(status(&reloader, old).await, StatusCode::NOT_FOUND);

        std::fs::write(&path, "[server]\nlisten = 42\n").unwrap();
        let Reloaded::Refused(reason) = reloader.reload("test").await else {
            panic!("a broken config was applied");
        };
        assert!(reason.contains("scimgate.toml:2:"), "{reason}");
        assert_eq!(
            status(&reloader, new).await,
            StatusCode::OK,
            "last good state"
        );
    }

    #[tokio::test]
    async fn a_changed_admin_listen_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scimgate.toml");
        std::fs::write(&path, config_text("/scim/v2", Some("127.0.0.1:9901"))).unwrap();
        let reloader = started(&path);
        std::fs::write(&path, config_text("/scim/new", Some("127.0.0.1:9902"))).unwrap();
        assert_eq!(
            reloader.reload("test").await,
            Reloaded::Refused("admin_listen changed, which needs a restart".into())
        );
        let old = "/scim/v2/ServiceProviderConfig";
        assert_eq!(status(&reloader, old).await, StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_file_asks_for_one_reload_at_the_next_poll() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mapping.toml");
        std::fs::write(&file, "a").unwrap();
        let (trigger, mut reloads) = mpsc::channel(1);
        tokio::spawn(watch_files(vec![file.clone()], WATCH_INTERVAL, trigger));
        // Let the watcher take its first stamps.
        tokio::task::yield_now().await;

        // Unchanged: no reload however long it runs.
        tokio::time::advance(WATCH_INTERVAL * 5).await;
        assert!(reloads.try_recv().is_err());

        let later = SystemTime::now() + Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(later)
            .unwrap();
        tokio::time::advance(WATCH_INTERVAL).await;
        tokio::task::yield_now().await;
        assert_eq!(reloads.try_recv().ok(), Some("a watched file changed"));
        tokio::time::advance(WATCH_INTERVAL * 3).await;
        assert!(reloads.try_recv().is_err(), "one change, one reload");
    }
}
