//! A stream's table layout: typed columns for the standard fields (named like Pipedrive's keys),
//! custom fields as columns named after the field's name (sanitised, collisions suffixed, the
//! 40-character key kept in the field-map table), the raw JSON, `_synced_at` and `deleted_at`.
//!
//! A custom field renamed in Pipedrive keeps its column: the field map's `field_name` follows
//! the new name, and nothing is dropped or renamed in the table.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::Value;

use super::catalog::Stream;
use super::MirrorError;
use crate::store::mirror::{Cell, ColKind, FieldMapRow, MirrorDb, TableRef};

/// Columns every table has besides its key.
pub const RAW: &str = "_raw";
pub const SYNCED_AT: &str = "_synced_at";
pub const DELETED_AT: &str = "deleted_at";

/// A custom field's definition, from a `*_fields` stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    pub key: String,
    pub name: String,
    pub field_type: String,
}

impl FieldDef {
    /// Reads a v2 (`field_code`, `field_name`) or v1 (`key`, `name`) definition; built-in
    /// fields (`is_custom_field: false`, or not 40-hex keys) are not custom.
    pub fn from_json(v: &Value) -> Option<Self> {
        let key = v
            .get("field_code")
            .or_else(|| v.get("key"))
            .and_then(Value::as_str)?;
        let custom = v
            .get("is_custom_field")
            .or_else(|| v.get("edit_flag"))
            .and_then(Value::as_bool)
            .unwrap_or_else(|| is_custom_key(key));
        if !custom {
            return None;
        }
        Some(Self {
            key: key.to_owned(),
            name: v
                .get("field_name")
                .or_else(|| v.get("name"))
                .and_then(Value::as_str)
                .unwrap_or(key)
                .to_owned(),
            field_type: v
                .get("field_type")
                .and_then(Value::as_str)
                .unwrap_or("varchar")
                .to_owned(),
        })
    }
}

/// Pipedrive's custom-field keys are 40 hex characters.
pub fn is_custom_key(key: &str) -> bool {
    key.len() == 40 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A column name from a field's name: lower case ASCII letters, digits and `_`, at most 60
/// characters, not starting with a digit.
pub fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let mut out = out.trim_matches('_').to_owned();
    if out.is_empty() {
        out = "field".to_owned();
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "f_");
    }
    out.truncate(60);
    out
}

fn custom_kind(field_type: &str) -> ColKind {
    match field_type {
        "double" => ColKind::Double,
        "int" | "user" | "org" | "people" | "enum" => ColKind::BigInt,
        "set" | "monetary" | "address" | "daterange" | "time" | "timerange" => ColKind::Json,
        _ => ColKind::Text,
    }
}

fn integer_key(key: &str) -> bool {
    key == "id" || key.ends_with("_id") || key.ends_with("_count") || key.ends_with("_nr")
}

/// The kind a standard key's column gets, from its first non-null value.
fn infer(key: &str, value: &Value) -> Option<ColKind> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(_) => ColKind::Bool,
        Value::Number(n) if integer_key(key) && n.is_i64() => ColKind::BigInt,
        Value::Number(_) => ColKind::Double,
        Value::String(_) => ColKind::Text,
        Value::Object(o) if integer_key(key) && o.get("value").is_some_and(Value::is_i64) => {
            ColKind::BigInt
        }
        Value::Array(_) | Value::Object(_) => ColKind::Json,
    })
}

