//! `tandem extract --verify`: per stream, the row count and a checksum of `(key, update_time)`
//! pairs in Pipedrive and in the mirror's live rows, and the keys that differ.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::extract::{read_all, table_of};
use super::replication::Planned;
use super::{MirrorError, Source};
use crate::store::mirror::MirrorDb;

/// How many differing keys a check lists (the counts are always complete).
const LISTED: usize = 20;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StreamCheck {
    pub stream: String,
    pub remote_rows: usize,
    pub local_rows: usize,
    pub remote_checksum: String,
    pub local_checksum: String,
    /// In Pipedrive, not in the mirror.
    pub missing: Vec<String>,
    /// In the mirror, not in Pipedrive.
    pub extra: Vec<String>,
    /// In both, with different versions.
    pub stale: Vec<String>,
    pub differences: usize,
}

impl StreamCheck {
    pub fn matches(&self) -> bool {
        self.differences == 0
    }
}

fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn checksum(pairs: &[(String, Option<String>)]) -> String {
    let mut hash = Sha256::new();
    for (k, v) in pairs {
        hash.update(k.as_bytes());
        hash.update(b"\x1f");
        hash.update(v.as_deref().unwrap_or("").as_bytes());
        hash.update(b"\n");
    }
    hash.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn push(list: &mut Vec<String>, key: &str, n: &mut usize) {
    *n += 1;
    if list.len() < LISTED {
        list.push(key.to_owned());
    }
}

/// Compares every planned stream with Pipedrive (one full read of each).
pub async fn verify(
    source: &Source,
    db: &MirrorDb,
    plan: &[Planned],
) -> Result<Vec<StreamCheck>, MirrorError> {
    let mut checks = Vec::with_capacity(plan.len());
    for planned in plan {
        let stream = planned.stream;
        let mut remote: Vec<(String, Option<String>)> = read_all(source, stream)
            .await?
            .iter()
            .filter_map(|item| {
                let key = key_text(item.get(stream.key)?)?;
                let version = stream
                    .version_column
                    .and_then(|c| item.get(c))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                Some((key, version))
            })
            .collect();
        remote.sort();
        let table = table_of(db, planned);
        db.ensure_table(&table, stream.key, stream.key_kind).await?;
        let local = db
            .live_versions(&table, stream.key, stream.version_column)
            .await?;
        let mut check = StreamCheck {
            stream: stream.name.to_owned(),
            remote_rows: remote.len(),
            local_rows: local.len(),
            remote_checksum: checksum(&remote),
            local_checksum: checksum(&local),
            ..StreamCheck::default()
        };
        let (mut i, mut j) = (0, 0);
        let mut differences = 0;
        while i < remote.len() || j < local.len() {
            match (remote.get(i), local.get(j)) {
                (Some(r), Some(l)) if r.0 == l.0 => {
                    if r.1 != l.1 {
                        push(&mut check.stale, &r.0, &mut differences);
                    }
                    i += 1;
                    j += 1;
                }
                (Some(r), Some(l)) if r.0 < l.0 => {
                    push(&mut check.missing, &r.0, &mut differences);
                    i += 1;
                }
                (Some(r), None) => {
                    push(&mut check.missing, &r.0, &mut differences);
                    i += 1;
                }
                (_, Some(l)) => {
                    push(&mut check.extra, &l.0, &mut differences);
                    j += 1;
                }
                (None, None) => break,
            }
        }
        check.differences = differences;
        checks.push(check);
    }
    Ok(checks)
}
