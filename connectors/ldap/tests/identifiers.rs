//! Against a real slapd: OpenLDAP folds look-alikes in its filters (`(uid=ｄａｖｅ)` finds
//! `uid=dave`, fullwidth digits find `employeeNumber=123`); discovery reports only an entry that
//! carries the identifier asked for, ignoring case and nothing else.

mod common;

use common::*;
use revoke_core::Subject;
use revoke_testkit::Slapd;
use serde_json::json;

const DAVE: &str = "uid=dave,ou=people,dc=example,dc=org";
const KIM: &str = "uid=kim,ou=people,dc=example,dc=org";

const LDIF: &str = "dn: uid=dave,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: dave
cn: Dave Doe
sn: Doe
mail: dave@example.org
employeeNumber: 123

dn: uid=kim,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: kim
cn: Kim Kay
sn: Kay
employeeNumber: 456
";

fn slapd() -> Slapd {
    let s = Slapd::start().expect("slapd starts");
    s.add_ldif(LDIF).expect("fixture loads");
    s
}

#[tokio::test]
async fn look_alikes_the_directory_folds_find_no_account() {
    let slapd = slapd();
    // The stand-in folds as a production OpenLDAP does: without our check these would be found.
    // (mail is IA5String: the server does not fold it.) A KELVIN SIGN lowercases to `k` in
    // Unicode, so a comparison by `to_lowercase` took it for `kim` too.
    for (filter, dn) in [
        ("(uid=ｄａｖｅ)", DAVE),
        ("(employeeNumber=１２３)", DAVE),
        ("(uid=\u{212A}im)", KIM),
    ] {
        let found = slapd
            .search(Slapd::PEOPLE, filter, &["uid"])
            .expect("search");
        assert_eq!(dns(&found), [dn], "slapd folds {filter}");
    }

    let c = connector(&slapd, json!({}));
    let mut subjects = vec![
        Subject::new("ｄａｖｅ"),
        Subject::new("ＤＡＶＥ"),
        Subject::new("１２３"),
        Subject::new("ｄａｖｅ@example.org"),
    ];
    let mut by_employee_id = Subject::new("E-none");
    by_employee_id.employee_id = Some("１２３".into());
    subjects.push(by_employee_id);
    subjects.push(Subject::new("\u{212A}im"));
    for s in &subjects {
        let d = c.discover(s).await.expect("discovery");
        assert!(
            !d.found && d.accounts.is_empty(),
            "{:?} must find nothing: {d:?}",
            s.id
        );
    }
}

#[tokio::test]
async fn the_identifier_itself_is_found_in_any_ascii_case() {
    let slapd = slapd();
    let c = connector(&slapd, json!({}));
    for id in ["dave", "DAVE", "123", "Dave@Example.org"] {
        let d = c.discover(&Subject::new(id)).await.expect("discovery");
        assert!(d.found, "{id}: {d:?}");
        assert_eq!(d.accounts[0].name, DAVE, "{id}");
    }
}
