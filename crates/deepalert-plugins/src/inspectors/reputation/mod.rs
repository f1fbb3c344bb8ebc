//! What the HTTP reputation inspectors share: API keys that are never logged, a response
//! cache per (provider, indicator) with a TTL, a per-provider rate limit, and HTTP 429
//! reported as "rate limited" (a note on the report) rather than nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deepalert_core::InspectorOutput;
use deepalert_core::ports::PluginError;
use serde::Deserialize;

/// Options every reputation inspector takes besides its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommonOptions {
    /// Name of the secret holding the API key (see `crate::secrets`).
    pub api_key_env: String,
    /// Requests per minute at most (the provider's quota).
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    /// How long an answer is reused for the same indicator, e.g. "6h".
    #[serde(default, with = "humantime_serde_opt")]
    pub cache_ttl: Option<Duration>,
    /// API base URL (tests, proxies).
    #[serde(default)]
    pub base_url: Option<String>,
}

mod humantime_serde_opt {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| parse(&s).map_err(serde::de::Error::custom))
            .transpose()
    }

    /// `90s`, `15m`, `6h`, `1d`.
    fn parse(s: &str) -> Result<Duration, String> {
        let s = s.trim();
        let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a duration like 90s, 15m, 6h, 1d"))?;
        let secs = match unit {
            "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            "d" => n * 86400,
            _ => return Err(format!("{s:?} is not a duration like 90s, 15m, 6h, 1d")),
        };
        Ok(Duration::from_secs(secs))
    }
}

/// An API key. Its `Debug` hides it, so it cannot end up in a log line by accident.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: String) -> Self {
        ApiKey(key)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Answers per indicator, forgotten after `ttl`. Failures are never cached.
pub struct Cache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, InspectorOutput)>>,
}

impl Cache {
    pub fn new(ttl: Duration) -> Self {
        Cache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &str) -> Option<InspectorOutput> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(key) {
            Some((at, out)) if at.elapsed() < self.ttl => Some(out.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, key: String, out: InspectorOutput) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: drop expired entries when it grows.
        if entries.len() > 10_000 {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        entries.insert(key, (Instant::now(), out));
    }
}

/// Spaces requests evenly: at most `per_minute` a minute, waiting for a slot.
pub struct RateLimit {
    spacing: Duration,
    next: tokio::sync::Mutex<Instant>,
}

impl RateLimit {
    pub fn per_minute(n: u32) -> Self {
        RateLimit {
            spacing: Duration::from_secs(60) / n.max(1),
            next: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    pub async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + self.spacing;
            at
        };
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
    }
}

/// What a reputation inspector needs to call its provider: key, base URL, cache, rate
/// limit and HTTP client, built from the common options.
pub struct Provider {
    pub name: &'static str,
    pub key: ApiKey,
    pub base: String,
    pub cache: Cache,
    pub limit: RateLimit,
    pub http: reqwest::Client,
}

impl Provider {
    pub fn new(
        name: &'static str,
        options: &CommonOptions,
        key: ApiKey,
        default_base: &str,
        default_per_minute: u32,
    ) -> Self {
        Provider {
            name,
            key,
            base: options
                .base_url
                .clone()
                .unwrap_or_else(|| default_base.into())
                .trim_end_matches('/')
                .into(),
            cache: Cache::new(options.cache_ttl.unwrap_or(Duration::from_secs(6 * 3600))),
            limit: RateLimit::per_minute(options.requests_per_minute.unwrap_or(default_per_minute)),
            http: crate::emitters::http_client(),
        }
    }

    /// Cached answer for `cache_key`, or `request` (rate limited) turned into findings.
    pub async fn lookup(
        &self,
        cache_key: &str,
        request: reqwest::RequestBuilder,
        findings: impl FnOnce(&serde_json::Value) -> deepalert_core::FindingContent,
    ) -> Result<InspectorOutput, PluginError> {
        if let Some(hit) = self.cache.get(cache_key) {
            return Ok(hit);
        }
        let mut out = InspectorOutput::default();
        if let Some(body) = get_json(self.name, &self.limit, request).await? {
            out.findings.push(findings(&body));
        }
        self.cache.put(cache_key.to_string(), out.clone());
        Ok(out)
    }
}

/// The shared request path: rate limit, GET, and the status mapping. `Ok(None)` is 404.
pub async fn get_json(
    provider: &str,
    limit: &RateLimit,
    request: reqwest::RequestBuilder,
) -> Result<Option<serde_json::Value>, PluginError> {
    limit.wait().await;
    let resp = request
        .send()
        .await
        .map_err(|e| PluginError::Failed(format!("{provider}: {}", e.without_url())))?;
    let status = resp.status();
    match status.as_u16() {
        200..=299 => resp
            .json()
            .await
            .map(Some)
            .map_err(|e| PluginError::BadOutput(format!("{provider}: unreadable answer: {e}"))),
        404 => Ok(None),
        429 => Err(PluginError::RateLimited(format!(
            "{provider} (HTTP 429: quota exhausted; the lookup was not made)"
        ))),
        401 | 403 => Err(PluginError::Failed(format!(
            "{provider} refused the API key (HTTP {status})"
        ))),
        _ => {
            let body = resp.text().await.unwrap_or_default();
            Err(PluginError::Failed(format!(
                "{provider} answered HTTP {status}: {}",
                &body[..body.len().min(200)]
            )))
        }
    }
}
