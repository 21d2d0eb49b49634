//! Replays recorded IAM calls against the rules real AWS enforces and moto does not

use std::collections::{BTreeMap, BTreeSet};

use super::call::AwsCall;

/// What a user still holds that real IAM requires gone before DeleteUser
#[derive(Debug, Default)]
struct UserModel {
    access_keys: usize,
    login_profile: bool,
    signing_certificates: usize,
    ssh_keys: usize,
    service_credentials: usize,
    mfa_devices: BTreeSet<String>,
    inline_policies: BTreeSet<String>,
    attached_policies: BTreeSet<String>,
    groups: BTreeSet<String>,
}

impl UserModel {
    /// "1 access key(s), group admins", empty when DeleteUser is allowed
    fn remaining(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut count = |n: usize, what: &str| {
            if n > 0 {
                out.push(format!("{n} {what}"));
            }
        };
        count(self.access_keys, "access key(s)");
        count(self.signing_certificates, "signing certificate(s)");
        count(self.ssh_keys, "SSH public key(s)");
        count(self.service_credentials, "service-specific credential(s)");
        if self.login_profile {
            out.push("login profile".to_owned());
        }
        let named = |prefix: &str, set: &BTreeSet<String>| {
            set.iter()
                .map(|n| format!("{prefix} {n}"))
                .collect::<Vec<_>>()
        };
        out.extend(named("MFA device", &self.mfa_devices));
        out.extend(named("inline policy", &self.inline_policies));
        out.extend(named("attached policy", &self.attached_policies));
        out.extend(named("group", &self.groups));
        out
    }
}

fn inc(n: &mut usize) {
    *n += 1;
}

fn dec(n: &mut usize) {
    *n = n.saturating_sub(1);
}

