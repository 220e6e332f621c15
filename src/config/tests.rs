use super::*;

fn compile_text(text: &str) -> (Option<GatewayConfig>, Report) {
    let source = SourceFile::new("gateway.toml", text);
    let mut report = Report::default();
    let file: ConfigFile = match source.parse_toml() {
        Ok(file) => file,
        Err(d) => {
            report.push(d);
            return (None, report);
        }
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = compile(&source, file, root, Environment::Read, &mut report);
    (config, report)
}

const HASH: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

#[test]
fn valid_config_compiles_with_mapping_and_secret() {
    let text = format!(
        r#"
[upstreams.legacy]
mapping = "mappings/upstream/legacy.toml"
base_url = "http://127.0.0.1:1"
secrets.api_key = {{ value = "k" }}

[connections.acme]
base_path = "/scim/v2/"
upstream = "legacy"
token_sha256 = "{HASH}"
approved_domains = ["Example.COM."]
"#
    );
    let (config, report) = compile_text(&text);
    assert!(!report.has_errors(), "{report}");
    let config = config.unwrap();
    assert_eq!(config.connections[0].base_path, "/scim/v2");
    assert_eq!(config.connections[0].approved_domains, ["example.com"]);
    assert_eq!(config.upstreams[0].mapping.base_url, "http://127.0.0.1:1");
    // A literal secret is allowed but warned about.
    let warnings: Vec<String> = report.warnings().map(|w| w.to_string()).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("secret `api_key` is written in the config")),
        "{warnings:?}"
    );
    // The `auto` connection may meet Entra, which sends addresses the mapping drops.
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("connection `acme`: entra sends")
                && w.contains("addresses.postalCode")),
        "{warnings:?}"
    );
    assert!(
        !warnings.iter().any(|w| w.contains("name.givenName")),
        "mapped attributes are not reported: {warnings:?}"
    );
}

#[test]
fn every_mistake_is_reported_at_its_position() {
    let text = r#"
[connections.acme]
base_path = "scim"
upstream = "nowhere"
token_sha256 = "abc"
approved_domains = ["not a domain"]
dialect = "azure"
"#;
    let (_, report) = compile_text(text);
    let errors: Vec<String> = report.diagnostics.iter().map(|d| d.to_string()).collect();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("gateway.toml:3:13: error: base_path")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("gateway.toml:4:12: error: unknown upstream `nowhere`")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("gateway.toml:5:16: error: token_sha256")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("gateway.toml:6:21: error: `not a domain`")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with(
            "gateway.toml:7:11: error: unknown dialect `azure`; expected `auto` or one of: entra, okta, onelogin, generic"
        )),
        "{errors:?}"
    );
}

#[test]
fn unknown_key_names_what_was_expected() {
    let (_, report) = compile_text("[server]\nlisten = \"127.0.0.1:1\"\nmax_body = 5\n");
    let message = report.diagnostics[0].to_string();
    assert!(message.starts_with("gateway.toml:3:1: error:"), "{message}");
    assert!(message.contains("max_body_bytes"), "{message}");
}

#[test]
fn admin_listen_is_read_and_must_differ_from_listen() {
    let (config, report) =
        compile_text("[server]\nlisten = \"127.0.0.1:8080\"\nadmin_listen = \"127.0.0.1:9100\"\n");
    assert!(!report.has_errors(), "{report}");
    assert_eq!(
        config.unwrap().server.admin_listen,
        Some(SocketAddr::from(([127, 0, 0, 1], 9100)))
    );
    let (_, report) = compile_text(
        "[server]\nlisten = \"127.0.0.1:8080\"\n  admin_listen = \"127.0.0.1:8080\"\n",
    );
    let message = report.diagnostics[0].to_string();
    assert!(
        message.starts_with("gateway.toml:3:3: error: admin_listen must be another address"),
        "{message}"
    );
    let (_, report) = compile_text("[server]\nadmin_listen = \"not an address\"\n");
    let message = report.diagnostics[0].to_string();
    assert!(
        message.starts_with("gateway.toml:2:16: error:"),
        "{message}"
    );
}

