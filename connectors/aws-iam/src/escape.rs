//! Names from untrusted places (a job's username, a mapping) checked against IAM's own rules
//! before they reach a request or a file name.

/// An IAM user name: 1 to 64 of letters, digits and `+=,.@_-`. `../x`, `a/b` and `*)(uid=*`
/// are not.
pub fn is_user_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// A file name for a service user's secret that stays inside the secrets directory.
pub fn secret_file_name(account: &str, user: &str) -> Option<String> {
    if !is_user_name(user) || user.starts_with('.') {
        return None;
    }
    Some(format!("{account}.{user}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_follow_iam() {
        for ok in ["alice", "alice.smith@example.com", "svc-ci_2", "a+b=c,d"] {
            assert!(is_user_name(ok), "{ok}");
        }
        for bad in ["", "../x", "a/b", "*)(uid=*", "a b", "é", &"x".repeat(65)] {
            assert!(!is_user_name(bad), "{bad}");
        }
    }

    #[test]
    fn secret_files_stay_in_their_directory() {
        assert_eq!(
            secret_file_name("123456789012", "svc-ci").as_deref(),
            Some("123456789012.svc-ci.json")
        );
        assert_eq!(secret_file_name("123456789012", ".."), None);
        assert_eq!(secret_file_name("123456789012", "../x"), None);
    }
}
