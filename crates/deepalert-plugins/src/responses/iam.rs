//! IAM users: what they hold (for checks, plans and the Rego check's input), and the
//! remediation — reversible by default (deny-all inline policy, access keys inactive,
//! console login profile deleted), deleting the user only when `destructive`.

#[cfg(feature = "aws")]
use aws_sdk_iam::error::DisplayErrorContext;
use serde_json::{Value, json};

use super::guards::{DEFAULT_DENY_POLICY, RemediationOptions};

/// Takes effect at once for every credential of the user, sessions included.
pub const DENY_ALL: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"DeepalertDenyAll","Effect":"Deny","Action":"*","Resource":"*"}]}"#;

#[derive(Debug, Clone, Default)]
pub struct UserState {
    pub arn: String,
    pub tags: Vec<(String, String)>,
    /// (access key id, Active|Inactive)
    pub keys: Vec<(String, String)>,
    pub login_profile: bool,
    /// (serial number, virtual)
    pub mfa: Vec<(String, bool)>,
    pub inline_policies: Vec<String>,
    pub attached_policies: Vec<String>,
    pub groups: Vec<String>,
    pub signing_certificates: Vec<String>,
    pub ssh_keys: Vec<String>,
}

impl UserState {
    pub fn active_keys(&self) -> Vec<&str> {
        self.keys
            .iter()
            .filter(|(_, s)| s == "Active")
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// For the Rego check's input.
    pub fn to_json(&self) -> Value {
        json!({
            "exists": true,
            "arn": self.arn,
            "tags": self.tags.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
            "access_keys": self.keys.iter().map(|(id, s)| json!({"id": id, "status": s})).collect::<Vec<_>>(),
            "login_profile": self.login_profile,
            "mfa_devices": self.mfa.len(),
            "inline_policies": self.inline_policies,
            "attached_policies": self.attached_policies,
            "groups": self.groups,
        })
    }
}

#[cfg(feature = "aws")]
fn failed(call: &str, e: impl std::error::Error) -> String {
    format!("iam {call}: {}", DisplayErrorContext(e))
}

#[cfg(feature = "aws")]
pub struct Iam {
    client: aws_sdk_iam::Client,
}

/// Built without AWS support there is no client, so no `Iam` can exist: callers get the
/// "built without AWS" error before they would need one.
#[cfg(not(feature = "aws"))]
pub struct Iam {
    never: std::convert::Infallible,
}

#[cfg(not(feature = "aws"))]
impl Iam {
    pub async fn user(&self, _: &str) -> Result<Option<UserState>, String> {
        match self.never {}
    }

    pub async fn call(&self, _: &str, _: &Call) -> Result<(), String> {
        match self.never {}
    }
}

#[cfg(feature = "aws")]
impl Iam {
    pub fn new(client: aws_sdk_iam::Client) -> Self {
        Iam { client }
    }

