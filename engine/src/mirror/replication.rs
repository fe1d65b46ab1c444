//! The replication file, in the ecosystem's usual shape (YAML or TOML):
//!
//! ```yaml
//! defaults:
//!   mode: incremental            # or full-refresh
//!   object: pipedrive.{stream_name}
//! anchor_date: 2024-01-01       # optional: incremental streams start there
//! streams:
//!   '*':                        # every stream
//!   pipelines:
//!     mode: full-refresh
//! ```
//!
//! Without a file (or for `'*'` without a mode) each stream gets the connector's default:
//! incremental for the core objects, full refresh for reference data. A stream that cannot be
//! incremental is read in full whatever the file says.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::catalog::{self, Changes, Stream};
use super::MirrorError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Incremental,
    #[serde(alias = "full_refresh")]
    FullRefresh,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamOptions {
    mode: Option<Mode>,
    object: Option<String>,
    anchor_date: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct File {
    #[serde(default)]
    defaults: StreamOptions,
    #[serde(default)]
    anchor_date: Option<String>,
    #[serde(default)]
    streams: BTreeMap<String, Option<StreamOptions>>,
}

/// One stream to extract and how.
#[derive(Debug, Clone)]
pub struct Planned {
    pub stream: &'static Stream,
    pub mode: Mode,
    /// `None`: tandem's default table for the target.
    pub object: Option<String>,
    /// `YYYY-MM-DD`: where the first incremental run starts (none: everything).
    pub anchor_date: Option<String>,
}

/// The streams of a replication, in catalogue order (field definitions first).
#[derive(Debug, Clone)]
pub struct Replication {
    pub streams: Vec<Planned>,
}

fn default_mode(stream: &Stream) -> Mode {
    if stream.incremental_by_default() {
        Mode::Incremental
    } else {
        Mode::FullRefresh
    }
}

impl Replication {
    /// Every stream with the connector's defaults.
    pub fn all(anchor_date: Option<String>) -> Self {
        Self {
            streams: catalog::STREAMS
                .iter()
                .map(|s| Planned {
                    stream: s,
                    mode: default_mode(s),
                    object: None,
                    anchor_date: anchor_date.clone(),
                })
                .collect(),
        }
    }

    /// Reads a `.yaml`/`.yml` or `.toml` file.
    pub fn from_file(path: &Path) -> Result<Self, MirrorError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            MirrorError::Replication(format!("cannot read {}: {e}", path.display()))
        })?;
        let toml = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        Self::parse(&text, toml)
    }

    pub fn parse(text: &str, toml: bool) -> Result<Self, MirrorError> {
        let file: File = if toml {
            toml::from_str(text).map_err(|e| MirrorError::Replication(e.to_string()))?
        } else {
            serde_yaml::from_str(text).map_err(|e| MirrorError::Replication(e.to_string()))?
        };
        let anchor = file
            .defaults
            .anchor_date
            .clone()
            .or(file.anchor_date.clone());
        if let Some(anchor) = &anchor {
            check_date(anchor)?;
        }
        let wildcard = file.streams.get("*").cloned();
        let mut streams = Vec::new();
        for stream in catalog::STREAMS {
            let options = match (file.streams.get(stream.name), &wildcard) {
                (Some(options), _) => options.clone().unwrap_or_default(),
                (None, Some(options)) => {
                    let mut options = options.clone().unwrap_or_default();
                    // `'*'` takes the defaults' mode only where the stream allows it.
                    if options.mode.is_none() && !stream.incremental_by_default() {
                        options.mode = Some(Mode::FullRefresh);
                    }
                    options
                }
                (None, None) => continue,
            };
            let mut mode = options
                .mode
                .or(file.defaults.mode)
                .unwrap_or_else(|| default_mode(stream));
            if stream.changes == Changes::FullOnly {
                mode = Mode::FullRefresh;
            }
            let object = options
                .object
                .or(file.defaults.object.clone())
                .map(|o| o.replace("{stream_name}", stream.name));
            let anchor_date = options.anchor_date.or(anchor.clone());
            if let Some(anchor) = &anchor_date {
                check_date(anchor)?;
            }
            streams.push(Planned {
                stream,
                mode,
                object,
                anchor_date,
            });
        }
        for name in file.streams.keys() {
            if name != "*" && catalog::stream(name).is_none() {
                return Err(MirrorError::Replication(format!(
                    "unknown stream {name:?}; streams are: {}",
                    catalog::STREAMS
                        .iter()
                        .map(|s| s.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok(Self { streams })
    }
}

fn check_date(date: &str) -> Result<(), MirrorError> {
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map(|_| ())
        .map_err(|_| MirrorError::Replication(format!("anchor_date {date:?} is not YYYY-MM-DD")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_takes_every_stream_with_reference_data_in_full() {
        let r = Replication::parse(
            "defaults:\n  mode: incremental\n  object: pipedrive.{stream_name}\nstreams:\n  '*':\n  deals:\n    mode: full-refresh\n",
            false,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.streams.len(), catalog::STREAMS.len());
        let mode = |n: &str| {
            r.streams
                .iter()
                .find(|p| p.stream.name == n)
                .map(|p| p.mode)
        };
        assert_eq!(mode("deals"), Some(Mode::FullRefresh));
        assert_eq!(mode("persons"), Some(Mode::Incremental));
        assert_eq!(mode("pipelines"), Some(Mode::FullRefresh));
        assert_eq!(
            r.streams[0].object.as_deref(),
            Some("pipedrive.deal_fields")
        );
    }

    #[test]
    fn listed_streams_only_and_unknown_ones_refused() {
        let r = Replication::parse("streams:\n  persons:\n  stages:\n", false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.streams.len(), 2);
        assert!(Replication::parse("streams:\n  people:\n", false).is_err());
        let t = Replication::parse(
            "anchor_date = \"2024-01-01\"\n[streams.deals]\nmode = \"incremental\"\n",
            true,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.streams[0].anchor_date.as_deref(), Some("2024-01-01"));
    }
}
