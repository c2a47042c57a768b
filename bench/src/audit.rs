//! Counting relman's API requests in the API server's audit log.
//!
//! `make bench` sets `RELMAN_TESTENV_AUDIT_LOG` (where kube-apiserver writes its audit log) and
//! `RELMAN_TESTENV_AUDIT_POLICY` (`bench/audit-policy.yaml`: one Metadata event per request of
//! the benchmark's users only). Each phase gives relman, or the minimal client, a user of its
//! own, so the log says exactly which requests it made, whatever the other components do.

use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The variable that switches the API server's audit log on (read by relman-testenv).
const AUDIT_LOG_ENV: &str = "RELMAN_TESTENV_AUDIT_LOG";

/// The audit log, when the benchmark runs with one.
pub fn log_path() -> Option<PathBuf> {
    std::env::var_os(AUDIT_LOG_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// Removes the audit log of an earlier run, so the counts are this run's alone.
pub fn reset() -> anyhow::Result<()> {
    match log_path() {
        Some(path) if path.exists() => {
            std::fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))
        }
        Some(_) => Ok(()),
        None => {
            tracing::warn!(
                "{AUDIT_LOG_ENV} is not set: API request counts are skipped (make bench sets it)"
            );
            Ok(())
        }
    }
}

/// API requests, counted by verb and by verb and resource.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct RequestCounts {
    /// Every request.
    pub total: u64,
    /// By verb (`get`, `list`, `watch`, `create`, `patch`, `update`, `delete`).
    pub by_verb: BTreeMap<String, u64>,
    /// By verb and resource, e.g. `get deployments`, `patch releases/status`,
    /// `create jobs (dry run)`.
    pub by_request: BTreeMap<String, u64>,
}

impl RequestCounts {
    /// Writes (every verb that is not get, list or watch; dry runs excluded).
    pub fn writes(&self) -> u64 {
        self.by_request
            .iter()
            .filter(|(what, _)| {
                let verb = what.split(' ').next().unwrap_or_default();
                !matches!(verb, "get" | "list" | "watch") && !what.ends_with("(dry run)")
            })
            .map(|(_, n)| n)
            .sum()
    }

    /// Each count divided by `by` (per release, per reconcile), rounded to 0.01.
    pub fn per(&self, by: f64) -> PerUnit {
        let divide = |n: u64| {
            if by > 0.0 {
                ((n as f64 / by) * 100.0).round() / 100.0
            } else {
                0.0
            }
        };
        PerUnit {
            total: divide(self.total),
            writes: divide(self.writes()),
            by_verb: self
                .by_verb
                .iter()
                .map(|(k, v)| (k.clone(), divide(*v)))
                .collect(),
            by_request: self
                .by_request
                .iter()
                .map(|(k, v)| (k.clone(), divide(*v)))
                .collect(),
        }
    }
}

/// Request counts divided by a number of releases or reconciles.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct PerUnit {
    /// Every request.
    pub total: f64,
    /// Writes (dry runs excluded).
    pub writes: f64,
    /// By verb.
    pub by_verb: BTreeMap<String, f64>,
    /// By verb and resource.
    pub by_request: BTreeMap<String, f64>,
}

/// One line of the audit log: the fields the counts need.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuditEvent {
    #[serde(rename = "auditID")]
    audit_id: String,
    verb: String,
    #[serde(rename = "requestURI", default)]
    request_uri: String,
    user: User,
    #[serde(default)]
    object_ref: Option<ObjectRef>,
    request_received_timestamp: DateTime<Utc>,
}

#[derive(Deserialize)]
struct User {
    #[serde(default)]
    username: String,
}

#[derive(Deserialize)]
struct ObjectRef {
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    subresource: Option<String>,
}

/// The requests `user` made that the API server received in `[from, to]`; `None` without an
/// audit log.
pub fn count(
    user: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Option<RequestCounts>> {
    let Some(path) = log_path() else {
        return Ok(None);
    };
    let file = std::fs::File::open(&path)
        .with_context(|| format!("open the audit log {}", path.display()))?;
    let mut seen = HashSet::new();
    let mut counts = RequestCounts::default();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.with_context(|| format!("read {}", path.display()))?;
        // A line cut short by the API server's exit is skipped, not fatal.
        let Ok(event) = serde_json::from_str::<AuditEvent>(&line) else {
            continue;
        };
        if event.user.username != user
            || event.request_received_timestamp < from
            || event.request_received_timestamp > to
            // A watch logs when it starts and when it ends: count the request once.
            || !seen.insert(event.audit_id)
        {
            continue;
        }
        let resource = event.object_ref.as_ref().map_or_else(
            || event.request_uri.clone(),
            |o| match (&o.resource, &o.subresource) {
                (Some(r), Some(s)) => format!("{r}/{s}"),
                (Some(r), None) => r.clone(),
                _ => event.request_uri.clone(),
            },
        );
        let dry_run = if event.request_uri.contains("dryRun=") {
            " (dry run)"
        } else {
            ""
        };
        counts.total += 1;
        *counts.by_verb.entry(event.verb.clone()).or_default() += 1;
        *counts
            .by_request
            .entry(format!("{} {resource}{dry_run}", event.verb))
            .or_default() += 1;
    }
    Ok(Some(counts))
}