    /// What the user holds; `None` when there is no such user.
    pub async fn user(&self, name: &str) -> Result<Option<UserState>, String> {
        let c = &self.client;
        let user = match c.get_user().user_name(name).send().await {
            Ok(u) => match u.user {
                Some(u) => u,
                None => return Ok(None),
            },
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(failed("GetUser", e)),
        };
        let login_profile = match c.get_login_profile().user_name(name).send().await {
            Ok(_) => true,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                false
            }
            Err(e) => return Err(failed("GetLoginProfile", e)),
        };
        let (keys, mfa, inline, attached, groups, certs, ssh, tags) = tokio::try_join!(
            async {
                c.list_access_keys()
                    .user_name(name)
                    .send()
                    .await
                    .map_err(|e| failed("ListAccessKeys", e))
            },
            async {
                c.list_mfa_devices()
                    .user_name(name)
                    .send()
                    .await
                    .map_err(|e| failed("ListMFADevices", e))
            },
            async {
                c.list_user_policies()
                    .user_name(name)
                    .send()
                    .await
                    .map_err(|e| failed("ListUserPolicies", e))
            },
            async {
                c.list_attached_user_policies()
                    .user_name(name)
                    .send()
                    .await
                    .map_err(|e| failed("ListAttachedUserPolicies", e))
            },
            async {
                c.list_groups_for_user()
                    .user_name(name)
                    .send()
                    .await
                    .map_err(|e| failed("ListGroupsForUser", e))
            },
            async {
                c.list_signing_certificates()
                    .user_name(name)
                    .send()
                    .await
                    .map_err(|e| failed("ListSigningCertificates", e))
            },
            async {
                c.list_ssh_public_keys()
                    .user_name(name)
                    .send()
                    .await
                    .map_err(|e| failed("ListSSHPublicKeys", e))
            },
            async {
                c.list_user_tags()
                    .user_name(name)
                    .send()
                    .await
                    .map_err(|e| failed("ListUserTags", e))
            },
        )?;
        Ok(Some(UserState {
            arn: user.arn().to_string(),
            tags: tags
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
            keys: keys
                .access_key_metadata()
                .iter()
                .map(|k| {
                    (
                        k.access_key_id().unwrap_or_default().to_string(),
                        k.status()
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_default(),
                    )
                })
                .collect(),
            login_profile,
            mfa: mfa
                .mfa_devices()
                .iter()
                .map(|d| {
                    let serial = d.serial_number().to_string();
                    // Virtual devices are IAM resources (arn:…:mfa/…); hardware ones are not.
                    let is_virtual = serial.starts_with("arn:");
                    (serial, is_virtual)
                })
                .collect(),
            inline_policies: inline.policy_names().to_vec(),
            attached_policies: attached
                .attached_policies()
                .iter()
                .filter_map(|p| p.policy_arn().map(str::to_string))
                .collect(),
            groups: groups
                .groups()
                .iter()
                .map(|g| g.group_name().to_string())
                .collect(),
            signing_certificates: certs
                .certificates()
                .iter()
                .map(|c| c.certificate_id().to_string())
                .collect(),
            ssh_keys: ssh
                .ssh_public_keys()
                .iter()
                .map(|k| k.ssh_public_key_id().to_string())
                .collect(),
        }))
    }
}

impl Iam {
    /// What the remediation does to this user, in order: the plan a dry run records, and
    /// the calls a real run makes.
    pub fn plan(o: &RemediationOptions, u: &UserState) -> Vec<Call> {
        let mut calls = Vec::new();
        if o.destructive {
            // DeleteUser fails with DeleteConflict until the user holds nothing: IAM wants
            // these gone first (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_users_remove.html).
            if u.login_profile {
                calls.push(Call::DeleteLoginProfile);
            }
            calls.extend(u.keys.iter().map(|(k, _)| Call::DeleteAccessKey(k.clone())));
            calls.extend(
                u.signing_certificates
                    .iter()
                    .map(|c| Call::DeleteSigningCertificate(c.clone())),
            );
            calls.extend(
                u.ssh_keys
                    .iter()
                    .map(|k| Call::DeleteSshPublicKey(k.clone())),
            );
            for (serial, is_virtual) in &u.mfa {
                calls.push(Call::DeactivateMfaDevice(serial.clone()));
                if *is_virtual {
                    calls.push(Call::DeleteVirtualMfaDevice(serial.clone()));
                }
            }
            calls.extend(
                u.inline_policies
                    .iter()
                    .map(|p| Call::DeleteUserPolicy(p.clone())),
            );
            calls.extend(
                u.attached_policies
                    .iter()
                    .map(|p| Call::DetachUserPolicy(p.clone())),
            );
            calls.extend(
                u.groups
                    .iter()
                    .map(|g| Call::RemoveUserFromGroup(g.clone())),
            );
            calls.push(Call::DeleteUser);
        } else {
            // The deny first: it stops every credential at once, sessions included, while
            // the rest catches up.
            calls.push(Call::PutDenyAll(
                o.deny_policy_name
                    .clone()
                    .unwrap_or_else(|| DEFAULT_DENY_POLICY.into()),
            ));
            calls.extend(
                u.active_keys()
                    .into_iter()
                    .map(|k| Call::DeactivateAccessKey(k.to_string())),
            );
            if u.login_profile {
                calls.push(Call::DeleteLoginProfile);
            }
        }
        calls
    }
}

