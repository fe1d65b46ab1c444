//! The local contact store: its repository is `store::contacts`.

pub use crate::store::contacts::*;
