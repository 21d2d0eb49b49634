//! The one rule identifiers (employee id, email, username) follow wherever they enter revoked:
//! intake, the batch import, the API and `revokectl`. A directory or an app may fold what we
//! send it (OpenLDAP's `(uid=ｄａｖｅ)` matches `uid=dave`, fullwidth digits match
//! `employeeNumber=123`), so an identifier that only looks like another must never get that
//! far.
//!
//! The rule ([`check`]):
//! - no control, format (zero-width, bidi), separator (any space, line or paragraph separator),
//!   private-use, surrogate or unassigned character anywhere in it;
//! - NFKC normalisation leaves it as it is (no fullwidth or compatibility forms, no ligatures,
//!   no decomposed accents);
//! - each segment is written in one script, as Unicode's "highly restrictive" level (UTS #39)
//!   says: one script, or Latin with Han and Hiragana/Katakana, Bopomofo or Hangul. A segment
//!   is a run of characters between ASCII characters that are neither letters nor digits
//!   (`.`, `@`, `-`, `_`, `+`, ...), so `dave.petrov@example.org` has the segments `dave`,
//!   `petrov`, `example` and `org`, and `иван.petrov@example.org` passes while `dаve` (a Cyrillic
//!   `а`) does not. Characters of the Common and Inherited scripts (digits, marks) belong to
//!   any segment.
//!
//! Connectors then confirm that an account carries exactly the identifier asked for with
//! [`same_ignoring_case`] (systems that ignore case) or `==` (systems that do not).

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use unicode_script::{Script, UnicodeScript};

/// Why an identifier was refused: the field and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct IdentifierError {
    /// `employee_id`, `email` or `username`, as the caller named it.
    pub field: String,
    pub problem: Problem,
}

/// What is wrong with a refused identifier; the message says what was expected and found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("expected no control, format, space or unassigned characters, found U+{code:04X} ({category}) at character {position} of {value:?}")]
    Character {
        value: String,
        code: u32,
        category: &'static str,
        /// 1-based.
        position: usize,
    },
    #[error("expected an identifier that NFKC normalisation leaves unchanged, found {value:?}, a look-alike of {normalized:?}")]
    NotNormalized { value: String, normalized: String },
    #[error(
        "expected each segment in one script, found {segment:?} mixing {scripts} in {value:?}"
    )]
    MixedScripts {
        value: String,
        segment: String,
        scripts: String,
    },
}

/// The script sets one segment may mix (UTS #39 "highly restrictive"), besides a single script.
const ALLOWED_MIXES: [&[Script]; 3] = [
    &[
        Script::Latin,
        Script::Han,
        Script::Hiragana,
        Script::Katakana,
    ],
    &[Script::Latin, Script::Han, Script::Bopomofo],
    &[Script::Latin, Script::Han, Script::Hangul],
];

/// At most this many characters of a refused value are repeated in the error.
const SHOWN: usize = 64;

fn shown(value: &str) -> String {
    let mut s: String = value.chars().take(SHOWN).collect();
    if s.len() < value.len() {
        s.push_str("...");
    }
    s
}

fn refused(field: &str, problem: Problem) -> IdentifierError {
    IdentifierError {
        field: field.to_string(),
        problem,
    }
}

fn forbidden(c: char) -> Option<&'static str> {
    Some(match c.general_category() {
        GeneralCategory::Control => "control",
        GeneralCategory::Format => "format",
        GeneralCategory::SpaceSeparator => "space",
        GeneralCategory::LineSeparator => "line separator",
        GeneralCategory::ParagraphSeparator => "paragraph separator",
        GeneralCategory::PrivateUse => "private use",
        GeneralCategory::Surrogate => "surrogate",
        GeneralCategory::Unassigned => "unassigned",
        _ => return None,
    })
}

/// Checks an identifier against the rule in this module's documentation. `field` names it in
/// the error (`employee_id`, `email`, `username`). Callers trim first where they trim: a space
/// left anywhere is refused.
pub fn check(field: &str, value: &str) -> Result<(), IdentifierError> {
    for (i, c) in value.chars().enumerate() {
        if let Some(category) = forbidden(c) {
            return Err(refused(
                field,
                Problem::Character {
                    value: shown(value),
                    code: u32::from(c),
                    category,
                    position: i + 1,
                },
            ));
        }
    }
    let normalized: String = value.nfkc().collect();
    if normalized != value {
        return Err(refused(
            field,
            Problem::NotNormalized {
                value: shown(value),
                normalized: shown(&normalized),
            },
        ));
    }
    for segment in value.split(|c: char| c.is_ascii() && !c.is_ascii_alphanumeric()) {
        let mut scripts: Vec<Script> = Vec::new();
        for c in segment.chars() {
            let s = c.script();
            if !matches!(s, Script::Common | Script::Inherited) && !scripts.contains(&s) {
                scripts.push(s);
            }
        }
        let one_mix = scripts.len() <= 1
            || ALLOWED_MIXES
                .iter()
                .any(|mix| scripts.iter().all(|s| mix.contains(s)));
        if !one_mix {
            return Err(refused(
                field,
                Problem::MixedScripts {
                    value: shown(value),
                    segment: shown(segment),
                    scripts: scripts
                        .iter()
                        .map(|s| s.full_name())
                        .collect::<Vec<_>>()
                        .join(" and "),
                },
            ));
        }
    }
    Ok(())
}

