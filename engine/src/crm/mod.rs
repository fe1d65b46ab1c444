//! CRM adapters. Each adapter has the same file set (conventions C11); the base URL always
//! comes from the connection, never from a constant.

pub mod http;
pub mod limiter;
pub mod pipedrive;
