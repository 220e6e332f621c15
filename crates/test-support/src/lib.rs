//! What the end-to-end suites in `tests/` share: the reference upstream APIs
//! and the real gateway router, each on its own loopback port, driven over
//! real HTTP by one client; the test token, users and mappings they use.

#![allow(
    clippy::disallowed_methods,
    reason = "test clients read small bodies the tests wrote, and time what they test"
)]

use std::net::SocketAddr;

use reqwest::{Method, StatusCode};
use scimgate::config::{GatewayConfig, Secret, ServerSettings};
use scimgate::{demo, server};
use scimgate_reference::directory::{DirectoryApi, DirectoryConfig};
use scimgate_reference::legacy::Database;
use serde_json::Value;

pub const TOKEN: &str = "e2e-token";
pub const API_KEY: &str = "e2e-upstream-key";

pub const CLIENT_SECRET: &str = "e2e-client-secret";

/// The reference upstream a harness runs behind the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// reference/src/legacy + mappings/upstream/legacy.toml
    Legacy,
    /// reference/src/directory + mappings/upstream/directory.toml
    Directory,
    /// reference/src/wrike + mappings/upstream/wrike.toml
    Wrike,
}

/// Every reference upstream, for suites that run against each.
pub const BACKENDS: [Backend; 3] = [Backend::Legacy, Backend::Directory, Backend::Wrike];

pub const WRIKE_TOKEN: &str = "e2e-wrike-token";

