//! The Store trait of revoked and its SQLite and Postgres backends