#[cfg(feature = "aws")]
impl Iam {
    pub async fn call(&self, name: &str, call: &Call) -> Result<(), String> {
        let c = &self.client;
        match call {
            Call::PutDenyAll(policy) => c
                .put_user_policy()
                .user_name(name)
                .policy_name(policy)
                .policy_document(DENY_ALL)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| failed("PutUserPolicy", e)),
            Call::DeactivateAccessKey(k) => c
                .update_access_key()
                .user_name(name)
                .access_key_id(k)
                .status(aws_sdk_iam::types::StatusType::Inactive)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| failed("UpdateAccessKey", e)),
            Call::DeleteLoginProfile => c
                .delete_login_profile()
                .user_name(name)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| failed("DeleteLoginProfile", e)),
            Call::DeleteAccessKey(k) => c
                .delete_access_key()
                .user_name(name)
                .access_key_id(k)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| failed("DeleteAccessKey", e)),
            Call::DeleteSigningCertificate(id) => c
                .delete_signing_certificate()
                .user_name(name)
                .certificate_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| failed("DeleteSigningCertificate", e)),
            Call::DeleteSshPublicKey(id) => c
                .delete_ssh_public_key()
                .user_name(name)
                .ssh_public_key_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| failed("DeleteSSHPublicKey", e)),
            Call::DeactivateMfaDevice(serial) => c
                .deactivate_mfa_device()
                .user_name(name)
                .serial_number(serial)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| failed("DeactivateMFADevice", e)),
            Call::DeleteVirtualMfaDevice(serial) => c
                .delete_virtual_mfa_device()
                .serial_number(serial)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| failed("DeleteVirtualMFADevice", e)),
            Call::DeleteUserPolicy(p) => c
                .delete_user_policy()
                .user_name(name)
                .policy_name(p)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| failed("DeleteUserPolicy", e)),
            Call::DetachUserPolicy(arn) => c
                .detach_user_policy()
                .user_name(name)
                .policy_arn(arn)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| failed("DetachUserPolicy", e)),
            Call::RemoveUserFromGroup(g) => c
                .remove_user_from_group()
                .user_name(name)
                .group_name(g)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| failed("RemoveUserFromGroup", e)),
            Call::DeleteUser => c
                .delete_user()
                .user_name(name)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| failed("DeleteUser", e)),
        }
    }
}

/// One IAM call of a remediation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    PutDenyAll(String),
    DeactivateAccessKey(String),
    DeleteLoginProfile,
    DeleteAccessKey(String),
    DeleteSigningCertificate(String),
    DeleteSshPublicKey(String),
    DeactivateMfaDevice(String),
    DeleteVirtualMfaDevice(String),
    DeleteUserPolicy(String),
    DetachUserPolicy(String),
    RemoveUserFromGroup(String),
    DeleteUser,
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Call::PutDenyAll(p) => write!(f, "attach inline deny-all policy {p}"),
            Call::DeactivateAccessKey(k) => write!(f, "deactivate access key {k}"),
            Call::DeleteLoginProfile => write!(f, "delete the console login profile"),
            Call::DeleteAccessKey(k) => write!(f, "delete access key {k}"),
            Call::DeleteSigningCertificate(c) => write!(f, "delete signing certificate {c}"),
            Call::DeleteSshPublicKey(k) => write!(f, "delete SSH public key {k}"),
            Call::DeactivateMfaDevice(s) => write!(f, "deactivate MFA device {s}"),
            Call::DeleteVirtualMfaDevice(s) => write!(f, "delete virtual MFA device {s}"),
            Call::DeleteUserPolicy(p) => write!(f, "delete inline policy {p}"),
            Call::DetachUserPolicy(p) => write!(f, "detach policy {p}"),
            Call::RemoveUserFromGroup(g) => write!(f, "remove from group {g}"),
            Call::DeleteUser => write!(f, "delete the user"),
        }
    }
}
