//! AWS context: which EC2 instance or network interface an IP address is, and what an
//! IAM user is (tags, access keys and their state, MFA). See README.md in this folder.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::Filter;
use deepalert_core::finding::{ContentHost, ContentUser, EntityActivity};
use deepalert_core::ports::{InspectorPlugin, PluginError};
use deepalert_core::{AttrType, FindingContent, InspectorOutput, Task};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Region to look in (default: the SDK's: AWS_REGION, profile…).
    #[serde(default)]
    pub region: Option<String>,
    /// Tag keys read as the owner of a resource, first match wins.
    #[serde(default = "owner_tags")]
    pub owner_tags: Vec<String>,
    /// Tag keys read as the environment.
    #[serde(default = "environment_tags")]
    pub environment_tags: Vec<String>,
}

fn owner_tags() -> Vec<String> {
    vec!["Owner".into(), "owner".into(), "Team".into()]
}

fn environment_tags() -> Vec<String> {
    vec![
        "Environment".into(),
        "environment".into(),
        "Env".into(),
        "env".into(),
    ]
}

pub struct AwsContext {
    ec2: aws_sdk_ec2::Client,
    iam: aws_sdk_iam::Client,
    options: Options,
}

fn aws_failed(service: &str, e: impl std::fmt::Display) -> PluginError {
    PluginError::Failed(format!("{service}: {e}"))
}

fn tag_value(tags: &BTreeMap<String, String>, keys: &[String]) -> Vec<String> {
    keys.iter()
        .find_map(|k| tags.get(k))
        .map(|v| vec![v.clone()])
        .unwrap_or_default()
}

