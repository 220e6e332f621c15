//! Validates a parsed config file into the runtime model: paths resolved,
//! mappings and dialects loaded, secrets read, every problem reported at
//! `file:line:col`.

use super::file::*;
use super::*;

pub(super) fn compile(
    source: &SourceFile,
    mut file: ConfigFile,
    base_dir: &Path,
    environment: Environment,
    report: &mut Report,
) -> Option<GatewayConfig> {
    let mut upstreams = Vec::new();
    for (name, spec) in file.upstreams {
        let mapping_path = base_dir.join(spec.mapping.get_ref());
        let Some(mut mapping) = mapping::load(&mapping_path, report) else {
            report.push(source.error_at(
                Some(spec.mapping.span()),
                format!("upstream `{name}`: its mapping file has errors (listed above)"),
            ));
            continue;
        };
        if let Some(base_url) = &spec.base_url {
            match reqwest::Url::parse(base_url.get_ref()) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {
                    mapping.base_url = base_url.get_ref().trim_end_matches('/').to_string();
                }
                _ => report.push(source.error_at(
                    Some(base_url.span()),
                    "base_url must be an http(s) URL, e.g. \"https://users.internal.example\"",
                )),
            }
        }
        let mut secrets = HashMap::new();
        for (secret_name, secret) in &spec.secrets {
            let what = format!("secret `{secret_name}`");
            if let Some(value) = read_secret(&what, secret, base_dir, environment, source, report) {
                secrets.insert(secret_name.clone(), value);
            }
        }
        if let Some(needed) = mapping.auth.secret_name()
            && !spec.secrets.contains_key(needed)
        {
            report.push(source.error_at(
                Some(spec.mapping.span()),
                format!(
                    "upstream `{name}`: its mapping authenticates with secret `{needed}`; \
                     add [upstreams.{name}.secrets] {needed} = {{ env = \"…\" }}"
                ),
            ));
        }
        let rate = spec.rate_limit.as_ref().and_then(|text| {
            let rate = Rate::parse(text.get_ref());
            if rate.is_none() {
                report.push(source.error_at(Some(text.span()), RATE_EXPECTED));
            }
            rate
        });
        let tls = spec
            .tls
            .as_ref()
            .map(|tls| upstream_tls(source, report, tls, base_dir))
            .unwrap_or_default();
        upstreams.push(Upstream {
            name,
            mapping: Arc::new(mapping),
            secrets,
            tls,
            budget: Budget {
                rate,
                max_in_flight: spec.max_in_flight.filter(|n| *n > 0),
                queue_timeout: std::time::Duration::from_millis(
                    spec.queue_timeout_ms.unwrap_or(5_000),
                ),
                max_retry_after_s: spec.max_retry_after_s.unwrap_or(MAX_RETRY_AFTER_S).max(1),
                breaker: spec.breaker,
            },
        });
    }

    if let Some(tls) = &mut file.server.tls {
        tls.cert = base_dir.join(&tls.cert);
        tls.key = base_dir.join(&tls.key);
    }
    if let Some(audit) = &mut file.server.audit_log {
        *audit = base_dir.join(&*audit);
    }
    if file.server.header_read_timeout_ms == 0 || file.server.request_timeout_ms == 0 {
        report.push(source.error_at(
            None,
            "[server] header_read_timeout_ms and request_timeout_ms must be above 0",
        ));
    }
    for written in std::mem::take(&mut file.server.trusted_proxies_written) {
        match written.get_ref().parse::<ProxyNet>() {
            Ok(net) => file.server.trusted_proxies.push(net),
            Err(message) => report.push(source.error_at(Some(written.span()), message)),
        }
    }
    if file.server.admin_listen == Some(file.server.listen) {
        report.push(source.error_at(
            key_span(source, "admin_listen"),
            "admin_listen must be another address than listen (or left out to serve /readyz and /metrics on listen)",
        ));
    }
    let dialects = match &file.server.dialects_dir {
        Some(dir) => crate::dialect::load_dir(&base_dir.join(dir), report),
        None => crate::dialect::embedded(),
    };
    let mut connections = Vec::new();
    let mut seen_paths: HashMap<String, String> = HashMap::new();
    for (name, spec) in file.connections {
        let base_path = spec.base_path.get_ref().trim_end_matches('/').to_string();
        if !valid_base_path(&base_path) {
            report.push(source.error_at(
                Some(spec.base_path.span()),
                "base_path must start with `/` and use only letters, digits, `-`, `_` and `/`, e.g. \"/scim/v2\"",
            ));
        } else if let Some(other) = seen_paths.insert(base_path.to_ascii_lowercase(), name.clone())
        {
            report.push(source.error_at(
                Some(spec.base_path.span()),
                format!("base_path `{base_path}` is already used by connection `{other}`"),
            ));
        }
        if !upstreams.iter().any(|u| u.name == *spec.upstream.get_ref())
            && !file_mentions_upstream(source, spec.upstream.get_ref())
        {
            report.push(source.error_at(
                Some(spec.upstream.span()),
                format!(
                    "unknown upstream `{}`; expected one of the [upstreams.<name>] tables",
                    spec.upstream.get_ref()
                ),
            ));
        }
        let token_sha256 = match parse_sha256(spec.token_sha256.get_ref()) {
            Some(hash) => hash,
            None => {
                report.push(source.error_at(
                    Some(spec.token_sha256.span()),
                    "token_sha256 must be 64 hex digits; `scimgate token` prints a token and its hash",
                ));
                [0; 32]
            }
        };
        let mut approved_domains = Vec::new();
        for domain in &spec.approved_domains {
            match normalise_domain(domain.get_ref()) {
                Some(domain) => approved_domains.push(domain),
                None => report.push(source.error_at(
                    Some(domain.span()),
                    format!(
                        "`{}` is not a domain name, e.g. \"example.com\"",
                        domain.get_ref()
                    ),
                )),
            }
        }
        if approved_domains.is_empty() {
            report.push(source.warning_at(
                Some(spec.base_path.span()),
                format!("connection `{name}` approves no email domain: every user create will be refused"),
            ));
        }
        let dialect = match &spec.dialect {
            None => "auto".to_string(),
            Some(dialect) => {
                if dialects.choice(dialect.get_ref()).is_none() {
                    report.push(source.error_at(
                        Some(dialect.span()),
                        format!(
                            "unknown dialect `{}`; expected `auto` or one of: {}",
                            dialect.get_ref(),
                            dialects.names().join(", ")
                        ),
                    ));
                }
                dialect.get_ref().clone()
            }
        };
        warn_dropped_attributes(
            source, report, &spec, &name, &dialect, &dialects, &upstreams,
        );
        let rate = spec.rate_limit.as_ref().and_then(|text| {
            let mut rate = Rate::parse(text.get_ref());
            if rate.is_none() {
                report.push(source.error_at(Some(text.span()), RATE_EXPECTED));
            }
            if let (Some(rate), Some(burst)) =
                (&mut rate, spec.burst.and_then(std::num::NonZeroU32::new))
            {
                rate.burst = burst;
            }
            rate
        });
        let public_url = spec.public_url.as_ref().and_then(|url| {
            let public_url = valid_public_url(url.get_ref());
            if public_url.is_none() {
                report.push(source.error_at(
                    Some(url.span()),
                    "public_url must be an http(s) URL without credentials, query or fragment, e.g. \"https://scim.example.com/scim/v2\"",
                ));
            }
            public_url
        });
        connections.push(Connection {
            name,
            dialect,
            public_url,
            rate,
            max_wait: spec.max_wait_ms.map(std::time::Duration::from_millis),
            base_path,
            upstream: spec.upstream.into_inner(),
            token_sha256,
            approved_domains,
            hard_delete: spec.hard_delete,
        });
    }
    let cluster = file
        .cluster
        .as_ref()
        .and_then(|spec| cluster(spec, base_dir, environment, source, report));
    // An in-flight slot lasts the lock TTL and is not kept alive: a call
    // still running past it would free its slot for another replica.
    if let (Some(settings), Some(spec)) = (&cluster, &file.cluster) {
        for upstream in upstreams
            .iter()
            .filter(|u| u.budget.max_in_flight.is_some())
        {
            if settings.lock_ttl <= upstream.mapping.timeout {
                let span = spec
                    .lock_ttl_ms
                    .as_ref()
                    .map_or_else(|| spec.redis_url.span(), |ttl| ttl.span());
                report.push(source.error_at(
                    Some(span),
                    format!(
                        "[cluster] lock_ttl_ms ({} ms) must be above upstream `{}`'s timeout_ms \
                         ({} ms): its in-flight slots last that long",
                        settings.lock_ttl.as_millis(),
                        upstream.name,
                        upstream.mapping.timeout.as_millis()
                    ),
                ));
            }
        }
    }
    Some(GatewayConfig {
        server: file.server,
        cluster,
        dialects,
        upstreams,
        connections,
    })
}

