//! SCIM 2.0 connector (being written).
