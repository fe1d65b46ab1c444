//! The sync log's use-case face: the records live in [`crate::store::synclog`].

pub use crate::store::synclog::*;
