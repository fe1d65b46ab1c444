//! A table of records by id with an index on `(update_time, id)`: lists sorted by id or by
//! update time page in O(log n + page) however many records there are (100,000 deals, 200,000
//! activities), and `updated_since` starts at the right place.
//!
//! Reads go through `Deref` to the id-ordered map; writes go through [`Table::insert`] and
//! [`Table::modify`], which keep the index current.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;
use std::sync::Arc;

/// What the table needs to know about a record.
pub(crate) trait Record {
    /// The record's id (leads: their insertion number; their UUID is a field).
    fn id(&self) -> i64;
    /// Unix seconds of the last change.
    fn update_time(&self) -> i64;
}

impl<T: Record> Record for Arc<T> {
    fn id(&self) -> i64 {
        (**self).id()
    }

    fn update_time(&self) -> i64 {
        (**self).update_time()
    }
}

/// Records by id, indexed by `(update_time, id)`.
#[derive(Clone, Debug)]
pub(crate) struct Table<T> {
    rows: BTreeMap<i64, T>,
    by_update: BTreeSet<(i64, i64)>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            rows: BTreeMap::new(),
            by_update: BTreeSet::new(),
        }
    }
}

impl<T> Deref for Table<T> {
    type Target = BTreeMap<i64, T>;

    fn deref(&self) -> &Self::Target {
        &self.rows
    }
}

impl<T: Record> Table<T> {
    /// Inserts or replaces a record; returns the old one.
    pub(crate) fn insert(&mut self, id: i64, r: T) -> Option<T> {
        debug_assert_eq!(id, r.id());
        if let Some(old) = self.rows.get(&id) {
            self.by_update.remove(&(old.update_time(), id));
        }
        self.by_update.insert((r.update_time(), id));
        self.rows.insert(id, r)
    }

    /// Changes a record in place (re-indexing it if its update time moved).
    pub(crate) fn modify<R>(&mut self, id: i64, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let r = self.rows.get_mut(&id)?;
        let before = r.update_time();
        let out = f(r);
        let after = r.update_time();
        if before != after {
            self.by_update.remove(&(before, id));
            self.by_update.insert((after, id));
        }
        Some(out)
    }

    /// Removes a record for good.
    pub(crate) fn remove(&mut self, id: i64) -> Option<T> {
        let r = self.rows.remove(&id)?;
        self.by_update.remove(&(r.update_time(), id));
        Some(r)
    }

    /// `(update_time, id)` of every record, in order.
    pub(crate) fn by_update(&self) -> &BTreeSet<(i64, i64)> {
        &self.by_update
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug)]
    struct R(i64, i64);

    impl Record for R {
        fn id(&self) -> i64 {
            self.0
        }
        fn update_time(&self) -> i64 {
            self.1
        }
    }

    #[test]
    fn the_update_index_follows_inserts_modifications_and_removals() {
        let mut t = Table::default();
        t.insert(1, R(1, 50));
        t.insert(2, R(2, 10));
        t.insert(1, R(1, 5));
        t.modify(2, |r| r.1 = 70);
        let order: Vec<(i64, i64)> = t.by_update().iter().copied().collect();
        assert_eq!(order, vec![(5, 1), (70, 2)]);
        t.remove(1);
        assert_eq!(t.by_update().len(), 1);
        assert_eq!(t.len(), 1);
    }
}