/// Every call that real IAM would have refused because of order, as one message each, in call order
///
/// moto deletes a user that still has access keys, a login profile, signing certificates, SSH
/// keys, service-specific credentials, MFA devices or group memberships (it refuses only for
/// inline and attached policies), and its groups keep listing the deleted user. This replays the
/// IAM calls (service "iam") into a model per UserName and reports:
/// - DeleteUser while the user still has any of the above or a policy, naming what remained, e.g.
///   "DeleteUser alice while it still had: 1 access key(s), group admins"; the model then keeps
///   the user, as real IAM would
/// - DeleteVirtualMFADevice of a serial still enabled on a user (DeactivateMFADevice first)
/// - at the end, a group still listing a user DeleteUser was called for (moto's dangling member)
///
/// Users are keyed by UserName without regard to case, as IAM names them (`DANA` is `dana`), and
/// follow UpdateUser's NewUserName (a rename keeps what the user holds).
///
/// Keys, certificates, SSH keys and service-specific credentials are counted (a create request
/// carries no id); the rest are tracked by SerialNumber, PolicyName, PolicyArn and GroupName. A
/// call without UserName (which acts on the caller) is not attributed, except
/// DeactivateMFADevice, which finds the user by SerialNumber. The recording has requests, not
/// responses, so every call is taken as accepted (a removal IAM refused, AccessDenied with
/// authorization on, still counts as done: check those with the API); record from before the
/// test's setup so the model sees the creations too (a removal of something never seen is
/// ignored). Calls in different accounts are not told apart.
pub fn iam_order_violations(calls: &[AwsCall]) -> Vec<String> {
    let mut users: BTreeMap<String, UserModel> = BTreeMap::new();
    let mut mfa_owner: BTreeMap<String, String> = BTreeMap::new();
    // lowercased name -> the name DeleteUser was called with
    let mut delete_called: BTreeMap<String, String> = BTreeMap::new();
    let mut violations = Vec::new();

    for call in calls.iter().filter(|c| c.service == "iam") {
        let action = call.action.as_str();
        let serial = call.param("SerialNumber").unwrap_or_default().to_owned();
        if action == "DeleteVirtualMFADevice" {
            if let Some(user) = mfa_owner.get(&serial) {
                violations.push(format!(
                    "DeleteVirtualMFADevice {serial} while it was still enabled on {user} (DeactivateMFADevice first)"
                ));
            }
            continue;
        }
        let user_name = match (action, call.param("UserName")) {
            (_, Some(u)) => u.to_owned(),
            ("DeactivateMFADevice", None) => match mfa_owner.get(&serial) {
                Some(u) => u.clone(),
                None => continue,
            },
            (_, None) => continue,
        };
        let key = user_name.to_lowercase();
        if action == "CreateUser" {
            users.insert(key.clone(), UserModel::default());
            delete_called.remove(&key);
            continue;
        }
        if action == "UpdateUser" {
            if let Some(new_name) = call.param("NewUserName") {
                let new_key = new_name.to_lowercase();
                if let Some(model) = users.remove(&key) {
                    users.insert(new_key, model);
                }
                for owner in mfa_owner.values_mut() {
                    if owner.to_lowercase() == key {
                        *owner = new_name.to_owned();
                    }
                }
            }
            continue;
        }
        if action == "DeleteUser" {
            delete_called.insert(key.clone(), user_name.clone());
            let remaining = users
                .get(&key)
                .map(UserModel::remaining)
                .unwrap_or_default();
            if remaining.is_empty() {
                users.remove(&key);
            } else {
                violations.push(format!(
                    "DeleteUser {user_name} while it still had: {}",
                    remaining.join(", ")
                ));
            }
            continue;
        }
        let user = users.entry(key).or_default();
        let param = |name: &str| call.param(name).unwrap_or_default().to_owned();
        match action {
            "CreateAccessKey" => inc(&mut user.access_keys),
            "DeleteAccessKey" => dec(&mut user.access_keys),
            "CreateLoginProfile" => user.login_profile = true,
            "DeleteLoginProfile" => user.login_profile = false,
            "UploadSigningCertificate" => inc(&mut user.signing_certificates),
            "DeleteSigningCertificate" => dec(&mut user.signing_certificates),
            "UploadSSHPublicKey" => inc(&mut user.ssh_keys),
            "DeleteSSHPublicKey" => dec(&mut user.ssh_keys),
            "CreateServiceSpecificCredential" => inc(&mut user.service_credentials),
            "DeleteServiceSpecificCredential" => dec(&mut user.service_credentials),
            "EnableMFADevice" => {
                user.mfa_devices.insert(serial.clone());
                mfa_owner.insert(serial, user_name);
            }
            "DeactivateMFADevice" => {
                user.mfa_devices.remove(&serial);
                mfa_owner.remove(&serial);
            }
            "PutUserPolicy" => {
                user.inline_policies.insert(param("PolicyName"));
            }
            "DeleteUserPolicy" => {
                user.inline_policies.remove(&param("PolicyName"));
            }
            "AttachUserPolicy" => {
                user.attached_policies.insert(param("PolicyArn"));
            }
            "DetachUserPolicy" => {
                user.attached_policies.remove(&param("PolicyArn"));
            }
            "AddUserToGroup" => {
                user.groups.insert(param("GroupName"));
            }
            "RemoveUserFromGroup" => {
                user.groups.remove(&param("GroupName"));
            }
            _ => {}
        }
    }

    for (key, user_name) in &delete_called {
        if let Some(user) = users.get(key) {
            for group in &user.groups {
                violations.push(format!(
                    "group {group} still lists {user_name} after DeleteUser {user_name}"
                ));
            }
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iam(action: &str, params: &[(&str, &str)]) -> AwsCall {
        AwsCall::new("iam", action, params)
    }

    fn alice(action: &str) -> AwsCall {
        iam(action, &[("UserName", "alice")])
    }

    #[test]
    fn delete_user_with_leftovers_is_reported_with_what_remained() {
        let calls = [
            alice("CreateUser"),
            alice("CreateAccessKey"),
            alice("CreateAccessKey"),
            alice("CreateLoginProfile"),
            iam(
                "AddUserToGroup",
                &[("UserName", "alice"), ("GroupName", "admins")],
            ),
            iam(
                "PutUserPolicy",
                &[("UserName", "alice"), ("PolicyName", "inline")],
            ),
            iam(
                "DeleteAccessKey",
                &[("UserName", "alice"), ("AccessKeyId", "AKIA1")],
            ),
            alice("DeleteLoginProfile"),
            alice("DeleteUser"),
        ];
        assert_eq!(
            iam_order_violations(&calls),
            [
                "DeleteUser alice while it still had: 1 access key(s), inline policy inline, group admins",
                "group admins still lists alice after DeleteUser alice",
            ]
        );
    }

    #[test]
    fn every_prerequisite_counts_and_the_right_order_passes() {
        let with = |action: &str, key: &str, value: &str| {
            iam(action, &[("UserName", "bob"), (key, value)])
        };
        let bob = |action: &str| iam(action, &[("UserName", "bob")]);
        let serial = "arn:aws:iam::123456789012:mfa/bob";
        let policy = "arn:aws:iam::aws:policy/ReadOnlyAccess";
        let setup = vec![
            bob("CreateUser"),
            bob("CreateAccessKey"),
            bob("CreateLoginProfile"),
            bob("UploadSigningCertificate"),
            bob("UploadSSHPublicKey"),
            with(
                "CreateServiceSpecificCredential",
                "ServiceName",
                "codecommit.amazonaws.com",
            ),
            iam("CreateVirtualMFADevice", &[("VirtualMFADeviceName", "bob")]),
            with("EnableMFADevice", "SerialNumber", serial),
            with("PutUserPolicy", "PolicyName", "p"),
            with("AttachUserPolicy", "PolicyArn", policy),
            with("AddUserToGroup", "GroupName", "devs"),
        ];
        let mut wrong = setup.clone();
        wrong.push(iam("DeleteVirtualMFADevice", &[("SerialNumber", serial)]));
        wrong.push(bob("DeleteUser"));
        assert_eq!(
            iam_order_violations(&wrong),
            [
                format!("DeleteVirtualMFADevice {serial} while it was still enabled on bob (DeactivateMFADevice first)"),
                format!("DeleteUser bob while it still had: 1 access key(s), 1 signing certificate(s), 1 SSH public key(s), 1 service-specific credential(s), login profile, MFA device {serial}, inline policy p, attached policy {policy}, group devs"),
                "group devs still lists bob after DeleteUser bob".to_owned(),
            ]
        );

        let mut right = setup;
        right.extend([
            bob("ListAccessKeys"),
            with("DeleteAccessKey", "AccessKeyId", "AKIA1"),
            bob("DeleteLoginProfile"),
            with("DeleteSigningCertificate", "CertificateId", "c"),
            with("DeleteSSHPublicKey", "SSHPublicKeyId", "k"),
            with(
                "DeleteServiceSpecificCredential",
                "ServiceSpecificCredentialId",
                "s",
            ),
            // UserName is optional here: the serial finds the user.
            iam("DeactivateMFADevice", &[("SerialNumber", serial)]),
            iam("DeleteVirtualMFADevice", &[("SerialNumber", serial)]),
            with("DeleteUserPolicy", "PolicyName", "p"),
            with("DetachUserPolicy", "PolicyArn", policy),
            with("RemoveUserFromGroup", "GroupName", "devs"),
            bob("DeleteUser"),
        ]);
        assert_eq!(iam_order_violations(&right), Vec::<String>::new());
    }

    #[test]
    fn names_are_case_insensitive_and_renames_keep_what_the_user_holds() {
        let calls = [
            iam("CreateUser", &[("UserName", "Dana")]),
            iam("CreateAccessKey", &[("UserName", "dana")]),
            iam(
                "UpdateUser",
                &[("UserName", "DANA"), ("NewUserName", "dana-old")],
            ),
            // A new dana holds nothing; the renamed one still holds the key.
            iam("CreateUser", &[("UserName", "dana")]),
            iam("DeleteUser", &[("UserName", "dana")]),
            iam("DeleteUser", &[("UserName", "Dana-Old")]),
        ];
        assert_eq!(
            iam_order_violations(&calls),
            ["DeleteUser Dana-Old while it still had: 1 access key(s)"]
        );
    }

    #[test]
    fn other_services_and_recreated_users_are_not_confused() {
        let calls = [
            alice("CreateUser"),
            alice("CreateAccessKey"),
            // Identity Center's DeleteUser is not IAM's.
            AwsCall::new("identitystore", "DeleteUser", &[("UserName", "alice")]),
            alice("DeleteAccessKey"),
            alice("DeleteUser"),
            alice("CreateUser"),
            iam(
                "AddUserToGroup",
                &[("UserName", "alice"), ("GroupName", "g")],
            ),
        ];
        assert_eq!(iam_order_violations(&calls), Vec::<String>::new());
    }
}