/// `value` as a cell of a `kind` column.
pub fn cell(kind: ColKind, value: &Value) -> Cell {
    match (kind, value) {
        (_, Value::Null) => Cell::Null,
        (ColKind::BigInt, Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .map_or(Cell::Null, Cell::Int),
        (ColKind::BigInt, Value::String(s)) => s.trim().parse().map_or(Cell::Null, Cell::Int),
        (ColKind::BigInt, Value::Object(o)) => o
            .get("value")
            .or_else(|| o.get("id"))
            .map_or(Cell::Null, |v| cell(ColKind::BigInt, v)),
        (ColKind::BigInt, Value::Bool(b)) => Cell::Int(i64::from(*b)),
        (ColKind::Double, Value::Number(n)) => n.as_f64().map_or(Cell::Null, Cell::Float),
        (ColKind::Double, Value::String(s)) => s.trim().parse().map_or(Cell::Null, Cell::Float),
        (ColKind::Double, Value::Object(o)) => o
            .get("value")
            .map_or(Cell::Null, |v| cell(ColKind::Double, v)),
        (ColKind::Bool, Value::Bool(b)) => Cell::Bool(*b),
        (ColKind::Bool, Value::Number(n)) => Cell::Bool(n.as_f64().is_some_and(|f| f != 0.0)),
        (ColKind::Bool, Value::String(s)) => match s.as_str() {
            "true" | "1" => Cell::Bool(true),
            "false" | "0" => Cell::Bool(false),
            _ => Cell::Null,
        },
        (ColKind::Text | ColKind::Time, Value::String(s)) => Cell::Text(s.clone()),
        (ColKind::Json, v) => Cell::Text(v.to_string()),
        (ColKind::Text, v) => Cell::Text(v.to_string()),
        _ => Cell::Null,
    }
}

/// [`cell`] for a value the caller gives up: its text moves into the cell.
pub fn cell_owned(kind: ColKind, value: Value) -> Cell {
    match (kind, value) {
        (ColKind::Text | ColKind::Time, Value::String(s)) => Cell::Text(s),
        (_, value) => cell(kind, &value),
    }
}

/// The layout of one stream's table, as it is in the database, grown as records show keys.
#[derive(Debug, Clone)]
pub struct Layout {
    pub stream: &'static Stream,
    pub table: TableRef,
    /// Every column and its kind.
    pub columns: BTreeMap<String, ColKind>,
    /// Custom field key → column.
    custom: BTreeMap<String, String>,
    custom_columns: BTreeSet<String>,
    /// Custom-field definitions not yet in the field map.
    new_fields: Vec<FieldMapRow>,
}

impl Layout {
    /// Creates the table if needed and reads its columns and field map; `defs` are the current
    /// custom-field definitions (new ones get columns, renamed ones keep theirs).
    pub async fn load(
        db: &MirrorDb,
        stream: &'static Stream,
        table: TableRef,
        defs: &[FieldDef],
    ) -> Result<Self, MirrorError> {
        let columns = db.ensure_table(&table, stream.key, stream.key_kind).await?;
        let known = db.field_map(stream.name).await?;
        let mut layout = Self {
            stream,
            table,
            columns,
            custom: known
                .iter()
                .map(|r| (r.field_key.clone(), r.column_name.clone()))
                .collect(),
            custom_columns: known.iter().map(|r| r.column_name.clone()).collect(),
            new_fields: Vec::new(),
        };
        let mut renamed = Vec::new();
        for def in defs {
            match known.iter().find(|r| r.field_key == def.key) {
                Some(row) if row.field_name != def.name || row.field_type != def.field_type => {
                    renamed.push(FieldMapRow {
                        field_name: def.name.clone(),
                        field_type: def.field_type.clone(),
                        ..row.clone()
                    });
                }
                Some(_) => {}
                None => {
                    layout.assign(&def.key, &def.name, &def.field_type);
                }
            }
        }
        db.save_field_map(&renamed).await?;
        layout.save(db).await?;
        Ok(layout)
    }

    fn assign(&mut self, key: &str, name: &str, field_type: &str) -> String {
        let base = sanitize(name);
        let mut column = base.clone();
        let mut n = 2;
        while self.custom_columns.contains(&column)
            || self.columns.contains_key(&column)
            || column == self.stream.key
            || [RAW, SYNCED_AT, DELETED_AT].contains(&column.as_str())
            || (self.stream.associations.contains(&column.as_str()))
        {
            column = format!("{base}_{n}");
            n += 1;
        }
        self.custom.insert(key.to_owned(), column.clone());
        self.custom_columns.insert(column.clone());
        self.new_fields.push(FieldMapRow {
            stream: self.stream.name.to_owned(),
            field_key: key.to_owned(),
            column_name: column.clone(),
            field_name: name.to_owned(),
            field_type: field_type.to_owned(),
        });
        column
    }

    /// Writes new field-map rows and adds their columns.
    async fn save(&mut self, db: &MirrorDb) -> Result<(), MirrorError> {
        if self.new_fields.is_empty() {
            return Ok(());
        }
        let fields = std::mem::take(&mut self.new_fields);
        let add: Vec<(String, ColKind)> = fields
            .iter()
            .filter(|f| !self.columns.contains_key(&f.column_name))
            .map(|f| (f.column_name.clone(), custom_kind(&f.field_type)))
            .collect();
        db.add_columns(&self.table, &add).await?;
        self.columns.extend(add);
        db.save_field_map(&fields).await?;
        Ok(())
    }

    /// The column of a record's top-level key, or of a custom field.
    fn standard_column(&self, key: &str) -> String {
        let name = sanitize(key);
        if self.custom_columns.contains(&name) {
            format!("{name}_std")
        } else {
            name
        }
    }

    /// Turns records into rows (in [`Layout::ordered`] order), adding the columns and field-map
    /// rows their new keys need first. The records are consumed: their strings move into the
    /// cells, and each distinct key of the page is resolved to its column once.
    pub async fn rows(
        &mut self,
        db: &MirrorDb,
        items: Vec<Value>,
        synced_at: &str,
    ) -> Result<(Vec<(String, ColKind)>, Vec<Vec<Cell>>), MirrorError> {
        // Columns first: new standard keys and unknown custom keys.
        let mut add: BTreeMap<String, ColKind> = BTreeMap::new();
        let mut known: HashSet<&str> = HashSet::new();
        for item in &items {
            let Some(object) = item.as_object() else {
                continue;
            };
            for (key, value) in object {
                if key == "custom_fields" {
                    if let Some(custom) = value.as_object() {
                        for key in custom.keys() {
                            if !self.custom.contains_key(key) {
                                self.assign(key, key, "varchar");
                            }
                        }
                    }
                    continue;
                }
                if is_custom_key(key) {
                    if !self.custom.contains_key(key) {
                        self.assign(key, key, "varchar");
                    }
                    continue;
                }
                if known.contains(key.as_str()) {
                    continue;
                }
                let column = self.standard_column(key);
                if column == self.stream.key || self.columns.contains_key(&column) {
                    known.insert(key);
                    continue;
                }
                // A `null` says nothing of the kind: a later record may.
                if let Some(kind) = infer(key, value) {
                    add.entry(column).or_insert(kind);
                    known.insert(key);
                }
            }
        }
        drop(known);
        self.save(db).await?;
        if !add.is_empty() {
            let add: Vec<(String, ColKind)> = add.into_iter().collect();
            db.add_columns(&self.table, &add).await?;
            self.columns.extend(add);
        }
        let ordered = self.ordered();
        let index: HashMap<&str, usize> = ordered
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.as_str(), i))
            .collect();
        // Each record key's slot, resolved once per page.
        let mut standard: HashMap<String, Option<usize>> = HashMap::new();
        let mut custom: HashMap<String, Option<usize>> = HashMap::new();
        let custom_slot = |key: &str| {
            self.custom
                .get(key)
                .and_then(|column| index.get(column.as_str()).copied())
        };
        let raw_slot = index.get(RAW).copied();
        let synced_slot = index.get(SYNCED_AT).copied();
        let mut rows = Vec::with_capacity(items.len());
        for item in items {
            let Value::Object(object) = item else {
                continue;
            };
            let raw = match raw_slot {
                Some(_) => Some(serde_json::to_string(&object).map_err(|e| {
                    MirrorError::Replication(format!("a record could not be written as JSON: {e}"))
                })?),
                None => None,
            };
            let mut row = vec![Cell::Null; ordered.len()];
            for (key, value) in object {
                if key == "custom_fields" {
                    if let Value::Object(fields) = value {
                        for (key, value) in fields {
                            let slot = match custom.get(&key) {
                                Some(slot) => *slot,
                                None => {
                                    let slot = custom_slot(&key);
                                    custom.insert(key, slot);
                                    slot
                                }
                            };
                            if let Some(i) = slot {
                                row[i] = cell_owned(ordered[i].1, value);
                            }
                        }
                    }
                    continue;
                }
                let slot = if let Some(slot) = standard.get(&key) {
                    *slot
                } else {
                    let slot = if is_custom_key(&key) {
                        custom_slot(&key)
                    } else {
                        index.get(self.standard_column(&key).as_str()).copied()
                    };
                    standard.insert(key, slot);
                    slot
                };
                if let Some(i) = slot {
                    row[i] = cell_owned(ordered[i].1, value);
                }
            }
            if row[0] == Cell::Null {
                // No key: nothing to upsert.
                tracing::warn!(
                    stream = self.stream.name,
                    "A record without its key was skipped."
                );
                continue;
            }
            if let (Some(i), Some(raw)) = (raw_slot, raw) {
                row[i] = Cell::Text(raw);
            }
            if let Some(i) = synced_slot {
                row[i] = Cell::Text(synced_at.to_owned());
            }
            rows.push(row);
        }
        Ok((ordered, rows))
    }

    /// Every column, the key first.
    pub fn ordered(&self) -> Vec<(String, ColKind)> {
        let mut out = vec![(self.stream.key.to_owned(), self.stream.key_kind)];
        out.extend(
            self.columns
                .iter()
                .filter(|(name, _)| name.as_str() != self.stream.key)
                .map(|(n, k)| (n.clone(), *k)),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_become_readable_column_names() {
        assert_eq!(sanitize("Lead source"), "lead_source");
        assert_eq!(sanitize("  Customer tier (A/B) "), "customer_tier_a_b");
        assert_eq!(sanitize("2nd phone"), "f_2nd_phone");
        assert_eq!(sanitize("Ärger"), "rger");
        assert_eq!(sanitize("!!!"), "field");
    }

    #[test]
    fn values_are_converted_to_their_column_kind() {
        assert_eq!(cell(ColKind::BigInt, &serde_json::json!(7)), Cell::Int(7));
        assert_eq!(
            cell(
                ColKind::BigInt,
                &serde_json::json!({"value": 3, "name": "x"})
            ),
            Cell::Int(3)
        );
        assert_eq!(
            cell(ColKind::Double, &serde_json::json!("1.5")),
            Cell::Float(1.5)
        );
        assert_eq!(
            cell(ColKind::Json, &serde_json::json!([1, 2])),
            Cell::Text("[1,2]".into())
        );
        assert_eq!(cell(ColKind::Text, &Value::Null), Cell::Null);
    }
}