fn tag_list(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl AwsContext {
    pub fn new(sdk: &aws_config::SdkConfig, options: Options) -> Self {
        let ec2 = match &options.region {
            Some(r) => aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(sdk)
                    .region(aws_sdk_ec2::config::Region::new(r.clone()))
                    .build(),
            ),
            None => aws_sdk_ec2::Client::new(sdk),
        };
        AwsContext {
            ec2,
            iam: aws_sdk_iam::Client::new(sdk),
            options,
        }
    }

    async fn instances(
        &self,
        filter: &str,
        ip: &str,
    ) -> Result<Vec<aws_sdk_ec2::types::Instance>, PluginError> {
        let out = self
            .ec2
            .describe_instances()
            .filters(Filter::builder().name(filter).values(ip).build())
            .send()
            .await
            .map_err(|e| {
                aws_failed(
                    "ec2 DescribeInstances",
                    aws_sdk_ec2::error::DisplayErrorContext(e),
                )
            })?;
        Ok(out
            .reservations
            .unwrap_or_default()
            .into_iter()
            .flat_map(|r| r.instances.unwrap_or_default())
            .collect())
    }

    async fn ip(&self, ip: &str) -> Result<InspectorOutput, PluginError> {
        let mut out = InspectorOutput::default();
        let mut instances = self.instances("private-ip-address", ip).await?;
        if instances.is_empty() {
            instances = self.instances("ip-address", ip).await?;
        }
        for i in &instances {
            let tags: BTreeMap<String, String> = i
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
                .collect();
            let id = i.instance_id().unwrap_or("");
            let mut hostname: Vec<String> = tags.get("Name").cloned().into_iter().collect();
            hostname.extend(
                i.private_dns_name()
                    .filter(|d| !d.is_empty())
                    .map(str::to_string),
            );
            out.findings.push(FindingContent::Host(ContentHost {
                ipaddr: vec![ip.into()],
                hostname,
                owner: tag_value(&tags, &self.options.owner_tags),
                environment: tag_value(&tags, &self.options.environment_tags),
                os: i
                    .platform_details()
                    .map(|p| vec![p.to_string()])
                    .unwrap_or_default(),
                activities: vec![EntityActivity {
                    service_name: "ec2".into(),
                    action: format!(
                        "instance {id} ({}, {}); tags: {}",
                        i.instance_type().map(|t| t.as_str()).unwrap_or("?"),
                        i.state()
                            .and_then(|s| s.name())
                            .map(|n| n.as_str())
                            .unwrap_or("?"),
                        tag_list(&tags)
                    ),
                    target: id.into(),
                    last_seen: i
                        .launch_time()
                        .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                    ..Default::default()
                }],
                ..Default::default()
            }));
        }
        if !out.findings.is_empty() {
            return Ok(out);
        }
        // Not an instance: maybe a load balancer's, a Lambda's or a NAT gateway's interface.
        let enis = self
            .ec2
            .describe_network_interfaces()
            .filters(
                Filter::builder()
                    .name("addresses.private-ip-address")
                    .values(ip)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                aws_failed(
                    "ec2 DescribeNetworkInterfaces",
                    aws_sdk_ec2::error::DisplayErrorContext(e),
                )
            })?;
        for eni in enis.network_interfaces() {
            out.findings.push(FindingContent::Host(ContentHost {
                ipaddr: vec![ip.into()],
                owner: eni
                    .requester_id()
                    .map(|r| vec![r.to_string()])
                    .unwrap_or_default(),
                activities: vec![EntityActivity {
                    service_name: "ec2".into(),
                    action: format!(
                        "network interface {} ({}){}",
                        eni.network_interface_id().unwrap_or("?"),
                        eni.description().unwrap_or(""),
                        eni.attachment()
                            .and_then(|a| a.instance_id())
                            .map(|i| format!(", attached to {i}"))
                            .unwrap_or_default()
                    ),
                    target: eni.network_interface_id().unwrap_or("").into(),
                    ..Default::default()
                }],
                ..Default::default()
            }));
        }
        Ok(out)
    }

    async fn user(&self, name: &str) -> Result<InspectorOutput, PluginError> {
        let user = match self.iam.get_user().user_name(name).send().await {
            Ok(u) => u.user,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                return Ok(InspectorOutput::default());
            }
            Err(e) => {
                return Err(aws_failed(
                    "iam GetUser",
                    aws_sdk_iam::error::DisplayErrorContext(e),
                ));
            }
        };
        let Some(user) = user else {
            return Ok(InspectorOutput::default());
        };
        let tags: BTreeMap<String, String> = user
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        let mut activities = vec![EntityActivity {
            service_name: "iam".into(),
            principal: user.arn().to_string(),
            action: format!(
                "IAM user {name}, created {}; tags: {}",
                user.create_date(),
                tag_list(&tags)
            ),
            last_seen: user
                .password_last_used()
                .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
            ..Default::default()
        }];
        // The user exists: its MFA devices and access keys are asked for at once.
        let (mfa, keys) = tokio::try_join!(
            async {
                self.iam
                    .list_mfa_devices()
                    .user_name(name)
                    .send()
                    .await
                    .map_err(|e| {
                        aws_failed(
                            "iam ListMFADevices",
                            aws_sdk_iam::error::DisplayErrorContext(e),
                        )
                    })
            },
            async {
                self.iam
                    .list_access_keys()
                    .user_name(name)
                    .send()
                    .await
                    .map_err(|e| {
                        aws_failed(
                            "iam ListAccessKeys",
                            aws_sdk_iam::error::DisplayErrorContext(e),
                        )
                    })
            }
        )?;
        activities.push(EntityActivity {
            service_name: "iam".into(),
            principal: user.arn().to_string(),
            action: if mfa.mfa_devices().is_empty() {
                "MFA: none".into()
            } else {
                format!("MFA: {} device(s)", mfa.mfa_devices().len())
            },
            ..Default::default()
        });
        for key in keys.access_key_metadata() {
            let id = key.access_key_id().unwrap_or("");
            activities.push(EntityActivity {
                service_name: "iam".into(),
                principal: user.arn().to_string(),
                action: format!(
                    "access key {} {}",
                    id,
                    key.status().map(|s| s.as_str()).unwrap_or("?")
                ),
                target: id.into(),
                last_seen: key
                    .create_date()
                    .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                ..Default::default()
            });
        }
        Ok(InspectorOutput {
            findings: vec![FindingContent::User(ContentUser { activities })],
            attributes: vec![],
        })
    }
}

#[async_trait]
impl InspectorPlugin for AwsContext {
    async fn inspect(&self, task: &Task) -> Result<InspectorOutput, PluginError> {
        let value = task.attribute.value.trim();
        match task.attribute.attr_type {
            AttrType::Ipaddr if value.parse::<std::net::IpAddr>().is_ok() => self.ip(value).await,
            AttrType::Username => self.user(value).await,
            _ => Ok(InspectorOutput::default()),
        }
    }
}
