//! One recorded AWS request, decoded from a line of moto's recording

use std::collections::BTreeMap;

use base64::Engine;

/// One request moto received, decoded enough to assert which AWS actions code called and in what order
///
/// The recording holds requests, not responses: a call moto refused (NoSuchEntity,
/// DeleteConflict, ...) is listed like one it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCall {
    /// The signing service from `Authorization: ... Credential=AKID/DATE/REGION/SERVICE/aws4_request`
    /// (e.g. "iam", "organizations"), else guessed from the `X-Amz-Target` prefix; empty when unknown
    pub service: String,
    /// The `Action` form or query field (query protocols: IAM, STS), else the part of
    /// `X-Amz-Target` after the dot (JSON protocols: Organizations, Secrets Manager); empty for REST calls
    pub action: String,
    /// The access key id from the `Authorization` credential scope; empty when unsigned
    pub access_key: String,
    /// The HTTP method, e.g. "POST"
    pub method: String,
    /// The path and query string, e.g. "/" or "/2015-03-31/functions"
    pub path: String,
    /// Decoded query string and form fields (Action and Version included); for a JSON body its
    /// top-level strings, numbers and booleans as text (nested values and nulls left out)
    pub params: BTreeMap<String, String>,
}

impl AwsCall {
    /// A call built by hand, to test code that reads recordings without starting moto
    pub fn new(service: &str, action: &str, params: &[(&str, &str)]) -> AwsCall {
        AwsCall {
            service: service.to_owned(),
            action: action.to_owned(),
            access_key: String::new(),
            method: "POST".to_owned(),
            path: "/".to_owned(),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// A parameter's value, e.g. `call.param("UserName")`
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// Whether the action only reads (Get*, List*, Describe*, Generate*), to count mutations apart
    ///
    /// Generate* (IAM's credential report, service-last-accessed) creates a report but changes no
    /// identity, so it counts as a read. A call without an action (REST) is not a read.
    pub fn is_read(&self) -> bool {
        ["Get", "List", "Describe", "Generate"]
            .iter()
            .any(|p| self.action.starts_with(p))
    }
}

/// How many recorded calls read and how many may have changed something
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// Calls whose action [`AwsCall::is_read`]
    pub reads: usize,
    /// All other calls
    pub mutations: usize,
}

/// Counts reads and mutations, e.g. to report how many mutating calls a revocation took
pub fn count_calls(calls: &[AwsCall]) -> CallCounts {
    let reads = calls.iter().filter(|c| c.is_read()).count();
    CallCounts {
        reads,
        mutations: calls.len() - reads,
    }
}

/// The calls of one action (any service), in order, e.g. `calls_named(&calls, "DeleteUser")`
pub fn calls_named<'a>(
    calls: &'a [AwsCall],
    action: &'a str,
) -> impl Iterator<Item = &'a AwsCall> + 'a {
    calls.iter().filter(move |c| c.action == action)
}

/// The actions in order, e.g. `["CreateUser", "DeleteUser"]`, for short assertions and messages
pub fn actions(calls: &[AwsCall]) -> Vec<&str> {
    calls.iter().map(|c| c.action.as_str()).collect()
}

/// Decodes one line of the recording (`{"headers", "method", "url", "body", "body_encoded"}`)
pub(crate) fn parse_line(line: &str) -> Result<AwsCall, String> {
    let entry: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not json: {e}"))?;
    let text = |key: &str| entry.get(key).and_then(|v| v.as_str()).unwrap_or_default();
    let header = |name: &str| {
        entry
            .get("headers")
            .and_then(|h| h.as_object())
            .and_then(|h| {
                h.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .and_then(|(_, v)| v.as_str())
            })
            .unwrap_or_default()
    };
    let body = if entry.get("body_encoded").and_then(|v| v.as_bool()) == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(text("body"))
            .map_err(|e| format!("body is not base64: {e}"))?
    } else {
        text("body").as_bytes().to_vec()
    };

    let url = text("url");
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => url,
    };
    let mut params = BTreeMap::new();
    if let Some((_, query)) = path.split_once('?') {
        params.extend(form_urlencoded::parse(query.as_bytes()).into_owned());
    }
    let content_type = header("Content-Type");
    let trimmed = body.trim_ascii_start();
    if content_type.contains("json") || trimmed.starts_with(b"{") {
        if let Ok(serde_json::Value::Object(fields)) =
            serde_json::from_slice::<serde_json::Value>(&body)
        {
            for (k, v) in fields {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    _ => continue,
                };
                params.insert(k, v);
            }
        }
    } else if content_type.contains("x-www-form-urlencoded")
        || (!trimmed.is_empty() && content_type.is_empty())
    {
        params.extend(form_urlencoded::parse(&body).into_owned());
    }

    let target = header("X-Amz-Target");
    let action = match params.get("Action") {
        Some(a) => a.clone(),
        None => target
            .rsplit_once('.')
            .map(|(_, a)| a.to_owned())
            .unwrap_or_default(),
    };
    let (access_key, scope_service) = credential(header("Authorization"));
    let service = if scope_service.is_empty() {
        service_from_target(target)
    } else {
        scope_service
    };
    Ok(AwsCall {
        service,
        action,
        access_key,
        method: text("method").to_owned(),
        path: path.to_owned(),
        params,
    })
}

