use super::errors::error_text;

#[test]
fn pipedrive_error_text_is_kept_verbatim_with_its_info() {
    let body = serde_json::json!({"success": false, "error": "Entity was not found", "error_info": "Object was not found.", "data": null});
    let (code, message) = error_text(&body, "");
    assert_eq!(code, None);
    assert_eq!(message, "Entity was not found (Object was not found.)");
}

#[test]
fn an_account_limit_code_is_read_from_the_body() {
    let body = serde_json::json!({"success": false, "error": "Couldn't add the deal. Open deals limit reached.", "code": "feature_capping_deals_limit"});
    let (code, _) = error_text(&body, "");
    assert_eq!(code.as_deref(), Some("feature_capping_deals_limit"));
}

#[test]
fn a_body_that_is_not_json_is_quoted_raw() {
    let (_, message) = error_text(&serde_json::Value::Null, "<html>Cloudflare</html>");
    assert_eq!(message, "<html>Cloudflare</html>");
}
