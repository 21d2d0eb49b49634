//! The one error type of the testkit

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Why a stand-in could not be started or driven, with the stand-in's log where it helps
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// A program could not be started or a file could not be read or written
    #[error("could not {action}: {source}")]
    Io {
        /// What was attempted, e.g. "run /usr/sbin/slapd"
        action: String,
        /// The underlying error
        #[source]
        source: std::io::Error,
    },

    /// A helper program (ldapadd, psql, initdb, ...) exited unsuccessfully
    #[error("{program} exited with {status}, expected success; its output: {output}")]
    ToolFailed {
        /// The program and what it was doing
        program: String,
        /// How it exited
        status: ExitStatus,
        /// Its stdout and stderr
        output: String,
    },

    /// A stand-in process exited while it was expected to keep running
    #[error(
        "{what} exited with {status} while starting, expected it to keep running; its log: {log}"
    )]
    Exited {
        /// The stand-in, e.g. "slapd on 127.0.0.1:41234"
        what: String,
        /// How it exited
        status: ExitStatus,
        /// The tail of its log
        log: String,
    },

    /// A stand-in did not become ready in time
    #[error("{what} did not accept connections on {addr} within {waited:?}; its log: {log}")]
    NotReady {
        /// The stand-in, e.g. "slapd"
        what: String,
        /// Where it should have listened
        addr: String,
        /// How long we waited
        waited: Duration,
        /// The tail of its log
        log: String,
    },

    /// Every attempt lost the race for a free port
    #[error("{what} could not bind a free port after {attempts} attempts, expected one to succeed; last log: {log}")]
    PortRace {
        /// The stand-in
        what: String,
        /// How many ports were tried
        attempts: u32,
        /// The tail of the last log
        log: String,
    },

    /// No PostgreSQL server binaries were found
    #[error("no postgresql binaries found: expected PG_BIN or {searched}/<version>/bin/initdb, found none")]
    NoPostgres {
        /// Where we looked
        searched: PathBuf,
    },

    /// A wait for a condition on the directory timed out
    #[error("{what} not seen within {waited:?}; last result: {last}")]
    Timeout {
        /// The awaited condition
        what: String,
        /// How long we waited
        waited: Duration,
        /// The last observed value
        last: String,
    },

    /// The node packages of tests/github (Prism, GitHub's OpenAPI and GraphQL schemas) are not installed
    #[error("node packages missing in {dir}: expected node_modules with prism, @octokit/openapi, @octokit/graphql-schema and graphql; run scripts/test or `npm ci --prefix tests/github`")]
    NodeModulesMissing {
        /// tests/github
        dir: PathBuf,
    },

    /// No moto_server was found, so the AWS stand-in cannot start
    #[error("moto_server not found: expected it at {searched}, found none; run scripts/test (it creates tests/python/.venv) or set REVOKE_MOTO_SERVER")]
    MotoMissing {
        /// The places looked at, in order
        searched: String,
    },

    /// A stand-in answered an HTTP request with an unexpected status
    #[error("{request} answered {status}, expected {expected}; body: {body}")]
    HttpStatus {
        /// The request, e.g. "moto POST /moto-api/reset"
        request: String,
        /// The status received
        status: u16,
        /// What was expected, e.g. "2xx"
        expected: String,
        /// The start of the response body
        body: String,
    },

    /// A stand-in sent something that could not be parsed
    #[error("could not parse {what}: {reason}")]
    Parse {
        /// What was parsed, e.g. "moto's recording, line 3"
        what: String,
        /// Why it failed
        reason: String,
    },

    /// GraphQL documents do not validate against GitHub's schema
    #[error("graphql documents invalid against github's schema, expected none: {errors}")]
    GraphqlInvalid {
        /// One line per error, prefixed with the operation name
        errors: String,
    },

    /// No scim2-server was found, so the SCIM stand-in cannot start
    #[error("scim2-server not found: expected it at {searched}, found none; run scripts/test (it creates tests/python/.venv) or set REVOKE_SCIM2_SERVER")]
    Scim2ServerMissing {
        /// The places looked at, in order
        searched: String,
    },
}

impl TestkitError {
    pub(crate) fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        TestkitError::Io {
            action: action.into(),
            source,
        }
    }
}
