//! Links between contacts and persons: the records live in [`crate::store::links`].

pub use crate::store::links::*;
