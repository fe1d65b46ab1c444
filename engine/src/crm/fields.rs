//! The connection's field map: which local field lives where on the CRM's person, and how it
//! syncs. CRM-neutral: a custom field is named by the CRM's own key and type.

use std::collections::BTreeMap;

use tandem_core::{keys, CurrencyCode, EmailAddress, FieldKey, FieldRule, FieldValue, MergePolicy};

/// Where a local field lives on the CRM's person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteField {
    Name,
    Emails,
    Phones,
    OwnerId,
    /// The person's organization, by name (Pipedrive's `org_id`): read as the organization's
    /// name, written as the id of the organization found or created by that name.
    Organization,
    /// A custom field: the CRM's key (Pipedrive's 40-hex key) and field type (`varchar`,
    /// `double`, `enum`, …).
    Custom {
        key: String,
        field_type: String,
        /// For a `monetary` field mapped to a local *number* field: the currency the local
        /// numbers are in (written as `{value, currency}`; read back as the bare amount).
        /// `None`: the local field holds amounts with their currency.
        currency: Option<CurrencyCode>,
    },
    /// A field of the person's organization (a mapping of entity `organization`): the CRM's
    /// key (Pipedrive's built-in `address`, or a custom field's key) and field type. Read from
    /// and written to the organization the person belongs to, never to the person.
    OrganizationField {
        key: String,
        field_type: String,
        /// As for [`RemoteField::Custom`]: a `monetary` field's currency for bare numbers.
        currency: Option<CurrencyCode>,
    },
}

impl RemoteField {
    /// Whether the field lives on the person's organization rather than the person.
    pub fn is_organization_field(&self) -> bool {
        matches!(self, Self::OrganizationField { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedField {
    pub local: FieldKey,
    pub remote: RemoteField,
    pub rule: FieldRule,
}

/// A CRM field as the field mapping checks it against a local field: its key, name and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteFieldRef<'a> {
    pub key: &'a str,
    pub name: &'a str,
    pub field_type: &'a str,
}

/// The fields a connection syncs, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMap {
    pub fields: Vec<MappedField>,
    /// The `apId` custom field's key, once created.
    pub apid_key: Option<String>,
}

fn builtin(local: &str, remote: RemoteField) -> MappedField {
    MappedField {
        local: FieldKey::new(local).unwrap_or_else(|_| unreachable_key()),
        remote,
        rule: FieldRule::default(),
    }
}

#[allow(clippy::panic)]
fn unreachable_key() -> FieldKey {
    panic!("built-in field names are valid keys")
}

impl FieldMap {
    /// Name, e-mails and phones both ways; the owner from the CRM only.
    pub fn defaults(apid_key: Option<String>) -> Self {
        let mut owner = builtin(keys::OWNER_ID, RemoteField::OwnerId);
        owner.rule.direction = tandem_core::Direction::Inbound;
        Self {
            fields: vec![
                builtin(keys::NAME, RemoteField::Name),
                builtin(keys::EMAIL, RemoteField::Emails),
                builtin(keys::PHONE, RemoteField::Phones),
                owner,
            ],
            apid_key,
        }
    }

    /// The defaults plus the contact's company as the person's organization (a CRM with
    /// organizations: Pipedrive), unless the company is mapped otherwise.
    pub fn with_organization(mut self) -> Self {
        if self.get_str(keys::ORG_NAME).is_none() {
            self.fields
                .push(builtin(keys::ORG_NAME, RemoteField::Organization));
        }
        self
    }

    /// The defaults plus the contact's company as the text field `field` of the person (a
    /// Salesforce Lead's `Company`; a Contact has none, so it is neither written nor read
    /// there), unless the company is mapped otherwise or another local field is mapped to
    /// `field` (two local fields would write it).
    pub fn with_company_field(mut self, field: &str) -> Self {
        let taken = self.fields.iter().any(|f| {
            matches!(&f.remote, RemoteField::Custom { key, .. } if key.eq_ignore_ascii_case(field))
        });
        if !taken && self.get_str(keys::ORG_NAME).is_none() {
            self.fields.push(builtin(
                keys::ORG_NAME,
                RemoteField::Custom {
                    key: field.to_owned(),
                    field_type: "string".to_owned(),
                    currency: None,
                },
            ));
        }
        self
    }

    fn get_str(&self, local: &str) -> Option<&MappedField> {
        self.fields.iter().find(|f| f.local.as_str() == local)
    }

    /// The local field mapped to the person's organization, if any.
    pub fn organization_field(&self) -> Option<&MappedField> {
        self.fields
            .iter()
            .find(|f| f.remote == RemoteField::Organization)
    }

    /// The local fields mapped to fields of the person's organization.
    pub fn organization_fields(&self) -> impl Iterator<Item = &MappedField> {
        self.fields
            .iter()
            .filter(|f| f.remote.is_organization_field())
    }

    pub fn policy(&self) -> MergePolicy {
        MergePolicy {
            default: tandem_core::ConflictRule::LastWriterWins,
            fields: self
                .fields
                .iter()
                .map(|f| (f.local.clone(), f.rule))
                .collect(),
        }
    }

    pub fn get(&self, local: &FieldKey) -> Option<&MappedField> {
        self.fields.iter().find(|f| &f.local == local)
    }

    /// Keeps only the mapped fields of a local snapshot.
    pub fn restrict(
        &self,
        fields: &BTreeMap<FieldKey, FieldValue>,
    ) -> BTreeMap<FieldKey, FieldValue> {
        fields
            .iter()
            .filter(|(k, _)| self.get(k).is_some())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The primary e-mail of a local e-mail field value.
pub fn email_of(value: Option<&FieldValue>) -> Option<EmailAddress> {
    match value? {
        FieldValue::Emails(list) => {
            let chosen = list.iter().find(|e| e.primary).or_else(|| list.first())?;
            EmailAddress::parse(&chosen.value).ok()
        }
        FieldValue::Text(s) => EmailAddress::parse(s).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(local: &str, key: &str) -> MappedField {
        builtin(
            local,
            RemoteField::Custom {
                key: key.to_owned(),
                field_type: "string".to_owned(),
                currency: None,
            },
        )
    }

    #[test]
    fn the_company_field_is_the_default_only_while_neither_side_is_mapped_otherwise() {
        let company = |map: &FieldMap| {
            map.fields
                .iter()
                .filter(
                    |f| matches!(&f.remote, RemoteField::Custom { key, .. } if key == "Company"),
                )
                .map(|f| f.local.as_str().to_owned())
                .collect::<Vec<_>>()
        };
        let map = FieldMap::defaults(None).with_company_field("Company");
        assert_eq!(company(&map), [keys::ORG_NAME]);
        // The app's company mapped elsewhere: no default.
        let mut map = FieldMap::defaults(None);
        map.fields.push(custom(keys::ORG_NAME, "Account_Name__c"));
        assert!(company(&map.with_company_field("Company")).is_empty());
        // Another local field mapped to Company: it stays the only one.
        let mut map = FieldMap::defaults(None);
        map.fields.push(custom("firm", "Company"));
        assert_eq!(company(&map.with_company_field("Company")), ["firm"]);
    }
}
