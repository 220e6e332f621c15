//! IdP dialects: how one vendor's SCIM differs from the RFC, declared in
//! `mappings/idp/<vendor>.toml` and applied by one general normaliser, so
//! the SCIM core sees canonical SCIM and no code asks which vendor it is.
//!
//! `load` reads and validates dialect files; `normalise` rewrites request
//! bodies; the server applies the response rules (content type, statuses).

mod load;
mod normalise;

use std::path::PathBuf;
use std::sync::Arc;

use http::{HeaderValue, StatusCode};

use scimgate_scim::path::AttrPath;

pub use load::{EMBEDDED, compile, embedded, load_dir};

/// One vendor's dialect.
#[derive(Debug, Clone)]
pub struct Dialect {
    pub name: String,
    pub description: String,
    /// Lower-case User-Agent fragments that pick this dialect on `auto` connections.
    pub user_agents: Vec<String>,
    /// User attributes this IdP sends by default (canonical paths), so
    /// `scimgate check` can warn about those an upstream mapping drops.
    pub sends: Vec<AttrPath>,
    pub request: RequestRules,
    pub response: ResponseRules,
    /// How long a request over its connection's rate limit is held before a
    /// 429, unless the connection sets its own `max_wait_ms`.
    pub pacing: std::time::Duration,
    pub source: PathBuf,
}

/// What the normaliser does to request bodies (resources and PATCH operations).
#[derive(Debug, Clone, Default)]
pub struct RequestRules {
    /// `"True"`/`"false"` strings become booleans where the schema says boolean.
    pub string_booleans: bool,
    /// `""` and `null` mean "not sent": they never erase anything.
    pub blank_is_absent: bool,
    /// A single object where a multi-valued attribute is expected is a list of one.
    pub object_as_list: bool,
    /// A list of one where a single-valued complex attribute is expected is
    /// that element (Entra adds `manager` as `[{"value": …}]`).
    pub list_as_object: bool,
    /// An unqualified PATCH path naming no core attribute but exactly one
    /// extension's attribute (`manager`) is qualified with that extension.
    pub qualify_extension_attributes: bool,
    /// `schemas` is rebuilt from the attributes present: the core URN and every
    /// extension actually used, whatever the IdP listed.
    pub complete_schemas: bool,
    /// Schema URN as sent → canonical URN (SCIM 1.x URNs, misspellings).
    pub schema_aliases: Vec<(String, String)>,
    /// Attribute as sent → canonical attribute (vendor extension names).
    pub attribute_aliases: Vec<(AttrPath, AttrPath)>,
}

#[derive(Debug, Clone)]
pub struct ResponseRules {
    pub content_type: HeaderValue,
    /// Status of a successful group PATCH: 200 with the group, or 204.
    pub group_patch_status: StatusCode,
}

impl Default for ResponseRules {
    fn default() -> Self {
        ResponseRules {
            content_type: HeaderValue::from_static("application/scim+json"),
            group_patch_status: StatusCode::OK,
        }
    }
}

/// A connection's dialect: fixed, or chosen per request by User-Agent.
#[derive(Debug, Clone)]
pub enum DialectChoice {
    Fixed(Arc<Dialect>),
    Auto {
        candidates: Vec<Arc<Dialect>>,
        fallback: Arc<Dialect>,
    },
}

impl DialectChoice {
    pub fn resolve(&self, user_agent: Option<&str>) -> &Arc<Dialect> {
        match self {
            DialectChoice::Fixed(dialect) => dialect,
            DialectChoice::Auto {
                candidates,
                fallback,
            } => {
                let agent = user_agent.unwrap_or("").to_ascii_lowercase();
                candidates
                    .iter()
                    .find(|d| d.user_agents.iter().any(|ua| agent.contains(ua.as_str())))
                    .unwrap_or(fallback)
            }
        }
    }
}

/// The dialects a gateway knows, by name.
#[derive(Debug, Clone, Default)]
pub struct Dialects {
    pub all: Vec<Arc<Dialect>>,
}

impl Dialects {
    pub fn get(&self, name: &str) -> Option<&Arc<Dialect>> {
        self.all.iter().find(|d| d.name.eq_ignore_ascii_case(name))
    }

    /// `auto`, or the name of a dialect; `None` for an unknown name.
    pub fn choice(&self, name: &str) -> Option<DialectChoice> {
        if name.eq_ignore_ascii_case("auto") {
            let fallback = self
                .get("generic")
                .cloned()
                .unwrap_or_else(|| Arc::new(Dialect::generic()));
            return Some(DialectChoice::Auto {
                candidates: self
                    .all
                    .iter()
                    .filter(|d| !d.user_agents.is_empty())
                    .cloned()
                    .collect(),
                fallback,
            });
        }
        self.get(name).cloned().map(DialectChoice::Fixed)
    }

    pub fn names(&self) -> Vec<&str> {
        self.all.iter().map(|d| d.name.as_str()).collect()
    }
}

impl Dialect {
    /// Plain RFC 7644: nothing rewritten.
    pub fn generic() -> Dialect {
        Dialect {
            name: "generic".into(),
            description: "SCIM 2.0 as RFC 7644 writes it".into(),
            user_agents: Vec::new(),
            sends: Vec::new(),
            request: RequestRules::default(),
            response: ResponseRules::default(),
            pacing: std::time::Duration::ZERO,
            source: PathBuf::from("(built in)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_by_user_agent_and_falls_back_to_generic() {
        let dialects = embedded();
        let auto = dialects.choice("auto").unwrap();
        assert_eq!(auto.resolve(Some("Okta SCIM Client 1.0.0")).name, "okta");
        assert_eq!(auto.resolve(None).name, "generic");
        assert_eq!(auto.resolve(Some("curl/8.0")).name, "generic");
        assert!(dialects.choice("nope").is_none());
        assert_eq!(
            dialects
                .choice("ENTRA")
                .map(|c| c.resolve(None).name.clone())
                .as_deref(),
            Some("entra")
        );
    }
}
