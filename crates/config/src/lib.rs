//! Layered configuration of revoked: file, REVOKE__ env, *_FILE secrets; pure validation