pub struct Harness {
    /// `http://127.0.0.1:PORT`, the gateway's root.
    pub root: String,
    /// The `auto` connection's SCIM base URL.
    pub gateway: String,
    pub upstream: String,
    pub backend: Backend,
    /// The directory API itself (shares its store), to count issued tokens.
    pub directory: Option<DirectoryApi>,
    http: reqwest::Client,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// A header's value, if it is there and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with(ServerSettings::default()).await
    }

    pub async fn start_with(settings: ServerSettings) -> Harness {
        Self::start_configured(settings, |_| {}).await
    }

    /// Starts with the demo config after `adjust` has changed it.
    pub async fn start_configured(
        settings: ServerSettings,
        adjust: impl FnOnce(&mut GatewayConfig),
    ) -> Harness {
        Self::start_backend(Backend::Legacy, settings, adjust).await
    }

    pub async fn start_on(backend: Backend) -> Harness {
        Self::start_backend(backend, ServerSettings::default(), |_| {}).await
    }

    pub async fn start_backend(
        backend: Backend,
        settings: ServerSettings,
        adjust: impl FnOnce(&mut GatewayConfig),
    ) -> Harness {
        let domains = ["example.com".to_string()];
        let mut directory = None;
        let (upstream, mut config, upstream_base) = match backend {
            Backend::Legacy => {
                let upstream = demo::start_legacy(Database::Memory, API_KEY).await.unwrap();
                let config =
                    demo::gateway_config(upstream, API_KEY, TOKEN, &domains, settings).unwrap();
                (upstream, config, format!("http://{upstream}/api/v1"))
            }
            Backend::Directory => {
                let api = DirectoryApi::open(DirectoryConfig {
                    client_id: "scimgate".into(),
                    client_secret: CLIENT_SECRET.into(),
                    database: scimgate_reference::directory::Database::Memory,
                })
                .unwrap();
                directory = Some(api.clone());
                let upstream = api
                    .spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
                    .await
                    .unwrap();
                let mut report = scimgate::diagnostics::Report::default();
                let mapping = scimgate::mapping::load(
                    std::path::Path::new("mappings/upstream/directory.toml"),
                    &mut report,
                )
                .unwrap_or_else(|| panic!("{report}"));
                let secrets = [("client_secret".to_string(), Secret::new(CLIENT_SECRET))]
                    .into_iter()
                    .collect();
                let config =
                    demo::config_for(mapping, upstream, secrets, TOKEN, &domains, settings)
                        .unwrap();
                (upstream, config, format!("http://{upstream}/v2"))
            }
            Backend::Wrike => {
                let api = scimgate_reference::wrike::WrikeApi::open(
                    scimgate_reference::wrike::WrikeConfig {
                        token: WRIKE_TOKEN.into(),
                        account_id: "IEAAAAAA".into(),
                        database: scimgate_reference::wrike::Database::Memory,
                    },
                )
                .unwrap();
                let upstream = api
                    .spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
                    .await
                    .unwrap();
                let mut report = scimgate::diagnostics::Report::default();
                let mapping = scimgate::mapping::load(
                    std::path::Path::new("mappings/upstream/wrike.toml"),
                    &mut report,
                )
                .unwrap_or_else(|| panic!("{report}"));
                let secrets = [("token".to_string(), Secret::new(WRIKE_TOKEN))]
                    .into_iter()
                    .collect();
                let config =
                    demo::config_for(mapping, upstream, secrets, TOKEN, &domains, settings)
                        .unwrap();
                (upstream, config, format!("http://{upstream}/api/v4"))
            }
        };
        let _ = upstream;
        adjust(&mut config);
        let address = serve(server::router(&config).unwrap()).await;
        Harness {
            root: format!("http://{address}"),
            gateway: format!("http://{address}/scim/v2"),
            upstream: upstream_base,
            backend,
            directory,
            http: reqwest::Client::new(),
        }
    }

    /// A SCIM call with the connection's token.
    pub async fn scim(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.scim_with(method, path, body, Some(TOKEN), &[]).await
    }

    pub async fn scim_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.gateway));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        read_reply(request.send().await.unwrap()).await
    }

    /// Any request to the gateway, `path` from its root.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(String, String)],
        body: Option<String>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.root));
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        read_reply(request.send().await.unwrap()).await
    }

    /// Raw body (not necessarily JSON) to the gateway.
    pub async fn scim_raw(
        &self,
        method: Method,
        path: &str,
        body: &str,
        content_type: &str,
    ) -> Reply {
        let request = self
            .http
            .request(method, format!("{}{path}", self.gateway))
            .bearer_auth(TOKEN)
            .header("content-type", content_type)
            .body(body.to_string());
        read_reply(request.send().await.unwrap()).await
    }

    /// The upstream's own view, read directly with its credentials.
    pub async fn upstream(&self, path: &str) -> Reply {
        let request = self.http.get(format!("{}{path}", self.upstream));
        let request = match self.backend {
            Backend::Legacy => request.header("x-api-key", API_KEY),
            Backend::Wrike => request.bearer_auth(WRIKE_TOKEN),
            Backend::Directory => {
                let root = self.upstream.trim_end_matches("/v2");
                let token: Value = self
                    .http
                    .post(format!("{root}/oauth/token"))
                    .basic_auth("scimgate", Some(CLIENT_SECRET))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                request.bearer_auth(token["access_token"].as_str().unwrap())
            }
        };
        read_reply(request.send().await.unwrap()).await
    }

    /// A user as the upstream keeps it, in one shape for every backend:
    /// userName, givenName, familyName, email, phone, title, department,
    /// organization, userType (SCIM's names), active, deleted, externalId.
    /// `None` when the upstream has no such record.
    pub async fn upstream_user(&self, id: &str) -> Option<Value> {
        let (path, fields): (String, &[(&str, &str)]) = match self.backend {
            Backend::Legacy => (
                format!("/users/{id}"),
                &[
                    ("userName", "/login"),
                    ("givenName", "/first_name"),
                    ("familyName", "/last_name"),
                    ("email", "/email"),
                    ("phone", "/phone"),
                    ("title", "/job_title"),
                    ("department", "/dept"),
                    ("organization", "/org"),
                    ("externalId", "/external_ref"),
                ],
            ),
            Backend::Directory => (
                format!("/users/{id}"),
                &[
                    ("userName", "/username"),
                    ("givenName", "/profile/firstName"),
                    ("familyName", "/profile/lastName"),
                    ("email", "/contact/email"),
                    ("phone", "/contact/phones/0/number"),
                    ("title", "/profile/title"),
                    ("department", "/profile/department"),
                    ("organization", "/profile/company"),
                    ("externalId", "/externalKey"),
                ],
            ),
            Backend::Wrike => (
                format!("/contacts/{id}?fields=%5B%22metadata%22%5D"),
                &[
                    ("userName", "/profiles/0/email"),
                    ("givenName", "/firstName"),
                    ("familyName", "/lastName"),
                    ("email", "/profiles/0/email"),
                    ("phone", "/phone"),
                    ("title", "/title"),
                    ("organization", "/companyName"),
                ],
            ),
        };
        let reply = self.upstream(&path).await;
        if reply.status == 404 {
            return None;
        }
        assert_eq!(reply.status, 200, "{}", reply.body);
        let raw = match self.backend {
            // Every answer is {"kind", "data": [record]}.
            Backend::Wrike => reply.body["data"][0].clone(),
            _ => reply.body,
        };
        let mut view = serde_json::Map::new();
        for (name, pointer) in fields {
            let value = match raw.pointer(pointer) {
                // Wrike answers an unset text field as "".
                Some(Value::String(text)) if text.is_empty() && self.backend == Backend::Wrike => {
                    Value::Null
                }
                Some(value) => value.clone(),
                None => Value::Null,
            };
            view.insert(name.to_string(), value);
        }
        let (user_type, active, deleted) = match self.backend {
            Backend::Legacy => {
                let role = raw["role"].as_str().unwrap_or_default();
                let status = raw["status"].as_str().unwrap_or_default();
                (legacy_role(role), status == "enabled", status == "archived")
            }
            Backend::Directory => (
                directory_kind(raw["profile"]["kind"].as_str().unwrap_or_default()),
                raw["suspended"] == false,
                raw["deleted"] == true,
            ),
            Backend::Wrike => {
                let metadata = |key: &str| {
                    raw["metadata"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|entry| entry["key"] == key)
                        .map(|entry| entry["value"].clone())
                        .unwrap_or(Value::Null)
                };
                view.insert("department".into(), metadata("department"));
                view.insert("externalId".into(), metadata("externalId"));
                (
                    wrike_user_type(
                        raw["profiles"][0]["userTypeId"]
                            .as_str()
                            .unwrap_or_default(),
                    ),
                    raw["profiles"][0]["active"] == true,
                    raw["deleted"] == true,
                )
            }
        };
        view.insert("userType".into(), Value::from(user_type));
        view.insert("active".into(), Value::from(active));
        view.insert("deleted".into(), Value::from(deleted));
        Some(Value::Object(view))
    }

    /// A group as the upstream keeps it: `{name, members: [sorted user ids]}`.
    pub async fn upstream_group(&self, id: &str) -> Option<Value> {
        let (group_path, name_field, members_path, member_pointer) = match self.backend {
            Backend::Legacy => (
                format!("/teams/{id}"),
                "name",
                format!("/teams/{id}/members"),
                "/user_id",
            ),
            Backend::Directory => (
                format!("/groups/{id}"),
                "name",
                format!("/users?groupId={id}"),
                "/id",
            ),
            Backend::Wrike => {
                let group = self.upstream(&format!("/groups/{id}")).await;
                if group.status == 404 {
                    return None;
                }
                let record = &group.body["data"][0];
                let mut members: Vec<String> = record["memberIds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m.as_str().map(str::to_string))
                    .collect();
                members.sort();
                return Some(serde_json::json!({"name": record["title"], "members": members}));
            }
        };
        let group = self.upstream(&group_path).await;
        if group.status == 404 {
            return None;
        }
        let listed = self.upstream(&members_path).await.body;
        let list = listed
            .as_array()
            .or_else(|| listed["items"].as_array())
            .cloned()
            .unwrap_or_default();
        let mut members: Vec<String> = list
            .iter()
            .filter_map(|m| m.pointer(member_pointer))
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect();
        members.sort();
        Some(serde_json::json!({"name": group.body[name_field], "members": members}))
    }
}

