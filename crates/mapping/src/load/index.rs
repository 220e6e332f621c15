//! `[users.index]` / `[groups.index]`: which matching attributes the
//! gateway indexes, checked so that each one named has an effect.

use super::*;
use crate::IndexSettings;
use crate::file::IndexSpec;

/// What an IdP matches on, indexed when the section names none.
const MATCHED_USER_ATTRIBUTES: [&str; 3] = ["userName", "externalId", "emails.value"];
const MATCHED_GROUP_ATTRIBUTES: [&str; 2] = ["displayName", "externalId"];
const DEFAULT_REFRESH_SECONDS: u64 = 900;
/// A day: past it, writes the gateway did not see stay unseen too long.
const MAX_REFRESH_SECONDS: u64 = 86_400;

impl Compiler<'_> {
    pub(super) fn index(
        &mut self,
        section_name: &str,
        spec: &Spanned<IndexSpec>,
        schema: &'static ResourceSchema,
        filters: &[FilterParam],
        attributes: &[AttributeMap],
    ) -> Option<IndexSettings> {
        let at = format!("[{section_name}.index]");
        let pushed = |path: &AttrPath| filters.iter().any(|f| f.path.same_attribute(path));
        let read = |path: &AttrPath| {
            attributes
                .iter()
                .any(|a| a.scim.path.same_attribute(path) && a.direction != Direction::Write)
        };
        let mut indexed = Vec::new();
        let mut broken = false;
        match &spec.get_ref().attributes {
            Some(named) => {
                for text in named {
                    let Some(target) = self.scim_path(text, schema, false) else {
                        broken = true;
                        continue;
                    };
                    let problem = if target.kind != AttrType::String {
                        Some("is not a string; only string attributes are matched with `eq`")
                    } else if pushed(&target.path) {
                        Some(
                            "is pushed down to the upstream by `filters`, which answers it; \
                             it needs no index",
                        )
                    } else if !read(&target.path) {
                        Some("is not read from the upstream by any [[attributes]] entry")
                    } else if indexed.contains(&target.path) {
                        Some("is named twice")
                    } else {
                        None
                    };
                    match problem {
                        Some(problem) => {
                            broken = true;
                            self.error::<()>(
                                text.span(),
                                format!("{at} `{}` {problem}", text.get_ref()),
                            );
                        }
                        None => indexed.push(target.path),
                    }
                }
            }
            None => {
                let matched: &[&str] = match section_name {
                    "users" => &MATCHED_USER_ATTRIBUTES,
                    _ => &MATCHED_GROUP_ATTRIBUTES,
                };
                for name in matched {
                    let Ok(path) = AttrPath::parse(name) else {
                        continue;
                    };
                    if read(&path) && !pushed(&path) {
                        indexed.push(path);
                    }
                }
            }
        }
        if broken {
            return None;
        }
        if indexed.is_empty() {
            return self.error(
                spec.span(),
                format!(
                    "{at} has nothing to index: every matching attribute the mapping reads is \
                     pushed down by `filters`; drop {at}, or name the attributes to index"
                ),
            );
        }
        let refresh_seconds = match &spec.get_ref().refresh_seconds {
            None => DEFAULT_REFRESH_SECONDS,
            Some(seconds) if (1..=MAX_REFRESH_SECONDS).contains(seconds.get_ref()) => {
                *seconds.get_ref()
            }
            Some(seconds) => {
                return self.error(
                    seconds.span(),
                    format!(
                        "{at} `refresh_seconds` is {}; it must be from 1 to {MAX_REFRESH_SECONDS}",
                        seconds.get_ref()
                    ),
                );
            }
        };
        Some(IndexSettings {
            attributes: indexed,
            refresh: Duration::from_secs(refresh_seconds),
        })
    }
}

impl Compiler<'_> {
    /// Warns of the matching attributes that every look-up would scan the
    /// list for: neither pushed down nor indexed.
    pub(super) fn advise_index(
        &mut self,
        section_name: &str,
        section: &ResourceSection,
        filters: &[FilterParam],
        attributes: &[AttributeMap],
    ) {
        let matched: &[&str] = match section_name {
            "users" => &MATCHED_USER_ATTRIBUTES,
            _ => &MATCHED_GROUP_ATTRIBUTES,
        };
        let scanned: Vec<&str> = matched
            .iter()
            .copied()
            .filter(|name| {
                let Ok(path) = AttrPath::parse(name) else {
                    return false;
                };
                let read = attributes
                    .iter()
                    .any(|a| a.scim.path.same_attribute(&path) && a.direction != Direction::Write);
                read && !filters.iter().any(|f| f.path.same_attribute(&path))
            })
            .collect();
        if scanned.is_empty() {
            return;
        }
        self.report.push(self.source.warning_at(
            Some(section.list.path.span()),
            format!(
                "[{section_name}] an IdP's look-up by {} scans this list (up to scan_cap) at \
                 every request: push it down in [{section_name}.filters], or declare \
                 [{section_name}.index]",
                scanned.join(", ")
            ),
        ));
    }
}
