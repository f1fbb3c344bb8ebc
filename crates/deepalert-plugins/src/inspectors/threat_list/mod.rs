//! Threat lists from local files: IP addresses and CIDRs, domains (a listed domain
//! matches its subdomains), file hashes and URLs, from plain lists or CSV exports.
//! See README.md in this folder.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use deepalert_core::finding::{
    ContentBinary, ContentHost, EntityActivity, EntityMalware, EntityUrl,
};
use deepalert_core::ports::{InspectorPlugin, PluginError};
use deepalert_core::{AttrType, FindingContent, InspectorOutput, Task};
use ipnet::IpNet;
use serde::Deserialize;

use super::{data_lines, normalize_host, resolve};
use crate::BuiltinError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub files: Vec<ListFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListFile {
    pub path: PathBuf,
    /// What the list holds: `ipaddr` (addresses and CIDRs), `domain`, `filehashvalue`, `url`.
    pub kind: AttrType,
    /// CSV: the column holding the indicator, by header name or 0-based index. Absent:
    /// a plain list, one indicator per line.
    #[serde(default)]
    pub column: Option<Column>,
    /// Shown in findings; default: the file name.
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Column {
    Index(usize),
    Name(String),
}

/// Indicator → the lists (sources) it is on.
#[derive(Default)]
pub struct ThreatLists {
    nets: Vec<(IpNet, String)>,
    domains: HashMap<String, Vec<String>>,
    hashes: HashMap<String, Vec<String>>,
    urls: HashMap<String, Vec<String>>,
}

fn load_error(path: &Path, line: usize, message: impl std::fmt::Display) -> BuiltinError {
    BuiltinError::new(format!("{}:{line}: {message}", path.display()))
}

impl ThreatLists {
    pub fn load(options: &Options, base: &Path) -> Result<Self, BuiltinError> {
        let mut lists = ThreatLists::default();
        for file in &options.files {
            let path = resolve(base, &file.path);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| BuiltinError::new(format!("cannot read {}: {e}", path.display())))?;
            let source = file.source.clone().unwrap_or_else(|| {
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            for (line, value) in indicators(&text, file.column.as_ref(), &path)? {
                lists
                    .add(&file.kind, &value, &source)
                    .map_err(|e| load_error(&path, line, e))?;
            }
        }
        Ok(lists)
    }

    fn add(&mut self, kind: &AttrType, value: &str, source: &str) -> Result<(), String> {
        let push = |map: &mut HashMap<String, Vec<String>>, key: String| {
            let sources = map.entry(key).or_default();
            if !sources.iter().any(|s| s == source) {
                sources.push(source.to_string());
            }
        };
        match kind {
            AttrType::Ipaddr => {
                let net = value
                    .parse::<IpNet>()
                    .or_else(|_| value.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{value:?} is not an IP address or CIDR"))?;
                self.nets.push((net.trunc(), source.to_string()));
            }
            AttrType::Domain => push(&mut self.domains, normalize_host(value)),
            AttrType::Filehashvalue => push(&mut self.hashes, value.to_ascii_lowercase()),
            AttrType::Url => push(&mut self.urls, normalize_url(value)),
            other => return Err(format!("a threat list cannot hold {other} values")),
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.nets.len() + self.domains.len() + self.hashes.len() + self.urls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sources listing an IP address.
    pub fn ip(&self, ip: IpAddr) -> Vec<String> {
        let mut out: Vec<String> = self
            .nets
            .iter()
            .filter(|(net, _)| net.contains(&ip))
            .map(|(_, s)| s.clone())
            .collect();
        out.dedup();
        out
    }

    /// Sources listing the domain or one of its parents (`a.evil.com` ← `evil.com`).
    pub fn domain(&self, domain: &str) -> Vec<(String, String)> {
        let domain = normalize_host(domain);
        let mut out = Vec::new();
        let mut rest = domain.as_str();
        loop {
            if let Some(sources) = self.domains.get(rest) {
                out.extend(sources.iter().map(|s| (rest.to_string(), s.clone())));
            }
            match rest.split_once('.') {
                Some((_, parent)) if !parent.is_empty() => rest = parent,
                _ => break,
            }
        }
        out
    }
}

/// Lower-cased scheme and host, no trailing slash: how URLs are compared.
fn normalize_url(u: &str) -> String {
    let u = u.trim();
    let (scheme, rest) = u.split_once("://").unwrap_or(("", u));
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, String::new()));
    let path = path.trim_end_matches('/');
    format!(
        "{}://{}{}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase(),
        path
    )
}

fn indicators(
    text: &str,
    column: Option<&Column>,
    path: &Path,
) -> Result<Vec<(usize, String)>, BuiltinError> {
    let Some(column) = column else {
        return Ok(data_lines(text).map(|(n, l)| (n, l.to_string())).collect());
    };
    let rows: Vec<(usize, &str)> = data_lines(text).collect();
    let body: String = rows.iter().map(|(_, l)| format!("{l}\n")).collect();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(matches!(column, Column::Name(_)))
        .flexible(true)
        .from_reader(body.as_bytes());
    let index = match column {
        Column::Index(i) => *i,
        Column::Name(name) => reader
            .headers()
            .map_err(|e| load_error(path, rows.first().map(|r| r.0).unwrap_or(1), e))?
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| {
                load_error(
                    path,
                    rows.first().map(|r| r.0).unwrap_or(1),
                    format!("no column {name:?} in the header"),
                )
            })?,
    };
    let mut out = Vec::new();
    let skip = usize::from(matches!(column, Column::Name(_)));
    for (record, (line, _)) in reader.records().zip(rows.iter().skip(skip)) {
        let record = record.map_err(|e| load_error(path, *line, e))?;
        let value = record
            .get(index)
            .ok_or_else(|| load_error(path, *line, format!("no column {index}")))?
            .trim();
        if !value.is_empty() {
            out.push((*line, value.to_string()));
        }
    }
    Ok(out)
}

pub struct ThreatListInspector {
    lists: ThreatLists,
}

impl ThreatListInspector {
    pub fn new(options: &Options, base: &Path) -> Result<Self, BuiltinError> {
        Ok(ThreatListInspector {
            lists: ThreatLists::load(options, base)?,
        })
    }
}

fn activity(source: &str, what: String) -> EntityActivity {
    EntityActivity {
        service_name: "threat-list".into(),
        action: what,
        target: source.into(),
        ..Default::default()
    }
}

/// One activity per list the indicator is on.
fn listed_by(sources: &[String]) -> Vec<EntityActivity> {
    sources
        .iter()
        .map(|s| activity(s, format!("listed by {s}")))
        .collect()
}

#[async_trait]
impl InspectorPlugin for ThreatListInspector {
    async fn inspect(&self, task: &Task) -> Result<InspectorOutput, PluginError> {
        let value = task.attribute.value.trim();
        let mut out = InspectorOutput::default();
        match task.attribute.attr_type {
            AttrType::Ipaddr => {
                if let Ok(ip) = value.parse::<IpAddr>() {
                    let sources = self.lists.ip(ip);
                    if !sources.is_empty() {
                        out.findings.push(FindingContent::Host(ContentHost {
                            ipaddr: vec![value.into()],
                            activities: listed_by(&sources),
                            ..Default::default()
                        }));
                    }
                }
            }
            AttrType::Domain => {
                let hits = self.lists.domain(value);
                if !hits.is_empty() {
                    out.findings.push(FindingContent::Host(ContentHost {
                        activities: hits
                            .iter()
                            .map(|(listed, s)| activity(s, format!("{listed} listed by {s}")))
                            .collect(),
                        ..Default::default()
                    }));
                }
            }
            AttrType::Filehashvalue => {
                if let Some(sources) = self.lists.hashes.get(&value.to_ascii_lowercase()) {
                    out.findings.push(FindingContent::Binary(ContentBinary {
                        related_malware: sources
                            .iter()
                            .map(|s| EntityMalware {
                                sha256: value.to_ascii_lowercase(),
                                relation: format!("listed by {s}"),
                                ..Default::default()
                            })
                            .collect(),
                        activities: listed_by(sources),
                        ..Default::default()
                    }));
                }
            }
            AttrType::Url => {
                if let Some(sources) = self.lists.urls.get(&normalize_url(value)) {
                    out.findings.push(FindingContent::Host(ContentHost {
                        related_urls: sources
                            .iter()
                            .map(|s| EntityUrl {
                                url: value.into(),
                                source: s.clone(),
                                ..Default::default()
                            })
                            .collect(),
                        activities: listed_by(sources),
                        ..Default::default()
                    }));
                }
            }
            _ => {}
        }
        Ok(out)
    }
}