/// A secret's value from where the config says it is; `what` names it in
/// the message when it cannot be read.
fn read_secret(
    what: &str,
    secret: &Spanned<SecretSource>,
    base_dir: &Path,
    environment: Environment,
    source: &SourceFile,
    report: &mut Report,
) -> Option<Secret> {
    let value = match secret.get_ref() {
        _ if environment == Environment::Ignore => Ok(String::new()),
        SecretSource::Env(var) => {
            std::env::var(var).map_err(|_| format!("{what}: environment variable {var} is not set"))
        }
        SecretSource::File(file) => std::fs::read_to_string(base_dir.join(file))
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|e| format!("{what}: cannot read {}: {e}", file.display())),
        SecretSource::Value(value) => {
            report.push(source.warning_at(
                Some(secret.span()),
                format!("{what} is written in the config; prefer {{ env = \"…\" }} or {{ file = \"…\" }}"),
            ));
            Ok(value.clone())
        }
    };
    match value {
        Ok(value) => Some(Secret(value)),
        Err(message) => {
            report.push(source.error_at(Some(secret.span()), message));
            None
        }
    }
}

/// `[cluster]`: the Redis the replicas share, checked as far as it can be
/// without connecting (a gateway starts while Redis is down).
fn cluster(
    spec: &ClusterSpec,
    base_dir: &Path,
    environment: Environment,
    source: &SourceFile,
    report: &mut Report,
) -> Option<ClusterSettings> {
    let redis_url = read_secret(
        "[cluster] redis_url",
        &spec.redis_url,
        base_dir,
        environment,
        source,
        report,
    )?;
    let scheme_ok = environment == Environment::Ignore
        || reqwest::Url::parse(redis_url.expose())
            .is_ok_and(|url| matches!(url.scheme(), "redis" | "rediss") && url.host().is_some());
    if !scheme_ok {
        // The value may hold a password: not quoted.
        report.push(source.error_at(
            Some(spec.redis_url.span()),
            "[cluster] redis_url must be a redis://host:port (or rediss:// for TLS) URL",
        ));
        return None;
    }
    let mut positive = |value: Option<&Spanned<u64>>, default: u64, key: &str| match value {
        Some(v) if *v.get_ref() == 0 => {
            report
                .push(source.error_at(Some(v.span()), format!("[cluster] {key} must be above 0")));
            None
        }
        Some(v) => Some(Duration::from_millis(*v.get_ref())),
        None => Some(Duration::from_millis(default)),
    };
    let timeout = positive(spec.timeout_ms.as_ref(), 250, "timeout_ms");
    let lock_ttl = positive(spec.lock_ttl_ms.as_ref(), 30_000, "lock_ttl_ms");
    Some(ClusterSettings {
        redis_url,
        key_prefix: spec
            .key_prefix
            .clone()
            .unwrap_or_else(|| "scimgate:".into()),
        timeout: timeout?,
        lock_ttl: lock_ttl?,
        on_unavailable: spec.on_unavailable.unwrap_or_default(),
    })
}

