//! The `scimgate` command line: serve, check, demo, explain, token, legacy-api,
//! wrike-api.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use scimgate::config::{Rate, ServerSettings};
use scimgate::{config, demo, server, telemetry};
use scimgate_reference::legacy::{Database, LegacyApi, LegacyConfig};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "scimgate",
    version,
    about = "A rate-limited SCIM 2.0 gateway in front of legacy user APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the connections of a config file.
    Serve {
        #[arg(long, default_value = "scimgate.toml")]
        config: PathBuf,
    },
    /// Validate a config and every mapping it names; exit 1 on any error.
    Check {
        /// Mapping and dialect files to check on their own, without a
        /// gateway config (a file with an `[upstream]` table is a mapping).
        files: Vec<PathBuf>,
        /// The gateway config to check with every file it names (the
        /// default when no FILE is given).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Fail on warnings too.
        #[arg(long)]
        deny_warnings: bool,
        /// Check the config without reading its secrets (environment
        /// variables and files need not exist).
        #[arg(long)]
        no_environment: bool,
    },
    /// Run the gateway in front of the reference legacy API, ready for curl.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Bearer token of the demo connection (default: a random one, printed once).
        #[arg(long)]
        token: Option<String>,
        /// Email domain the demo connection provisions (repeatable).
        #[arg(long = "approved-domain", default_value = "example.com")]
        approved_domains: Vec<String>,
        /// Which reference upstream API the demo runs in front of.
        #[arg(long, value_enum, default_value = "legacy")]
        upstream: demo::DemoUpstream,
        /// Where the reference upstream keeps its data (default
        /// scimgate-demo.sqlite, or scimgate-demo-<upstream>.sqlite/.json
        /// for the others); `:memory:` keeps nothing.
        #[arg(long)]
        db: Option<String>,
        /// Rate limit of each demo connection, e.g. 20/s or 600/min.
        #[arg(long, value_parser = parse_rate)]
        rate_limit: Option<Rate>,
    },
    /// Show what one SCIM request would do upstream, without sending anything.
    Explain {
        #[arg(long, default_value = "scimgate.toml")]
        config: PathBuf,
        /// Explain against the demo's connections instead of a config file.
        #[arg(long)]
        demo: bool,
        /// The connection (its name in the config; the demo's are demo-auto,
        /// demo-entra, demo-okta, demo-onelogin, demo-generic).
        #[arg(long)]
        connection: String,
        /// HTTP method: GET, POST, PUT, PATCH or DELETE.
        method: String,
        /// Path relative to the connection's base path, e.g. /Users/7.
        path: String,
        /// JSON file with the request body.
        #[arg(long)]
        body: Option<PathBuf>,
        /// JSON file with the upstream record that reads answer with.
        #[arg(long)]
        upstream_record: Option<PathBuf>,
        /// User-Agent to send (chooses the dialect on `auto` connections).
        #[arg(long)]
        user_agent: Option<String>,
    },
    /// Print a new connection token once, and the config line holding its hash.
    Token,
    /// Run only the reference legacy user API (the demo's upstream).
    LegacyApi {
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: SocketAddr,
        #[arg(long, default_value = "legacy-api.sqlite")]
        db: String,
        #[arg(long, env = "LEGACY_API_KEY")]
        api_key: String,
        /// Take a second user with a login or email already taken, as many
        /// legacy APIs do (to see the gateway keep IdP retries from
        /// duplicating users).
        #[arg(long)]
        allow_duplicates: bool,
    },
    /// Run only the reference Wrike-shaped API (lists unpaged and
    /// unfilterable), in memory.
    WrikeApi {
        #[arg(long, default_value = "127.0.0.1:9092")]
        listen: SocketAddr,
        #[arg(long, env = "WRIKE_API_TOKEN")]
        token: String,
        /// Start with this many users (`user{n}@example.com`, externalId
        /// `ext-{n}`), for measuring an account at scale.
        #[arg(long, default_value_t = 0)]
        seed_users: usize,
    },
}

