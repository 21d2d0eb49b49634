//! `parse_import` on CSV and JSONL files.

mod common;

use common::{hex_sha256, now};
use revoke_intake::{parse_import, EventKind, ImportError, RiskRules};

fn berlin() -> chrono_tz::Tz {
    "Europe/Berlin".parse().expect("zone")
}

#[test]
fn csv_file() {
    let csv =
        "\u{feff}employee_id,email,username,effective_at,reason,involuntary,high_risk,event_id\n\
E-1,jane.doe@example.com,jdoe,2024-01-31,\"Misconduct, repeated\",yes,,\n\
E-2,,sam,2024-03-15T17:00:00-05:00,Resignation,false,true,batch-7\n\
\n\
E-3,,,,,,,\n";
    let events = parse_import(
        "leavers.csv",
        csv.as_bytes(),
        berlin(),
        &RiskRules::default(),
        now(),
    )
    .expect("imports");
    assert_eq!(events.len(), 3);
    let e = &events[0];
    assert_eq!(e.source, "import");
    assert_eq!(e.source_kind, "import");
    assert_eq!(e.kind, EventKind::Termination);
    assert_eq!(e.employee_id.as_deref(), Some("E-1"));
    assert_eq!(e.effective_at.to_rfc3339(), "2024-02-01T00:00:00+01:00");
    assert_eq!(e.reason.as_deref(), Some("Misconduct, repeated"));
    assert!(e.involuntary && e.high_risk);
    let line = "E-1,jane.doe@example.com,jdoe,2024-01-31,\"Misconduct, repeated\",yes,,";
    assert_eq!(e.source_event_id, hex_sha256(line.as_bytes()));
    assert_eq!(e.body_sha256, hex_sha256(line.as_bytes()));
    let e = &events[1];
    assert_eq!(e.source_event_id, "batch-7");
    assert_eq!(e.effective_at.to_rfc3339(), "2024-03-15T17:00:00-05:00");
    assert!(e.high_risk && !e.involuntary);
    let e = &events[2];
    assert_eq!(e.effective_at, now().fixed_offset(), "no date: now");
    assert_eq!(e.received_at, now());
}

#[test]
fn jsonl_file() {
    let jsonl =
        "{\"employee_id\": 1042, \"effective_at\": \"2024-07-31\", \"involuntary\": true}\r\n\
\n\
{\"email\": \"a@example.com\", \"event_id\": \"x1\", \"high_risk\": \"no\"}\n";
    let events = parse_import(
        "leavers.jsonl",
        jsonl.as_bytes(),
        berlin(),
        &RiskRules::default(),
        now(),
    )
    .expect("imports");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].employee_id.as_deref(), Some("1042"));
    assert_eq!(
        events[0].effective_at.to_rfc3339(),
        "2024-08-01T00:00:00+02:00"
    );
    assert!(events[0].high_risk);
    assert_eq!(
        events[0].source_event_id,
        hex_sha256(br#"{"employee_id": 1042, "effective_at": "2024-07-31", "involuntary": true}"#)
    );
    assert_eq!(events[1].source_event_id, "x1");
    assert!(!events[1].high_risk);
}

#[test]
fn department_column() {
    let import = |name: &str, text: &str| {
        parse_import(
            name,
            text.as_bytes(),
            berlin(),
            &RiskRules::default(),
            now(),
        )
    };
    let events = import("d.csv", "employee_id,department\nE-1, Finance \nE-2,\n").expect("imports");
    assert_eq!(events[0].department.as_deref(), Some("Finance"));
    assert_eq!(events[1].department, None);
    let events = import(
        "d.jsonl",
        "{\"email\": \"a@example.com\", \"department\": \"Sales\"}\n",
    )
    .expect("imports");
    assert_eq!(events[0].department.as_deref(), Some("Sales"));
    let e = import(
        "d.jsonl",
        "{\"email\": \"a@example.com\", \"department\": {\"name\": \"Sales\"}}\n",
    )
    .expect_err("a table is not a department");
    assert!(e.to_string().contains("department"), "{e}");
}

