//! LDAP connector of revoked: discover, lock, remove from groups, delete
