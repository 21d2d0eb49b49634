//! Starts real stand-ins (slapd, PostgreSQL) on free loopback ports for tests
