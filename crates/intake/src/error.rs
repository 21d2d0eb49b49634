//! Errors of intake and of batch import, each saying what was expected and what was found.

/// Why a request was refused; each variant maps to one HTTP status via [`IntakeError::status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// 401: missing or forged signature, wrong token, timestamp outside the tolerance.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// 400: not JSON, a missing or mistyped field, a bad date, an unknown path or method.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// 422: authentic and well-formed, but not usable (no employee id, email or username).
    #[error("unprocessable event: {0}")]
    Unprocessable(String),
    /// 413: the body is larger than the source's `max_body_bytes`.
    #[error("body too large: expected at most {limit} bytes")]
    TooLarge {
        /// The source's `max_body_bytes`.
        limit: usize,
    },
    /// A source's configuration is invalid; raised by `Source::build`, never by `handle`.
    #[error("invalid intake config: {0}")]
    Config(String),
}

impl IntakeError {
    /// The HTTP status the daemon answers with.
    pub fn status(&self) -> u16 {
        match self {
            IntakeError::Unauthenticated(_) => 401,
            IntakeError::Malformed(_) => 400,
            IntakeError::Unprocessable(_) => 422,
            IntakeError::TooLarge { .. } => 413,
            IntakeError::Config(_) => 500,
        }
    }

    /// A short stable label for metrics.
    pub fn result_label(&self) -> &'static str {
        match self {
            IntakeError::Unauthenticated(_) => "unauthenticated",
            IntakeError::Malformed(_) => "malformed",
            IntakeError::Unprocessable(_) => "unprocessable",
            IntakeError::TooLarge { .. } => "too_large",
            IntakeError::Config(_) => "config",
        }
    }
}

/// Why a batch import file was refused; names the file, line and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The file name does not tell a known format.
    #[error("{file}: expected a file ending in .csv, .jsonl or .ndjson, found {found:?}")]
    UnknownFormat {
        /// The file name given.
        file: String,
        /// Its extension, or "no extension".
        found: String,
    },
    /// One line could not be read or turned into an event.
    #[error("{file} line {line}: {field}: {message}")]
    Line {
        /// The file name given.
        file: String,
        /// 1-based line number (the CSV header is line 1).
        line: u64,
        /// The column or key at fault (`csv`/`json` for syntax errors).
        field: String,
        /// What was expected and what was found.
        message: String,
    },
}
