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
            let fallback = Arc::new(self.shared());
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

    /// What an `auto` connection applies to a request whose User-Agent names
    /// no dialect (an IdP that changed its User-Agent, a new one): every rule
    /// of any vendor dialect that cannot misread a request that needs no
    /// rewriting: a `"True"` string where the schema says boolean, one
    /// object where a list is expected and the reverse, an extension
    /// attribute named unqualified, `schemas` rebuilt, and the aliases no
    /// two dialects map differently. Not `blank_is_absent`, unless every
    /// dialect has it: for another IdP an empty string may mean "clear it".
    /// Answers and pacing are generic's; `generic` itself stays strict.
    pub fn shared(&self) -> Dialect {
        let generic = self
            .get("generic")
            .map(|d| d.as_ref().clone())
            .unwrap_or_else(Dialect::generic);
        // Every dialect but generic, OneLogin's too though no User-Agent
        // picks it: its rules are what an unknown IdP may need.
        let vendors: Vec<&Dialect> = self
            .all
            .iter()
            .filter(|d| d.name != "generic")
            .map(Arc::as_ref)
            .collect();
        let any = |rule: fn(&RequestRules) -> bool| vendors.iter().any(|d| rule(&d.request));
        let every = |rule: fn(&RequestRules) -> bool| {
            !vendors.is_empty() && vendors.iter().all(|d| rule(&d.request))
        };
        let mut request = RequestRules {
            string_booleans: any(|r| r.string_booleans),
            blank_is_absent: every(|r| r.blank_is_absent),
            object_as_list: any(|r| r.object_as_list),
            list_as_object: any(|r| r.list_as_object),
            qualify_extension_attributes: any(|r| r.qualify_extension_attributes),
            complete_schemas: any(|r| r.complete_schemas),
            schema_aliases: Vec::new(),
            attribute_aliases: Vec::new(),
        };
        for dialect in &vendors {
            for (from, to) in &dialect.request.schema_aliases {
                add_unambiguous(&mut request.schema_aliases, &vendors, from, to, |r| {
                    &r.schema_aliases
                });
            }
            for (from, to) in &dialect.request.attribute_aliases {
                add_unambiguous(&mut request.attribute_aliases, &vendors, from, to, |r| {
                    &r.attribute_aliases
                });
            }
        }
        Dialect {
            name: "shared".into(),
            description: "the rules every vendor dialect can apply unambiguously, for a \
                          User-Agent that names none"
                .into(),
            user_agents: Vec::new(),
            sends: Vec::new(),
            request,
            response: generic.response,
            pacing: generic.pacing,
            source: PathBuf::from("(derived from the vendor dialects)"),
        }
    }

    pub fn names(&self) -> Vec<&str> {
        self.all.iter().map(|d| d.name.as_str()).collect()
    }
}

/// Adds `from → to` unless it is there already or another dialect maps
/// `from` to something else.
fn add_unambiguous<T: PartialEq + Clone>(
    aliases: &mut Vec<(T, T)>,
    vendors: &[&Dialect],
    from: &T,
    to: &T,
    of: fn(&RequestRules) -> &Vec<(T, T)>,
) {
    let contested = vendors
        .iter()
        .flat_map(|d| of(&d.request))
        .any(|(f, t)| f == from && t != to);
    if !contested && !aliases.iter().any(|(f, _)| f == from) {
        aliases.push((from.clone(), to.clone()));
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
    fn the_shared_rules_are_every_unambiguous_vendor_rule_and_generic_stays_strict() {
        let dialects = embedded();
        let shared = dialects.shared();
        let rules = &shared.request;
        // Entra's and OneLogin's string booleans, OneLogin's single objects,
        // Entra's lists of one and unqualified extension attributes.
        assert!(rules.string_booleans && rules.object_as_list && rules.list_as_object);
        assert!(rules.qualify_extension_attributes && rules.complete_schemas);
        // Only OneLogin reads "" as "not sent": not shared.
        assert!(!rules.blank_is_absent);
        let entra = dialects.get("entra").unwrap();
        for alias in &entra.request.attribute_aliases {
            assert!(rules.attribute_aliases.contains(alias), "{alias:?}");
        }
        assert_eq!(shared.response.group_patch_status, StatusCode::OK);
        assert_eq!(shared.pacing, std::time::Duration::ZERO);
        let generic = dialects.get("generic").unwrap();
        assert!(!generic.request.string_booleans && !generic.request.object_as_list);
    }

    #[test]
    fn an_alias_two_dialects_map_differently_is_not_shared() {
        let mut dialects = embedded();
        let from = "urn:example:Legacy".to_string();
        for (name, to) in [("entra", "urn:a"), ("okta", "urn:b")] {
            let dialect = dialects.all.iter_mut().find(|d| d.name == name).unwrap();
            Arc::make_mut(dialect)
                .request
                .schema_aliases
                .push((from.clone(), to.to_string()));
        }
        let shared = dialects.shared();
        assert!(
            shared
                .request
                .schema_aliases
                .iter()
                .all(|(f, _)| *f != from)
        );
    }

    #[test]
    fn auto_picks_by_user_agent_and_falls_back_to_the_shared_rules() {
        let dialects = embedded();
        let auto = dialects.choice("auto").unwrap();
        assert_eq!(auto.resolve(Some("Okta SCIM Client 1.0.0")).name, "okta");
        assert_eq!(auto.resolve(None).name, "shared");
        assert_eq!(auto.resolve(Some("curl/8.0")).name, "shared");
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
