//! `revokectl plan|apply --user` refuses a look-alike identifier before any directory sees it:
//! OpenLDAP would fold `ａｌｉｃｅ` into `uid=alice`.

mod common;

use common::Env;

#[test]
fn plan_and_apply_refuse_look_alike_subjects_and_touch_nothing() {
    let env = Env::new("", "");
    for args in [
        &["plan", "--user", "ａｌｉｃｅ"][..],
        &[
            "apply",
            "--user",
            "ａｌｉｃｅ",
            "--risk",
            "high",
            "--auto-approve",
        ][..],
        &["apply", "--user", "al\u{200B}ice", "--auto-approve"][..],
        &["apply", "--user", "\u{430}lice", "--auto-approve"][..],
    ] {
        let run = env.ctl(args);
        assert_ne!(run.code, 0, "{args:?}: {}", run.stdout);
        assert!(
            run.stderr.contains("--user: expected"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let run = env.ctl(&["plan", "--user", "ａｌｉｃｅ"]);
    assert!(
        run.stderr.contains("a look-alike of \"alice\""),
        "{}",
        run.stderr
    );
    assert!(!env.alice_locked());
    assert!(
        env.mutations_per_dn().is_empty(),
        "{:?}",
        env.mutations_per_dn()
    );
}