#[test]
fn trusted_proxies_and_public_url_are_checked_at_their_position() {
    let text = format!(
        r#"[server]
trusted_proxies = ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]

[connections.acme]
base_path = "/scim/v2"
upstream = "nowhere"
token_sha256 = "{HASH}"
public_url = "https://scim.example.com/scim/v2/"
"#
    );
    let (config, _) = compile_text(&text);
    let config = config.unwrap();
    let proxies = &config.server.trusted_proxies;
    assert!(proxies[0].contains("10.1.2.3".parse().unwrap()));
    assert!(proxies[0].contains("::ffff:10.1.2.3".parse().unwrap()));
    assert!(!proxies[0].contains("11.0.0.1".parse().unwrap()));
    assert!(proxies[1].contains("192.0.2.7".parse().unwrap()));
    assert!(!proxies[1].contains("192.0.2.8".parse().unwrap()));
    assert!(proxies[2].contains("2001:db8:1::1".parse().unwrap()));
    assert_eq!(
        config.connections[0].public_url.as_deref(),
        Some("https://scim.example.com/scim/v2")
    );

    let (_, report) =
        compile_text("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n");
    let message = report.diagnostics[0].to_string();
    assert!(
        message.starts_with("gateway.toml:2:34: error: `10.0.0.0/33` is not an address or CIDR"),
        "{message}"
    );
    let text = format!(
        "[connections.acme]\nbase_path = \"/scim/v2\"\nupstream = \"x\"\ntoken_sha256 = \"{HASH}\"\npublic_url = \"https://user@scim.example.com\"\n"
    );
    let (_, report) = compile_text(&text);
    assert!(
        report.diagnostics.iter().any(|d| d
            .to_string()
            .starts_with("gateway.toml:5:14: error: public_url must be")),
        "{report}"
    );
}

#[test]
fn missing_upstream_secret_is_an_error() {
    let (_, report) =
        compile_text("[upstreams.legacy]\nmapping = \"mappings/upstream/legacy.toml\"\n");
    assert!(report.to_string().contains("secret `api_key`"), "{report}");
}

#[test]
fn rates_parse_per_second_minute_and_hour() {
    let rate = Rate::parse("20/s").unwrap();
    assert_eq!(
        (rate.count.get(), rate.per.as_secs(), rate.burst.get()),
        (20, 1, 20)
    );
    assert_eq!(Rate::parse("600/min").unwrap().per.as_secs(), 60);
    assert_eq!(Rate::parse(" 5 / h ").unwrap().per.as_secs(), 3600);
    for bad in ["0/s", "x/s", "20", "20/day", "-1/s"] {
        assert!(Rate::parse(bad).is_none(), "{bad}");
    }
}

#[test]
fn secret_debug_never_shows_the_value() {
    assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(****)");
}

#[test]
fn domains_normalise_case_and_trailing_dot() {
    assert_eq!(
        normalise_domain("Example.COM.").as_deref(),
        Some("example.com")
    );
    assert_eq!(normalise_domain("a..b"), None);
    assert_eq!(normalise_domain("ex ample.com"), None);
}

#[test]
fn cluster_settings_are_checked_at_their_line_and_never_quote_the_url() {
    let with = |cluster: &str| {
        format!(
            "[upstreams.legacy]\nmapping = \"mappings/upstream/legacy.toml\"\n\
             secrets.api_key = {{ value = \"k\" }}\n\n{cluster}"
        )
    };
    let (config, report) = compile_text(&with(
        "[cluster]\nredis_url = { value = \"redis://:hunter2@10.0.0.9:6379/2\" }\non_unavailable = \"refuse\"\n",
    ));
    assert!(!report.has_errors(), "{report}");
    let cluster = config.unwrap().cluster.unwrap();
    assert_eq!(cluster.on_unavailable, OnUnavailable::Refuse);
    assert_eq!(cluster.key_prefix, "scimgate:");
    assert_eq!(cluster.timeout, Duration::from_millis(250));
    assert_eq!(cluster.lock_ttl, Duration::from_millis(30_000));
    assert!(!format!("{cluster:?}").contains("hunter2"));

    let (_, report) = compile_text(&with(
        "[cluster]\nredis_url = { value = \"http://:hunter2@10.0.0.9\" }\ntimeout_ms = 0\n",
    ));
    let shown = report.to_string();
    assert!(
        shown.contains("gateway.toml:6:13: error: [cluster] redis_url must be a redis://"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");

    // Slots of an upstream with max_in_flight last the lock TTL: it must
    // outlast a call (legacy.toml's timeout_ms is 10000).
    let (_, report) = compile_text(
        &with("[cluster]\nredis_url = { value = \"redis://r:6379\" }\nlock_ttl_ms = 5000\n")
            .replace("secrets.api_key", "max_in_flight = 4\nsecrets.api_key"),
    );
    let shown = report.to_string();
    assert!(shown.contains("gateway.toml:8:15: error: [cluster] lock_ttl_ms (5000 ms) must be above upstream `legacy`'s timeout_ms (10000 ms)"), "{shown}");

    let (_, report) = compile_text(&with(
        "[cluster]\nredis_url = { value = \"redis://r:6379\" }\ntimeout_ms = 0\non_unavailable = \"maybe\"\n",
    ));
    let shown = report.to_string();
    assert!(shown.contains("gateway.toml:8:"), "{shown}");
}
