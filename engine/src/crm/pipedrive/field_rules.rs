//! Which Pipedrive fields the field mapping takes, and which local values each can hold.

use crate::crm::fields::RemoteFieldRef;

/// The person's built-in fields tandem maps.
const BUILTIN_MAPPABLE: [&str; 4] = ["name", "email", "phone", "owner_id"];
/// The organization's built-in fields tandem maps (its name is the company, `org_id`).
const ORGANIZATION_BUILTIN_MAPPABLE: [&str; 1] = ["address"];

/// Whether a built-in field of the person (or of its `organization`) can be mapped.
pub fn builtin_mappable(organization: bool, key: &str) -> bool {
    let builtins: &[&str] = if organization {
        &ORGANIZATION_BUILTIN_MAPPABLE
    } else {
        &BUILTIN_MAPPABLE
    };
    builtins.contains(&key)
}

/// The built-in fields that map, in words (for a refusal).
pub fn mappable_builtins(organization: bool) -> &'static str {
    if organization {
        "the organization's address"
    } else {
        "name, email, phone, owner_id"
    }
}

/// Which Pipedrive field types can hold a local kind, and in words.
pub fn compatible(local: &str, remote: &RemoteFieldRef<'_>) -> Result<(), String> {
    let ok: &[&str] = match local {
        "text" => &[
            "varchar",
            "varchar_auto",
            "text",
            "phone",
            "address",
            "varchar_options",
        ],
        "number" => &["double", "monetary", "int", "user", "org", "people"],
        "money" => &["monetary"],
        "date" => &["date"],
        "daterange" => &["daterange"],
        "time" => &["time"],
        "timerange" => &["timerange"],
        "address" => &["address"],
        "option" => &["enum"],
        "options" => &["set"],
        "emails" => &["varchar", "text"],
        "phones" => &["phone", "varchar", "text"],
        _ => &[],
    };
    let emails_builtin = remote.key == "email";
    let phones_builtin = remote.key == "phone";
    if (emails_builtin && local != "emails" && local != "text")
        || (phones_builtin && local != "phones" && local != "text")
    {
        return Err(format!(
            "the local field holds {local} values, but Pipedrive's {} field takes e-mail addresses or phone numbers",
            remote.name
        ));
    }
    if emails_builtin || phones_builtin || ok.contains(&remote.field_type) {
        return Ok(());
    }
    let wanted = ok.join(", ");
    Err(format!(
        "the local field holds {local} values, but Pipedrive field \"{}\" ({}) is of type `{}`{}; map it to a Pipedrive field of type {wanted}, or pick another local field",
        remote.name,
        remote.key,
        remote.field_type,
        match remote.field_type {
            "enum" => " (a single option: it takes option ids)",
            "set" => " (multiple options: it takes a list of option ids)",
            "double" => " (a number)",
            "monetary" => " (an amount with a currency)",
            "user" | "org" | "people" => " (a Pipedrive id)",
            "date" => " (a date, YYYY-MM-DD)",
            "daterange" => " (a range of dates)",
            "time" => " (a time of day)",
            "timerange" => " (a range of times)",
            "address" => " (an address)",
            _ => "",
        }
    ))
}
