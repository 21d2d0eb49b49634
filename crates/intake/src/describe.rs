//! How a JSON value is shown in "found ..." messages, for config issues and payload errors.

use serde_json::Value;

/// A short description of a value for "found ..." (strings are cut short).
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) => {
            let short: String = s.chars().take(40).collect();
            if short.len() < s.len() {
                format!("the string {short:?}...")
            } else {
                format!("the string {short:?}")
            }
        }
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a table".to_string(),
    }
}
