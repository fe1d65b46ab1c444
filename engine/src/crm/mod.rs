//! CRM adapters. Each adapter has the same file set (conventions C11); the base URL always
//! comes from the connection, never from a constant. Use-cases go through [`Crm`], the one
//! boundary (ADR 0011), and see persons as [`CrmPerson`].

pub mod connector;
pub mod http;
pub mod limiter;
pub mod person;
pub mod pipedrive;

pub use connector::Crm;
pub use person::{CrmPerson, CrmTime, PersonPage};
pub use pipedrive::mapping::{email_of, FieldMap, ToCrmPerson};
