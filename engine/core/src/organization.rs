//! The organization-matching rule (issue 20): a contact's company names the CRM organization
//! whose name is the same once surrounding spaces are trimmed, inner runs of spaces are one and
//! case is ignored. The key decides "same organization" both in tandem's claim table and
//! against what the CRM's exact search answers.

/// The matching key of a company name; `None` for an empty name (no organization).
pub fn organization_key(name: &str) -> Option<String> {
    let words: Vec<String> = name.split_whitespace().map(str::to_lowercase).collect();
    if words.is_empty() {
        None
    } else {
        Some(words.join(" "))
    }
}

/// A company name as tandem writes it to the CRM when it creates the organization: trimmed,
/// inner runs of spaces made one.
pub fn organization_display_name(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_surrounding_or_repeated_spaces_do_not_matter() {
        assert_eq!(
            organization_key("  ACME   Inc "),
            organization_key("acme inc")
        );
        assert_eq!(organization_key("Acme Inc").as_deref(), Some("acme inc"));
    }

    #[test]
    fn different_names_have_different_keys() {
        assert_ne!(organization_key("Acme Inc"), organization_key("Acme Ltd"));
    }

    #[test]
    fn an_empty_or_blank_company_is_no_organization() {
        assert_eq!(organization_key(""), None);
        assert_eq!(organization_key("   "), None);
    }

    #[test]
    fn the_created_name_keeps_case_and_drops_extra_spaces() {
        assert_eq!(organization_display_name("  Acme   Inc "), "Acme Inc");
    }
}