/// `scimgate check`: every file given, and the config if given (or if no
/// file is); all problems are printed before the verdict.
async fn check(
    files: &[PathBuf],
    config: Option<PathBuf>,
    deny_warnings: bool,
    environment: config::Environment,
) -> anyhow::Result<()> {
    let config = match (config, files.is_empty()) {
        (Some(config), _) => Some(config),
        (None, true) => Some(PathBuf::from("scimgate.toml")),
        (None, false) => None,
    };
    let mut failed = Vec::new();
    let mut verdict = |path: &std::path::Path,
                       report: &scimgate::diagnostics::Report,
                       what: String| {
        let refused = report.has_errors() || (deny_warnings && report.warnings().next().is_some());
        if refused {
            eprint!("{report}");
            failed.push(path.display().to_string());
        } else {
            print!("{report}");
            println!("{}: ok ({what})", path.display());
        }
    };
    for path in files {
        let mut report = scimgate::diagnostics::Report::default();
        let what = match scimgate::diagnostics::SourceFile::read(path) {
            Err(diagnostic) => {
                report.push(diagnostic);
                "unreadable".to_string()
            }
            Ok(source)
                if source
                    .text
                    .parse::<toml::Table>()
                    .is_ok_and(|t| t.contains_key("upstream")) =>
            {
                match scimgate::mapping::compile(&source, &mut report) {
                    Some(mapping) => {
                        let ran = tested(&mapping, &mut report).await;
                        format!("upstream mapping `{}`, {ran} test(s) passed", mapping.name)
                    }
                    None => "upstream mapping".to_string(),
                }
            }
            Ok(source) => match scimgate::dialect::compile(&source, &mut report) {
                Some(d) => format!("dialect `{}`", d.name),
                None => "dialect".to_string(),
            },
        };
        verdict(path, &report, what);
    }
    if let Some(config) = config {
        match config::load_with(&config, environment) {
            Ok((gateway, mut report)) => {
                for upstream in &gateway.upstreams {
                    tested(&upstream.mapping, &mut report).await;
                }
                verdict(
                    &config,
                    &report,
                    format!(
                        "{} connection(s), {} upstream(s)",
                        gateway.connections.len(),
                        gateway.upstreams.len()
                    ),
                );
            }
            Err(report) => verdict(&config, &report, String::new()),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("invalid: {}", failed.join(", "))
    }
}

/// Runs a mapping's own tests; each failure becomes an error in `report`.
/// Returns how many ran.
async fn tested(
    mapping: &scimgate::mapping::UpstreamMapping,
    report: &mut scimgate::diagnostics::Report,
) -> usize {
    for failure in scimgate::explain::run_mapping_tests(mapping).await {
        report.push(failure);
    }
    mapping.tests.len()
}

fn parse_rate(text: &str) -> Result<Rate, String> {
    Rate::parse(text)
        .ok_or_else(|| format!("`{text}` is not a rate; expected e.g. 20/s or 600/min"))
}

fn database(path: &str) -> Database {
    if path == ":memory:" {
        Database::Memory
    } else {
        Database::File(PathBuf::from(path))
    }
}

/// `scimgate serve` once logging is set up: loads the config and serves
/// until a shutdown signal.
async fn serve_gateway(config: PathBuf) -> anyhow::Result<()> {
    let (gateway, report) = config::load(&config).map_err(|report| anyhow::anyhow!("{report}"))?;
    for warning in report.warnings() {
        tracing::warn!(%warning, "config warning");
    }
    let tls = match &gateway.server.tls {
        Some(files) => Some(Arc::new(server::tls::Tls::load(server::tls::TlsFiles {
            cert: files.cert.clone(),
            key: files.key.clone(),
        })?)),
        None => None,
    };
    let current = Arc::new(ArcSwap::from_pointee(server::router(&gateway)?));
    let listener = TcpListener::bind(gateway.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", gateway.server.listen))?;
    tracing::info!(
        listen = %gateway.server.listen,
        tls = tls.is_some(),
        connections = gateway.connections.len(),
        "serving"
    );
    let settings = gateway.server.listen_settings();
    let admin = match gateway.server.admin_listen {
        Some(address) => {
            let routes = Arc::new(ArcSwap::from_pointee(server::admin_router(&gateway)?));
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (admin_listen)"))?;
            tracing::info!(admin_listen = %address, "serving /healthz, /readyz and /metrics");
            let admin = server::listen::serve(
                listener,
                routes.clone(),
                settings.clone(),
                None,
                shutdown_signal(),
            );
            tokio::spawn(async move {
                if let Err(error) = admin.await {
                    tracing::error!(%error, "the admin listener failed");
                }
            });
            Some(server::reload::AdminRoutes { address, routes })
        }
        None => None,
    };
    let watched = gateway.server.watch.then(|| gateway.source_files());
    let reloader = server::reload::Reloader {
        config,
        routes: current.clone(),
        admin,
        tls: tls.clone(),
    };
    tokio::spawn(reloader.run(watched));
    server::listen::serve(listener, current, settings, tls, shutdown_signal())
        .await
        .context("server failed")
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // An error is a message for the operator, never a backtrace (anyhow
    // prints one from `main` when RUST_BACKTRACE is set).
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match cli.command {
        Command::Serve { config } => {
            // Log lines (the audit log's, by default) leave the request path:
            // a writer thread batches them into few writes. Lossless: a full
            // queue holds requests up rather than drop a line; the guard
            // flushes what is queued when `serve` ends (it waits up to 1 s
            // for a slow stdout, then the process exits regardless).
            let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
            let (log_writer, _flush_logs_on_exit) =
                tracing_appender::non_blocking::NonBlockingBuilder::default()
                    .lossy(false)
                    .thread_name("scimgate-log")
                    .finish(std::io::BufWriter::new(std::fs::File::from(stdout)));
            scimgate::audit::write_log_lines_to(log_writer.clone());
            let traces = telemetry::settings(|name| std::env::var(name).ok())?
                .map(|settings| telemetry::Exporter::start(&settings))
                .transpose()?;
            match &traces {
                // Unchanged without traces: per-layer filters cost every
                // event and span a little.
                None => tracing_subscriber::fmt()
                    .json()
                    .fmt_fields(scimgate::log_fields::JsonSpanFields)
                    .with_env_filter(filter)
                    .with_writer(log_writer)
                    .init(),
                Some(exporter) => {
                    use tracing_subscriber::prelude::*;
                    let logs = filter.add_directive(telemetry::LOGS_SKIP_TRACE_SPANS.parse()?);
                    tracing_subscriber::registry()
                        .with(
                            tracing_subscriber::fmt::layer()
                                .json()
                                .fmt_fields(scimgate::log_fields::JsonSpanFields)
                                .with_writer(log_writer)
                                .with_filter(logs),
                        )
                        .with(exporter.layer())
                        .init();
                }
            }
            let served = serve_gateway(config).await;
            if let Some(exporter) = traces {
                exporter.shutdown().await;
            }
            served
        }
        Command::Check {
            files,
            config,
            deny_warnings,
            no_environment,
        } => {
            let environment = if no_environment {
                config::Environment::Ignore
            } else {
                config::Environment::Read
            };
            check(&files, config, deny_warnings, environment).await
        }
        Command::Demo {
            listen,
            token,
            approved_domains,
            upstream,
            db,
            rate_limit,
        } => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(filter)
                .init();
            let token = token.unwrap_or_else(server::new_token);
            let settings = ServerSettings {
                listen,
                ..ServerSettings::default()
            };
            let db = db.unwrap_or_else(|| {
                match upstream {
                    demo::DemoUpstream::Legacy => "scimgate-demo.sqlite",
                    demo::DemoUpstream::Directory => "scimgate-demo-directory.sqlite",
                    demo::DemoUpstream::Wrike => "scimgate-demo-wrike.json",
                }
                .to_string()
            });
            let stored = (db != ":memory:").then(|| PathBuf::from(&db));
            let started = demo::start_upstream(
                upstream,
                stored.as_deref(),
                &token,
                &approved_domains,
                settings,
            )
            .await?;
            let mut gateway = started.config;
            for connection in &mut gateway.connections {
                connection.rate = rate_limit;
            }
            let router = server::router(&gateway)?;
            let listener = TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            println!("scimgate demo");
            println!("  SCIM base URL:  http://{listen}/scim/v2");
            println!("  bearer token:   {token}");
            println!(
                "  per IdP:        {}",
                demo::DEMO_CONNECTIONS[1..]
                    .iter()
                    .map(|(path, _)| format!("http://{listen}{path}"))
                    .collect::<Vec<_>>()
                    .join("  ")
            );
            println!("  upstream:       {}", started.description);
            println!("  approved:       {}", approved_domains.join(", "));
            if let Some(rate) = rate_limit {
                println!(
                    "  rate limit:     {} per {} s per connection",
                    rate.count,
                    rate.per.as_secs()
                );
            }
            serve(listener, router).await
        }
        Command::Explain {
            config,
            demo,
            connection,
            method,
            path,
            body,
            upstream_record,
            user_agent,
        } => {
            let gateway = if demo {
                demo::gateway_config(
                    SocketAddr::from(([127, 0, 0, 1], 9090)),
                    "demo-api-key",
                    "demo",
                    &["example.com".to_string()],
                    ServerSettings::default(),
                )?
            } else {
                config::load(&config)
                    .map_err(|report| anyhow::anyhow!("{report}"))?
                    .0
            };
            let read_json = |file: &PathBuf| -> anyhow::Result<serde_json::Value> {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", file.display()))
            };
            let question = scimgate::explain::Question {
                connection,
                method: method
                    .to_ascii_uppercase()
                    .parse()
                    .context("not an HTTP method")?,
                path,
                body: body.as_ref().map(read_json).transpose()?,
                user_agent,
                record: upstream_record.as_ref().map(read_json).transpose()?,
            };
            print!("{}", scimgate::explain::explain(&gateway, question).await?);
            Ok(())
        }
        Command::Token => {
            let token = server::new_token();
            println!("token (shown once; give it to the IdP): {token}");
            println!(
                "config line for the connection:       token_sha256 = \"{}\"",
                hex::encode(server::hash_token(&token))
            );
            Ok(())
        }
        Command::LegacyApi {
            listen,
            db,
            api_key,
            allow_duplicates,
        } => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(filter)
                .init();
            let mut api = LegacyApi::open(LegacyConfig {
                api_key,
                database: database(&db),
            })?;
            if allow_duplicates {
                api = api.allowing_duplicates()?;
            }
            let listener = TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            println!("reference legacy API on http://{listen}/api/v1");
            serve(listener, api.router()).await
        }
        Command::WrikeApi {
            listen,
            token,
            seed_users,
        } => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(filter)
                .init();
            let api = scimgate_reference::wrike::WrikeApi::open(
                scimgate_reference::wrike::WrikeConfig {
                    token,
                    account_id: "IEAAAAAA".into(),
                    database: scimgate_reference::wrike::Database::Memory,
                },
            )?;
            api.seed_contacts(seed_users, "example.com")?;
            let listener = TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            println!("reference Wrike API on http://{listen}/api/v4");
            serve(listener, api.router()).await
        }
    }
}

async fn serve(listener: TcpListener, router: axum::Router) -> anyhow::Result<()> {
    let settings = ServerSettings::default().listen_settings();
    server::listen::serve(listener, router, settings, None, shutdown_signal())
        .await
        .context("server failed")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