/// (access key id, service) from `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, ...`
fn credential(authorization: &str) -> (String, String) {
    let Some(i) = authorization.find("Credential=") else {
        return (String::new(), String::new());
    };
    let scope = authorization[i + "Credential=".len()..]
        .split([',', ' '])
        .next()
        .unwrap_or_default();
    let parts: Vec<&str> = scope.split('/').collect();
    let service = if parts.len() == 5 { parts[3] } else { "" };
    (parts[0].to_owned(), service.to_owned())
}

/// "organizations" from "AWSOrganizationsV20161128", "secretsmanager" from "secretsmanager"
fn service_from_target(target: &str) -> String {
    let Some((prefix, _)) = target.split_once('.') else {
        return String::new();
    };
    let name = prefix.strip_prefix("AWS").unwrap_or(prefix);
    let name = match name.rfind(['V', '_']) {
        Some(i) if i > 0 && name[i + 1..].chars().all(|c| c.is_ascii_digit()) => &name[..i],
        _ => name,
    };
    name.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_and_json_protocol_lines() {
        // "Action=DeleteUser&Version=2010-05-08&UserName=al%2Bice"
        let form = base64::engine::general_purpose::STANDARD
            .encode("Action=DeleteUser&Version=2010-05-08&UserName=al%2Bice");
        let line = format!(
            r#"{{"headers": {{"Host": "127.0.0.1:1", "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=x", "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}}, "method": "POST", "url": "http://127.0.0.1:1/", "body": "{form}", "body_encoded": true}}"#
        );
        let call = parse_line(&line).expect("query line");
        assert_eq!(call.action, "DeleteUser");
        assert_eq!(call.service, "iam");
        assert_eq!(call.access_key, "AKIDEXAMPLE");
        assert_eq!(call.param("UserName"), Some("al+ice"));
        assert_eq!(call.path, "/");

        let json = base64::engine::general_purpose::STANDARD.encode(
            r#"{"AccountId":"111122223333","Force":true,"N":3,"Tags":[{"Key":"a"}],"X":null}"#,
        );
        let line = format!(
            r#"{{"headers": {{"x-amz-target": "AWSOrganizationsV20161128.CloseAccount", "Content-Type": "application/x-amz-json-1.1"}}, "method": "POST", "url": "http://127.0.0.1:1/", "body": "{json}", "body_encoded": true}}"#
        );
        let call = parse_line(&line).expect("json line");
        assert_eq!(call.action, "CloseAccount");
        assert_eq!(call.service, "organizations", "guessed from the target");
        assert_eq!(call.access_key, "");
        let keys: Vec<&str> = call.params.keys().map(String::as_str).collect();
        assert_eq!(keys, ["AccountId", "Force", "N"]);
        assert_eq!(call.param("Force"), Some("true"));

        let line = r#"{"headers": {}, "method": "GET", "url": "http://127.0.0.1:1/?Action=GetUser&UserName=bob", "body": "", "body_encoded": false}"#;
        let call = parse_line(line).expect("get line");
        assert_eq!(
            (call.action.as_str(), call.param("UserName")),
            ("GetUser", Some("bob"))
        );
        assert!(call.is_read());
        assert!(parse_line("{not json").is_err());
    }

    #[test]
    fn guesses_services_from_targets() {
        assert_eq!(
            service_from_target("AWSOrganizationsV20161128.ListAccounts"),
            "organizations"
        );
        assert_eq!(
            service_from_target("secretsmanager.GetSecretValue"),
            "secretsmanager"
        );
        assert_eq!(service_from_target("DynamoDB_20120810.GetItem"), "dynamodb");
        assert_eq!(service_from_target(""), "");
    }
}
