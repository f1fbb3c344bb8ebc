//! EC2 instances: their state (checks, the Rego check's input), and the remediation —
//! stop, move to a quarantine security group, or snapshot then stop; terminate only when
//! `destructive`. A dry run makes the same calls with `DryRun`, so AWS itself says
//! whether they would have succeeded (permissions included).

#[cfg(feature = "aws")]
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};
use serde_json::{Value, json};

use super::guards::RemediationOptions;

#[derive(Debug, Clone, Default)]
pub struct InstanceState {
    pub id: String,
    /// pending, running, stopping, stopped, shutting-down, terminated
    pub state: String,
    pub instance_type: String,
    pub tags: Vec<(String, String)>,
    pub volumes: Vec<String>,
    pub security_groups: Vec<String>,
}

impl InstanceState {
    pub fn is_running(&self) -> bool {
        matches!(self.state.as_str(), "pending" | "running")
    }

    pub fn to_json(&self) -> Value {
        json!({
            "exists": true,
            "state": self.state,
            "instance_type": self.instance_type,
            "tags": self.tags.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
            "volumes": self.volumes,
            "security_groups": self.security_groups,
        })
    }
}

#[cfg(feature = "aws")]
fn failed<E: std::error::Error + ProvideErrorMetadata>(call: &str, e: E) -> String {
    format!("ec2 {call}: {}", DisplayErrorContext(e))
}

#[cfg(feature = "aws")]
/// A call made with `DryRun`: AWS answers `DryRunOperation` when it would have
/// succeeded.
fn dry_run_answer<T, E>(
    call: &str,
    r: Result<T, aws_sdk_ec2::error::SdkError<E, aws_sdk_ec2::config::http::HttpResponse>>,
) -> Result<(), String>
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    match r {
        Ok(_) => Err(format!(
            "ec2 {call}: the DryRun call was not refused; nothing should have run"
        )),
        Err(e) if e.code() == Some("DryRunOperation") => Ok(()),
        Err(e) => Err(format!("ec2 {call} (DryRun): {}", DisplayErrorContext(e))),
    }
}

#[cfg(feature = "aws")]
pub struct Ec2 {
    client: aws_sdk_ec2::Client,
}

/// Built without AWS support: see `iam::Iam`.
#[cfg(not(feature = "aws"))]
pub struct Ec2 {
    never: std::convert::Infallible,
}

#[cfg(not(feature = "aws"))]
impl Ec2 {
    pub async fn instance(&self, _: &str) -> Result<Option<InstanceState>, String> {
        match self.never {}
    }

    pub async fn remediate(
        &self,
        _: &RemediationOptions,
        _: &InstanceState,
        _: &str,
    ) -> Result<String, String> {
        match self.never {}
    }
}

#[cfg(feature = "aws")]
impl Ec2 {
    pub fn new(client: aws_sdk_ec2::Client) -> Self {
        Ec2 { client }
    }

    pub async fn instance(&self, id: &str) -> Result<Option<InstanceState>, String> {
        let out = match self
            .client
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) if e.code().is_some_and(|c| c.starts_with("InvalidInstanceID")) => {
                return Ok(None);
            }
            Err(e) => return Err(failed("DescribeInstances", e)),
        };
        let Some(i) = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(id))
        else {
            return Ok(None);
        };
        Ok(Some(InstanceState {
            id: id.to_string(),
            state: i
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_string())
                .unwrap_or_default(),
            instance_type: i
                .instance_type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            tags: i
                .tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_string(),
                        t.value().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
            volumes: i
                .block_device_mappings()
                .iter()
                .filter_map(|b| b.ebs().and_then(|e| e.volume_id()).map(str::to_string))
                .collect(),
            security_groups: i
                .security_groups()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_string))
                .collect(),
        }))
    }

    /// Runs (or, with `dry_run`, asks AWS to validate) the remediation on one instance;
    /// returns what was done.
    pub async fn remediate(
        &self,
        o: &RemediationOptions,
        i: &InstanceState,
        description: &str,
    ) -> Result<String, String> {
        let c = &self.client;
        let dry = o.dry_run;
        let id = i.id.as_str();
        if i.state == "terminated" || i.state == "shutting-down" {
            return Ok(format!("{id} is {} already; nothing to do", i.state));
        }
        let stop = || async {
            let r = c
                .stop_instances()
                .instance_ids(id)
                .dry_run(dry)
                .send()
                .await;
            if dry {
                dry_run_answer("StopInstances", r).map(|_| format!("would stop {id}"))
            } else {
                r.map(|_| format!("stopped {id}"))
                    .map_err(|e| failed("StopInstances", e))
            }
        };
        match o.mode() {
            "stop" => stop().await,
            "quarantine" => {
                let sg = o
                    .quarantine_security_group
                    .as_deref()
                    .ok_or("mode quarantine needs quarantine_security_group")?;
                let r = c
                    .modify_instance_attribute()
                    .instance_id(id)
                    .groups(sg)
                    .dry_run(dry)
                    .send()
                    .await;
                let was = i.security_groups.join(", ");
                if dry {
                    dry_run_answer("ModifyInstanceAttribute", r)
                        .map(|_| format!("would move {id} to security group {sg} (from {was})"))
                } else {
                    r.map(|_| format!("moved {id} to security group {sg} (was in {was})"))
                        .map_err(|e| failed("ModifyInstanceAttribute", e))
                }
            }
            "snapshot-stop" => {
                let mut done = Vec::new();
                for v in &i.volumes {
                    let r = c
                        .create_snapshot()
                        .volume_id(v)
                        .description(description)
                        .dry_run(dry)
                        .send()
                        .await;
                    if dry {
                        dry_run_answer("CreateSnapshot", r)?;
                        done.push(format!("would snapshot {v}"));
                    } else {
                        let s = r.map_err(|e| failed("CreateSnapshot", e))?;
                        done.push(format!(
                            "snapshot {} of {v}",
                            s.snapshot_id().unwrap_or("?")
                        ));
                    }
                }
                done.push(stop().await?);
                Ok(done.join(", "))
            }
            "terminate" => {
                if !o.destructive {
                    return Err("terminate needs destructive = true".into());
                }
                let r = c
                    .terminate_instances()
                    .instance_ids(id)
                    .dry_run(dry)
                    .send()
                    .await;
                if dry {
                    dry_run_answer("TerminateInstances", r).map(|_| format!("would terminate {id}"))
                } else {
                    r.map(|_| format!("terminated {id}"))
                        .map_err(|e| failed("TerminateInstances", e))
                }
            }
            other => Err(format!(
                "mode {other:?} is not one of stop, quarantine, snapshot-stop, terminate"
            )),
        }
    }
}
