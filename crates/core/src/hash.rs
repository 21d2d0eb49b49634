use sha2::{Digest, Sha256};

/// Incremental SHA-256 over length-prefixed fields, so that `("ab","c")` and `("a","bc")` differ.
#[derive(Debug, Default, Clone)]
pub struct Sha256Hex(Sha256);

impl Sha256Hex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one field, prefixed with its length.
    pub fn field(mut self, bytes: impl AsRef<[u8]>) -> Self {
        let bytes = bytes.as_ref();
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
        self
    }

    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}