/// A response read whole: its body as JSON, else as text, else null.
pub async fn read_reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let body = json_or_text(response.text().await.unwrap());
    Reply {
        status,
        headers,
        body,
    }
}

/// Asserts a SCIM error body (RFC 7644 §3.12) with a correlation id.
pub fn assert_scim_error(reply: &Reply, status: u16, scim_type: Option<&str>) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
    assert_eq!(
        reply.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{}",
        reply.body
    );
    assert_eq!(reply.body["status"], status.to_string(), "{}", reply.body);
    assert!(
        reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{}",
        reply.body
    );
    let request_id = reply.headers["x-request-id"].to_str().unwrap();
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .ends_with(&format!("(correlation id {request_id})")),
        "{}",
        reply.body
    );
    match scim_type {
        Some(t) => assert_eq!(reply.body["scimType"], t, "{}", reply.body),
        None => assert!(reply.body.get("scimType").is_none(), "{}", reply.body),
    }
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/scim+json"),
        "{:?}",
        reply.headers
    );
}

fn legacy_role(role: &str) -> &'static str {
    match role {
        "member" => "Regular",
        "external" => "External",
        "collaborator" => "Collaborator",
        "contributor" => "Contributor",
        "viewer" => "Viewer",
        _ => "?",
    }
}