/// Warns, per connection, about user attributes its IdP dialect sends by
/// default that the upstream mapping does not store (they will be dropped).
fn warn_dropped_attributes(
    source: &SourceFile,
    report: &mut Report,
    spec: &ConnectionSpec,
    name: &str,
    dialect: &str,
    dialects: &Dialects,
    upstreams: &[Upstream],
) {
    let Some(upstream) = upstreams
        .iter()
        .find(|u| u.name == *spec.upstream.get_ref())
    else {
        return;
    };
    let candidates: Vec<_> = match dialects.choice(dialect) {
        Some(crate::dialect::DialectChoice::Fixed(d)) => vec![d],
        Some(crate::dialect::DialectChoice::Auto { candidates, .. }) => candidates,
        None => return,
    };
    let span = spec
        .dialect
        .as_ref()
        .map(|d| d.span())
        .unwrap_or(spec.base_path.span());
    for candidate in candidates {
        let dropped: Vec<String> = candidate
            .sends
            .iter()
            .filter(|path| !upstream.mapping.users.stores(path))
            .map(|path| path.to_string())
            .collect();
        if !dropped.is_empty() {
            report.push(source.warning_at(
                Some(span.clone()),
                format!(
                    "connection `{name}`: {} sends {} by default, which upstream `{}`'s mapping does not store; they will be dropped",
                    candidate.name,
                    dropped.join(", "),
                    upstream.name
                ),
            ));
        }
    }
}

