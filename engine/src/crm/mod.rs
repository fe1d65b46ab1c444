//! CRM adapters. Each adapter has the same file set (conventions C11); the base URL always
//! comes from the connection, never from a constant. Use-cases go through [`Crm`], the one
//! boundary (ADR 0011), and see persons as [`CrmPerson`].

pub mod connector;
pub mod fields;
pub mod http;
pub mod limiter;
pub mod person;
pub mod pipedrive;
pub mod records;
pub mod salesforce;
pub mod session;

pub use connector::Crm;
pub use fields::{email_of, FieldMap, MappedField, RemoteField};
pub use person::{Conversion, CrmPerson, CrmTime, PersonPage};
pub use records::{
    BatchSearch, CampaignMembership, CatalogField, CheckedRecord, CreatedPerson, CrmActivity,
    CrmDeal, CrmNote, CrmOrganization, CrmRelated, CrmStage, CrmUser, FilledPlaceholder,
    LoggedEmail, NewActivity, NewDeal, NewPerson, Notification, NotificationHealth,
    NotificationTarget, PausedNotification, RelatedKind, RelatedPage, TokenGrant, TokenKind,
};
pub use session::{Auth, Session};
