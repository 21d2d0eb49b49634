//! OneLogin connector (being written).