#[test]
fn errors_name_the_line_and_field() {
    let csv = "employee_id,effective_at\nE-1,2024-01-31\nE-2,31.01.2024\n";
    let err = parse_import(
        "leavers.csv",
        csv.as_bytes(),
        berlin(),
        &RiskRules::default(),
        now(),
    )
    .expect_err("bad date");
    match &err {
        ImportError::Line {
            line,
            field,
            message,
            file,
        } => {
            assert_eq!(
                (file.as_str(), *line, field.as_str()),
                ("leavers.csv", 3, "effective_at")
            );
            assert!(message.contains("\"31.01.2024\""), "{message}");
        }
        other => panic!("expected a line error, found {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("leavers.csv line 3: effective_at: expected"),
        "{err}"
    );

    let jsonl = "{\"email\":\"a@example.com\"}\n{\"reason\":\"x\"}\n";
    let err = parse_import(
        "x.jsonl",
        jsonl.as_bytes(),
        berlin(),
        &RiskRules::default(),
        now(),
    )
    .expect_err("no id");
    assert_eq!(
        err.to_string(),
        "x.jsonl line 2: employee_id: expected an employee_id, email, username or client_domain, found none"
    );

    let err = parse_import(
        "x.jsonl",
        b"{\"email\":\"a@b\"}\n{oops\n",
        berlin(),
        &RiskRules::default(),
        now(),
    )
    .expect_err("bad json");
    assert!(
        err.to_string()
            .starts_with("x.jsonl line 2: json: expected a JSON object"),
        "{err}"
    );

    let err = parse_import(
        "x.csv",
        b"emial\na@b\n",
        berlin(),
        &RiskRules::default(),
        now(),
    )
    .expect_err("typo");
    assert!(
        err.to_string()
            .starts_with("x.csv line 1: emial: expected one of the columns"),
        "{err}"
    );

    let err = parse_import(
        "x.csv",
        b"email,involuntary\na@b,perhaps\n",
        berlin(),
        &RiskRules::default(),
        now(),
    )
    .expect_err("bad bool");
    assert!(
        err.to_string()
            .starts_with("x.csv line 2: involuntary: expected true/false"),
        "{err}"
    );

    let err = parse_import(
        "x.csv",
        b"email,reason\na@b,x,extra\n",
        berlin(),
        &RiskRules::default(),
        now(),
    )
    .expect_err("ragged");
    assert!(err.to_string().starts_with("x.csv line 2: csv:"), "{err}");

    let err = parse_import("leavers.xlsx", b"", berlin(), &RiskRules::default(), now())
        .expect_err("format");
    assert_eq!(
        err.to_string(),
        "leavers.xlsx: expected a file ending in .csv, .jsonl or .ndjson, found \".xlsx\""
    );
}

#[test]
fn injection_looking_values_survive() {
    let csv = "employee_id,username,reason\n\"*)(uid=*\",../x,=cmd|' /C calc'!A0\n";
    let events = parse_import(
        "x.csv",
        csv.as_bytes(),
        chrono_tz::Tz::UTC,
        &RiskRules::default(),
        now(),
    )
    .expect("imports");
    assert_eq!(events[0].employee_id.as_deref(), Some("*)(uid=*"));
    assert_eq!(events[0].username.as_deref(), Some("../x"));
    assert_eq!(events[0].reason.as_deref(), Some("=cmd|' /C calc'!A0"));
}

#[test]
fn empty_file_is_no_events() {
    let events = parse_import(
        "x.csv",
        b"employee_id,email\n",
        chrono_tz::Tz::UTC,
        &RiskRules::default(),
        now(),
    )
    .expect("imports");
    assert!(events.is_empty());
    let events = parse_import(
        "x.ndjson",
        b"",
        chrono_tz::Tz::UTC,
        &RiskRules::default(),
        now(),
    )
    .expect("imports");
    assert!(events.is_empty());
}