/// Whether an account's stored value is the identifier asked for, in a system that ignores
/// case: equal character by character, where two ASCII characters may differ in ASCII case and
/// two non-ASCII characters in Unicode case, but an ASCII character never equals a non-ASCII
/// one (no width folding, no Kelvin sign for `k`, no compatibility forms).
pub fn same_ignoring_case(requested: &str, found: &str) -> bool {
    let mut a = requested.chars();
    let mut b = found.chars();
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) if x.is_ascii() && y.is_ascii() => {
                if !x.eq_ignore_ascii_case(&y) {
                    return false;
                }
            }
            (Some(x), Some(y)) if !x.is_ascii() && !y.is_ascii() => {
                if !x.to_lowercase().eq(y.to_lowercase()) {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Whether two values are one under NFKC and Unicode lowercase, the folds a lenient directory
/// or app applies: a stored value that looks alike but is not [`same_ignoring_case`] is worth
/// a warning when a server returned it for the identifier asked for.
pub fn looks_alike(a: &str, b: &str) -> bool {
    let fold = |s: &str| s.nfkc().collect::<String>().to_lowercase();
    fold(a) == fold(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_identifiers_pass() {
        for v in [
            "dave",
            "Dave.Smith@Example.org",
            "E-1004",
            "123456789012345678901234567890",
            "иван.petrov@example.org",
            "josé",
            "Δημήτρης",
            "田中たなか",
            "김민준",
            "o'brien+hr@example.org",
        ] {
            assert_eq!(check("username", v), Ok(()), "{v}");
        }
    }

    #[test]
    fn look_alikes_are_refused_with_what_they_look_like() {
        let e = check("username", "ｄａｖｅ").expect_err("fullwidth");
        assert!(
            matches!(&e.problem, Problem::NotNormalized { normalized, .. } if normalized == "dave")
        );
        assert!(
            e.to_string()
                .starts_with("username: expected an identifier that NFKC"),
            "{e}"
        );
        let e = check("employee_id", "１２３").expect_err("fullwidth digits");
        assert!(
            matches!(&e.problem, Problem::NotNormalized { normalized, .. } if normalized == "123")
        );
        for v in ["ﬁona", "\u{212A}im", "jose\u{301}", "dave\u{2079}"] {
            assert!(
                matches!(
                    check("username", v),
                    Err(IdentifierError {
                        problem: Problem::NotNormalized { .. },
                        ..
                    })
                ),
                "{v}"
            );
        }
    }

    #[test]
    fn mixed_scripts_within_a_segment_are_refused() {
        // A Cyrillic а inside a Latin name.
        let e = check("username", "d\u{430}ve").expect_err("mixed");
        assert!(
            e.to_string().contains("Cyrillic and Latin")
                || e.to_string().contains("Latin and Cyrillic"),
            "{e}"
        );
        let e = check("email", "dave@ex\u{430}mple.org").expect_err("mixed domain");
        assert!(
            matches!(&e.problem, Problem::MixedScripts { segment, .. } if segment == "ex\u{430}mple")
        );
        assert!(check("username", "dave\u{3b1}").is_err());
    }

    #[test]
    fn invisible_and_space_characters_are_refused_where_they_are() {
        for (v, code, pos) in [
            ("da\u{200B}ve", 0x200B, 3),
            ("dave\u{202E}", 0x202E, 5),
            ("da ve", 0x20, 3),
            ("dave\n", 0x0A, 5),
            ("\u{FEFF}dave", 0xFEFF, 1),
            ("da\u{E000}ve", 0xE000, 3),
        ] {
            match check("username", v) {
                Err(IdentifierError {
                    problem:
                        Problem::Character {
                            code: c, position, ..
                        },
                    ..
                }) => {
                    assert_eq!((c, position), (code, pos), "{v:?}")
                }
                other => panic!("{v:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn same_ignoring_case_never_folds_width_or_crosses_ascii() {
        assert!(same_ignoring_case("dave", "DAVE"));
        assert!(same_ignoring_case("JOSÉ", "josé"));
        assert!(!same_ignoring_case("dave", "ｄａｖｅ"));
        assert!(!same_ignoring_case("ｄａｖｅ", "dave"));
        assert!(!same_ignoring_case("123", "１２３"));
        assert!(!same_ignoring_case("kim", "\u{212A}im"));
        assert!(!same_ignoring_case("dave", "dav"));
        assert!(!same_ignoring_case("dave", "d\u{430}ve"));
        assert!(looks_alike("dave", "ＤＡＶＥ") && looks_alike("kim", "\u{212A}im"));
        assert!(!looks_alike("dave", "d\u{430}ve"));
    }
}