fn upstream_tls(
    source: &SourceFile,
    report: &mut Report,
    spec: &Spanned<UpstreamTlsSpec>,
    base_dir: &Path,
) -> UpstreamTls {
    let mut read = |path: &PathBuf, what: &str| match std::fs::read(base_dir.join(path)) {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            report.push(source.error_at(
                Some(spec.span()),
                format!(
                    "upstream tls: cannot read the {what} {}: {error}",
                    path.display()
                ),
            ));
            None
        }
    };
    let tls = spec.get_ref();
    let ca_pem = tls.ca.as_ref().and_then(|p| read(p, "CA file"));
    let identity_pem = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            match (read(cert, "client certificate"), read(key, "client key")) {
                (Some(mut cert), Some(key)) => {
                    cert.push(b'\n');
                    cert.extend(key);
                    Some(Secret(String::from_utf8_lossy(&cert).into_owned()))
                }
                _ => None,
            }
        }
        (None, None) => None,
        _ => {
            report.push(source.error_at(
                Some(spec.span()),
                "upstream tls: give both client_cert and client_key, or neither",
            ));
            None
        }
    };
    UpstreamTls {
        ca_pem,
        identity_pem,
    }
}

const RATE_EXPECTED: &str =
    "rate_limit must be a count per unit, e.g. \"20/s\", \"600/min\" or \"5000/h\"";

/// Where `key = …` is written, for checks made after deserialising (the
/// key's first assignment at the start of a line; whole file if none).
fn key_span(source: &SourceFile, key: &str) -> Option<std::ops::Range<usize>> {
    let mut offset = 0;
    for line in source.text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            let start = offset + (line.len() - trimmed.len());
            return Some(start..start + key.len());
        }
        offset += line.len();
    }
    None
}

/// An upstream whose mapping failed is already reported; don't pile on.
fn file_mentions_upstream(source: &SourceFile, name: &str) -> bool {
    source.text.contains(&format!("[upstreams.{name}]"))
}

/// `url` without its trailing `/`, if it can be the base of answered URLs.
fn valid_public_url(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let fit = matches!(parsed.scheme(), "http" | "https")
        && parsed.host_str().is_some()
        && parsed.username().is_empty()
        && parsed.password().is_none()
        && parsed.query().is_none()
        && parsed.fragment().is_none();
    fit.then(|| url.trim_end_matches('/').to_string())
}

fn valid_base_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() > 1
        && !path.contains("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_'))
}

fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text.trim()).ok()?;
    bytes.try_into().ok()
}

/// Lower-cases and drops trailing dots so `Example.COM.` and `example.com` agree.
pub fn normalise_domain(domain: &str) -> Option<String> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    valid.then_some(domain)
}