fn wrike_user_type(user_type_id: &str) -> &'static str {
    match user_type_id {
        "KTAAAAAA" => "Regular",
        "KTAAAAAB" => "External",
        "KTAAAAAC" => "Contributor",
        "KTAAAAAD" => "Collaborator",
        "KTAAAAAE" => "Viewer",
        _ => "?",
    }
}

fn directory_kind(kind: &str) -> &'static str {
    match kind {
        "standard" => "Regular",
        "guest" => "External",
        "partner" => "Collaborator",
        "editor" => "Contributor",
        "readonly" => "Viewer",
        _ => "?",
    }
}

/// A gateway (the demo's connections) in front of the upstream at `upstream`,
/// described by the mapping `text`, after `adjust`; returns its root URL.
pub async fn gateway_for(
    text: &str,
    upstream: SocketAddr,
    secrets: &[(&str, &str)],
    token: &str,
    adjust: impl FnOnce(&mut GatewayConfig),
) -> String {
    let mut report = scimgate::diagnostics::Report::default();
    let source = scimgate::diagnostics::SourceFile::new("test-mapping.toml", text);
    let mapping =
        scimgate::mapping::compile(&source, &mut report).unwrap_or_else(|| panic!("{report}"));
    let secrets = secrets
        .iter()
        .map(|(k, v)| (k.to_string(), Secret::new(*v)))
        .collect();
    let mut config = demo::config_for(
        mapping,
        upstream,
        secrets,
        token,
        &["example.com".to_string()],
        ServerSettings::default(),
    )
    .unwrap();
    adjust(&mut config);
    let address = serve(server::router(&config).unwrap()).await;
    format!("http://{address}")
}

/// Serves `router` on a loopback port as production does (`listen::serve`:
/// peer addresses, correlation ids, deadlines) and returns the address.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(scimgate::server::listen::serve(
        listener,
        router,
        scimgate::server::listen::ListenSettings::default(),
        None,
        std::future::pending(),
    ));
    address
}

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const USER_TYPE: &str = "urn:ietf:params:scim:schemas:extension:scimgate:2.0:User";

/// A fully populated user, as the lifecycle tests create her.
pub fn alice() -> Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE, USER_TYPE],
        "userName": "alice@example.com",
        "externalId": "ext-alice",
        "name": {"givenName": "Alice", "familyName": "Liddell"},
        "emails": [{"value": "alice@example.com", "type": "work", "primary": true}],
        "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
        "title": "Engineer",
        "active": true,
        ENTERPRISE: {"organization": "Wonderland", "department": "R&D"},
        USER_TYPE: {"userType": "Contributor"}
    })
}

/// The users of a scripted `/people` API with string ids (so path values
/// reach it), for wiremock-backed tests; each test adds its `[upstream]`.
pub const PEOPLE_USERS: &str = r#"
[users]
id = { field = "id", type = "string" }
# A scripted upstream answers only the calls each test expects: no look-up
# before a create.
unique_user_names = "upstream"

[users.list]
method = "GET"
path = "/people"

[users.get]
method = "GET"
path = "/people/{id}"

[users.create]
method = "POST"
path = "/people"

[users.update]
method = "PATCH"
path = "/people/{id}"
partial = true

[users.delete]
hard = { method = "DELETE", path = "/people/{id}" }

[[users.attributes]]
scim = "userName"
field = "mail"
"#;

/// The calls of a scripted `/teams` group API with string ids; each test
/// adds its attributes and members.
pub const TEAMS_GROUPS: &str = r#"
[groups]
id = { field = "id", type = "string" }

[groups.list]
method = "GET"
path = "/teams"

[groups.get]
method = "GET"
path = "/teams/{id}"

[groups.create]
method = "POST"
path = "/teams"

[groups.update]
method = "PATCH"
path = "/teams/{id}"
partial = true

[groups.delete]
hard = { method = "DELETE", path = "/teams/{id}" }
"#;

/// `upstream` (an `[upstream]` table), the `/people` users, then `extra`.
pub fn people_mapping(upstream: &str, extra: &str) -> String {
    format!("{upstream}{PEOPLE_USERS}{extra}")
}

