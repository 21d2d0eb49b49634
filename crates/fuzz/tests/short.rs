//! The short pass: a fixed number of inputs per target with a fixed seed (no time budget, so
//! the result does not depend on the machine), failing on any oracle failure. One test per
//! target, so the targets run in parallel.

use revoke_fuzz::{run_counted, Options};

/// Inputs per target; the long run is `cargo run -p revoke-fuzz --release -- --seconds 600`.
const PER_TARGET: u64 = 1_500;
const SEED: u64 = 13;

fn pass(target: &str) {
    let stats =
        run_counted(&[target], SEED, PER_TARGET, &Options::default()).expect("target builds");
    let s = &stats[0];
    assert_eq!(s.inputs, PER_TARGET);
    assert_eq!(s.failure_count(), 0, "oracle failures:\n{s}");
    println!("{s}");
}

macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                pass(stringify!($name));
            }
        )*

        #[test]
        fn every_target_has_a_test() {
            let tested = [$(stringify!($name)),*];
            for t in revoke_fuzz::all_targets() {
                assert!(tested.contains(&t), "target {t} has no short pass");
            }
        }
    };
}

targets!(
    standard_webhooks,
    bamboohr,
    hibob,
    gusto,
    personio,
    okta,
    scim,
    generic,
    import,
    ldap_filter,
    dn,
    scim_filter,
    url,
);
