//! Asset inventory from a file: which host an address or name is, whose it is, where it
//! runs. Answers "is this ours, and whose is it?". See README.md in this folder.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use deepalert_core::finding::ContentHost;
use deepalert_core::ports::{InspectorPlugin, PluginError};
use deepalert_core::{AttrType, FindingContent, InspectorOutput, Task};
use ipnet::IpNet;
use serde::Deserialize;

use super::{normalize_host, resolve};
use crate::BuiltinError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// CSV with a header: `match,owner,hostname,environment` (extra columns ignored).
    pub file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
struct Row {
    /// An IP address, a CIDR, or a host name.
    #[serde(rename = "match")]
    pattern: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    environment: String,
}

enum Pattern {
    Net(IpNet),
    Host(String),
}

struct Asset {
    pattern: Pattern,
    owner: String,
    hostname: String,
    environment: String,
}

pub struct InventoryInspector {
    assets: Vec<Asset>,
}

impl InventoryInspector {
    pub fn new(options: &Options, base: &Path) -> Result<Self, BuiltinError> {
        let path = resolve(base, &options.file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| BuiltinError::new(format!("cannot read {}: {e}", path.display())))?;
        let body: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(body.as_bytes());
        let mut assets = Vec::new();
        for (i, row) in reader.deserialize::<Row>().enumerate() {
            let row = row.map_err(|e| {
                BuiltinError::new(format!("{}: row {}: {e}", path.display(), i + 1))
            })?;
            let p = row.pattern.trim();
            let pattern = match p
                .parse::<IpNet>()
                .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
            {
                Ok(net) => Pattern::Net(net.trunc()),
                Err(_) if !p.is_empty() => Pattern::Host(normalize_host(p)),
                Err(_) => {
                    return Err(BuiltinError::new(format!(
                        "{}: row {}: empty match",
                        path.display(),
                        i + 1
                    )));
                }
            };
            assets.push(Asset {
                pattern,
                owner: row.owner,
                hostname: row.hostname,
                environment: row.environment,
            });
        }
        Ok(InventoryInspector { assets })
    }

    /// The most specific asset for an attribute (the longest matching prefix for IPs).
    fn lookup(&self, attr_type: &AttrType, value: &str) -> Option<&Asset> {
        match attr_type {
            AttrType::Ipaddr => {
                let ip: IpAddr = value.trim().parse().ok()?;
                self.assets
                    .iter()
                    .filter_map(|a| match &a.pattern {
                        Pattern::Net(n) if n.contains(&ip) => Some((n.prefix_len(), a)),
                        _ => None,
                    })
                    .max_by_key(|(len, _)| *len)
                    .map(|(_, a)| a)
            }
            AttrType::Domain => {
                let host = normalize_host(value);
                self.assets.iter().find(|a| match &a.pattern {
                    Pattern::Host(h) => *h == host,
                    Pattern::Net(_) => normalize_host(&a.hostname) == host,
                })
            }
            _ => None,
        }
    }
}

fn non_empty(s: &str) -> Vec<String> {
    if s.is_empty() {
        vec![]
    } else {
        vec![s.to_string()]
    }
}

#[async_trait]
impl InspectorPlugin for InventoryInspector {
    async fn inspect(&self, task: &Task) -> Result<InspectorOutput, PluginError> {
        let mut out = InspectorOutput::default();
        if let Some(asset) = self.lookup(&task.attribute.attr_type, &task.attribute.value) {
            out.findings.push(FindingContent::Host(ContentHost {
                ipaddr: if task.attribute.attr_type == AttrType::Ipaddr {
                    vec![task.attribute.value.clone()]
                } else {
                    vec![]
                },
                hostname: non_empty(&asset.hostname),
                owner: non_empty(&asset.owner),
                environment: non_empty(&asset.environment),
                ..Default::default()
            }));
        }
        Ok(out)
    }
}