/// The demo config in front of a fresh in-memory legacy API, for tests that
/// build their own router or listener.
pub async fn demo_config(settings: ServerSettings) -> GatewayConfig {
    let upstream = demo::start_legacy(Database::Memory, API_KEY).await.unwrap();
    let domains = ["example.com".to_string()];
    demo::gateway_config(upstream, API_KEY, TOKEN, &domains, settings).unwrap()
}

/// Serves `router` on a loopback port through `listen::serve` with
/// `settings`, and returns the address.
pub async fn serve_with(
    router: axum::Router,
    settings: scimgate::server::listen::ListenSettings,
) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(scimgate::server::listen::serve(
        listener,
        router,
        settings,
        None,
        std::future::pending(),
    ));
    address
}

/// A SCIM call at `base` (a connection's base URL) with the test token.
pub async fn scim_request(base: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
    scim_request_as(TOKEN, base, method, path, body).await
}

/// [`scim_request`] with another bearer token.
pub async fn scim_request_as(
    token: &str,
    base: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let mut request = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/scim+json")
            .body(body.to_string());
    }
    read_reply(request.send().await.unwrap()).await
}

/// [`scim_request`]'s status and JSON body (null when there is none).
pub async fn scim_at(base: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let reply = scim_request(base, method, path, body).await;
    let body = if reply.body.is_string() {
        Value::Null
    } else {
        reply.body
    };
    (reply.status.as_u16(), body)
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The reference legacy API over HTTPS (scimgate's own listener) with a
/// certificate for `localhost` from a private CA: (its port, the CA's PEM).
pub async fn legacy_behind_a_private_ca(api_key: &str) -> (u16, String, tempfile::TempDir) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use scimgate::server::{listen, tls};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = tls::TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    };
    std::fs::write(&files.cert, leaf.pem()).unwrap();
    std::fs::write(&files.key, leaf_key.serialize_pem()).unwrap();
    let legacy =
        scimgate_reference::legacy::LegacyApi::open(scimgate_reference::legacy::LegacyConfig {
            api_key: api_key.into(),
            database: scimgate_reference::legacy::Database::Memory,
        })
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(listen::serve(
        listener,
        legacy.router(),
        listen::ListenSettings::default(),
        Some(std::sync::Arc::new(tls::Tls::load(files).unwrap())),
        std::future::pending(),
    ));
    (port, ca_cert.pem(), dir)
}

/// A body as JSON if it is JSON, as a string if not, null if empty.
pub fn json_or_text(text: String) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }
}

/// A `redis-server` of the test's own on a free loopback port, without
/// persistence; stopped when dropped. `.ci/test` installs the Debian package.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on its port, once it accepts connections.
    pub async fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is not installed: `bash .ci/test` installs it (Debian package redis-server)");
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Kills it; its data is gone, as after a crash without persistence.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One `scimgate serve` process, killed when dropped.
pub struct Replica {
    pub port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Replica {
    /// Serves `config` once it answers `/healthz`: `{port}` in it becomes a
    /// free port, `files` are written beside it first (relative paths in the
    /// config name them), and `env` is set for the process.
    pub async fn start(
        binary: &str,
        config: &str,
        files: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let port = free_port();
        let path = dir.path().join("scimgate.toml");
        std::fs::write(&path, config.replace("{port}", &port.to_string())).unwrap();
        let child = std::process::Command::new(binary)
            .args(["serve", "--config"])
            .arg(&path)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let replica = Replica {
            port,
            child,
            _dir: dir,
        };
        for _ in 0..200 {
            if reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
                .await
                .is_ok()
            {
                return replica;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("scimgate serve did not start on port {port}");
    }

    pub fn root(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills it at once, as a crash would: its locks expire by their TTL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The reference legacy API without unique logins and emails, as many
/// legacy APIs are, on a loopback port of its own.
pub async fn legacy_taking_duplicates() -> SocketAddr {
    use scimgate_reference::legacy::{Database, LegacyApi, LegacyConfig};
    let api = LegacyApi::open(LegacyConfig {
        api_key: API_KEY.into(),
        database: Database::Memory,
    })
    .unwrap()
    .allowing_duplicates()
    .unwrap();
    serve(api.router()).await
}

/// How many users the legacy API at `upstream` holds with this login.
pub async fn legacy_users_with_login(upstream: SocketAddr, login: &str) -> usize {
    let reply = read_reply(
        reqwest::Client::new()
            .get(format!("http://{upstream}/api/v1/users?login={login}"))
            .header("x-api-key", API_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    reply.body.as_array().map_or(0, Vec::len)
}
