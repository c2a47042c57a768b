//! `kubectl relman status REL [-o json|yaml]`: where a release is — stages with their
//! checks, gates and conditions, requirements, approvals, failures, incident and timeline.

use std::io::Write;

use clap::{Args, ValueEnum};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::Release;
use crate::api::release::{JobStatus, ReleaseStatus, StageStatus};

use super::error::PluginError;
use super::session::{Session, get_release};
use super::table::Table;

/// How to print the release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// The whole Release object as JSON.
    Json,
    /// The whole Release object as YAML.
    Yaml,
}

/// The arguments of `kubectl relman status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The Release to show.
    pub release: String,
    /// Print the Release object instead of the summary.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
}

/// Runs `kubectl relman status`.
pub async fn run(
    session: &Session,
    args: &StatusArgs,
    out: &mut impl Write,
) -> Result<(), PluginError> {
    let release = get_release(session, &args.release).await?;
    let text = match args.output {
        Some(Output::Json) => serde_json::to_string_pretty(&release)
            .map(|s| s + "\n")
            .map_err(|e| PluginError::Encode(e.to_string()))?,
        Some(Output::Yaml) => {
            serde_yaml::to_string(&release).map_err(|e| PluginError::Encode(e.to_string()))?
        }
        None => render_status(&release),
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// The release as people read it.
pub fn render_status(release: &Release) -> String {
    let status = release.status.clone().unwrap_or_default();
    let mut out = header(release, &status);
    section(&mut out, "Conditions", conditions(&status));
    section(&mut out, "Requirements", requirements(&status));
    section(&mut out, "Stages", stages(&status));
    section(&mut out, "Approvals", approvals(&status));
    out.push_str(&failures(&status));
    out.push_str(&incident(release, &status));
    section(&mut out, "Notifications", notifications(&status));
    section(&mut out, "Timeline", timeline(&status));
    out
}

/// The first lines: what is released and where it is.
fn header(release: &Release, status: &ReleaseStatus) -> String {
    let spec = &release.spec;
    format!(
        "Release {} (namespace {})\n  {} {} ({:?}), owner {}\n  Phase: {}   Stage: {}{}\n",
        release.metadata.name.as_deref().unwrap_or_default(),
        release.metadata.namespace.as_deref().unwrap_or_default(),
        spec.application,
        spec.version,
        spec.release_type,
        spec.owner,
        status
            .phase
            .map_or_else(|| "-".into(), |p| format!("{p:?}")),
        status.stage.as_deref().unwrap_or("-"),
        if spec.abort { "   (aborted)" } else { "" },
    )
}

/// Appends a titled, indented table unless it is empty.
fn section(out: &mut String, title: &str, table: Table) {
    if table.is_empty() {
        return;
    }
    out.push_str(&format!("\n{title}:\n"));
    for line in table.render().lines() {
        out.push_str(&format!("  {line}\n"));
    }
}

fn conditions(status: &ReleaseStatus) -> Table {
    let mut table = Table::new(["TYPE", "STATUS", "REASON", "MESSAGE"]);
    for c in &status.conditions {
        table.row(vec![
            c.type_.clone(),
            c.status.clone(),
            c.reason.clone(),
            one_line(&c.message),
        ]);
    }
    table
}

fn requirements(status: &ReleaseStatus) -> Table {
    let mut table = Table::new(["REQUIREMENT", "MET", "MESSAGE"]);
    for r in &status.requirements {
        let message = r.message.as_deref().map(one_line).unwrap_or_default();
        table.row(vec![r.name.clone(), r.met.to_string(), message]);
    }
    table
}

fn stages(status: &ReleaseStatus) -> Table {
    let mut table = Table::new([
        "STAGE",
        "PHASE",
        "ATTEMPT",
        "BACKUP",
        "SMOKE TEST",
        "FINISHED",
    ]);
    for s in &status.stages {
        table.row(vec![
            s.name.clone(),
            s.phase.map_or_else(|| "-".into(), |p| format!("{p:?}")),
            s.attempt.map_or_else(|| "-".into(), |a| a.to_string()),
            job(s.backup.as_ref()),
            job(s.smoke_test.as_ref()),
            time(s.finished_at.as_ref()),
        ]);
    }
    table
}

/// A check as `job-name: result`.
fn job(job: Option<&JobStatus>) -> String {
    job.map_or_else(
        || "-".into(),
        |j| format!("{}: {}", j.name, j.result.as_deref().unwrap_or("running")),
    )
}

fn approvals(status: &ReleaseStatus) -> Table {
    let mut table = Table::new(["GATE", "DECISION", "APPROVER", "AT", "APPROVAL"]);
    for a in &status.approvals {
        table.row(vec![
            a.gate.clone(),
            a.decision.clone(),
            a.approver.clone(),
            time(a.at.as_ref()),
            a.name.clone(),
        ]);
    }
    table
}

/// The reasons stages and checks failed, one line each.
fn failures(status: &ReleaseStatus) -> String {
    let lines: Vec<String> = status.stages.iter().flat_map(stage_failures).collect();
    if lines.is_empty() {
        return String::new();
    }
    format!("\nFailures:\n{}", lines.concat())
}

fn stage_failures(stage: &StageStatus) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(f) = &stage.failure {
        lines.push(format!(
            "  {}: {}: {}\n",
            stage.name,
            f.reason,
            one_line(&f.message)
        ));
    }
    for j in [&stage.backup, &stage.smoke_test].into_iter().flatten() {
        if let (Some(message), true) = (&j.message, j.failed()) {
            lines.push(format!(
                "  {} Job {}: {}\n",
                stage.name,
                j.name,
                one_line(message)
            ));
        }
    }
    lines
}

/// The incident and what people recorded about it.
fn incident(release: &Release, status: &ReleaseStatus) -> String {
    let Some(i) = &status.incident else {
        return String::new();
    };
    let state = if i.closed_at.is_some() {
        "closed"
    } else {
        "open"
    };
    let mut out = format!(
        "\nIncident ({state}): opened {} in stage {}: {}: {}\n",
        time(Some(&i.opened_at)),
        i.stage,
        i.reason,
        one_line(&i.message)
    );
    if let Some(at) = &i.restored_at {
        out.push_str(&format!(
            "  restored {} (revision {})\n",
            time(Some(at)),
            i.revision_restored.as_deref().unwrap_or("-")
        ));
    }
    let record = release.spec.incident.clone().unwrap_or_default();
    match &record.root_cause {
        Some(cause) => out.push_str(&format!("  root cause: {}\n", one_line(cause))),
        None => out.push_str(&format!(
            "  no root cause yet: kubectl relman incident {} --root-cause TEXT --action ITEM\n",
            release.metadata.name.as_deref().unwrap_or_default()
        )),
    }
    for item in &record.action_items {
        out.push_str(&format!("  action: {}\n", one_line(item)));
    }
    out
}

fn notifications(status: &ReleaseStatus) -> Table {
    let mut table = Table::new(["RECEIVER", "EVENT", "RESULT", "ATTEMPTS", "AT", "MESSAGE"]);
    for n in &status.notifications {
        table.row(vec![
            n.target.clone(),
            format!("{:?}", n.event),
            if n.delivered { "delivered" } else { "failed" }.into(),
            n.attempts.to_string(),
            time(Some(&n.time)),
            n.message.as_deref().map(one_line).unwrap_or_default(),
        ]);
    }
    table
}

fn timeline(status: &ReleaseStatus) -> Table {
    let mut table = Table::new(["TIME", "EVENT", "STAGE", "MESSAGE"]);
    for h in &status.history {
        table.row(vec![
            time(Some(&h.at)),
            h.event.clone(),
            h.stage.clone().unwrap_or_else(|| "-".into()),
            h.message.as_deref().map(one_line).unwrap_or_default(),
        ]);
    }
    table
}

/// A timestamp in UTC, to the second.
fn time(time: Option<&Time>) -> String {
    time.map_or_else(|| "-".into(), |t| t.0.to_string())
}

/// `text` with its whitespace runs collapsed to single spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shows_stages_checks_failures_incident_notifications_and_timeline() {
        let release: Release = serde_json::from_value(json!({
            "apiVersion": "relman.io/v1alpha1", "kind": "Release",
            "metadata": {"name": "web-2-0-0", "namespace": "shop"},
            "spec": {"application": "web", "version": "2.0.0", "type": "Minor", "owner": "team",
                "images": [{"container": "api", "image": "web:2.0.0"}],
                "stages": [{"name": "production", "deployments": ["web-prod"]}]},
            "status": {
                "phase": "RolledBack", "stage": "production",
                "conditions": [{"type": "Ready", "status": "False", "reason": "RolledBack",
                    "message": "smoke test\nfailed", "lastTransitionTime": "2026-11-26T10:00:00Z"}],
                "requirements": [{"name": "notesDrafted", "met": true}],
                "stages": [{"name": "production", "phase": "RolledBack", "attempt": 1,
                    "smokeTest": {"name": "web-2-0-0-production-smoke-1", "result": "Failed",
                        "message": "exit 1"},
                    "failure": {"reason": "SmokeTestFailed", "message": "the smoke test failed"}}],
                "incident": {"openedAt": "2026-11-26T10:00:00Z", "stage": "production",
                    "reason": "SmokeTestFailed", "message": "reverted"},
                "history": [{"at": "2026-11-26T09:00:00Z", "event": "ProductionStarted",
                    "stage": "production"}],
                "notifications": [{"target": "on-call", "event": "IncidentOpened",
                    "delivered": false, "attempts": 3, "time": "2026-11-26T10:00:05Z",
                    "message": "the receiver answered HTTP 503"}]
            }
        }))
        .unwrap();
        let text = render_status(&release);
        for expected in [
            "Release web-2-0-0 (namespace shop)",
            "Phase: RolledBack",
            "Ready   False    RolledBack   smoke test failed",
            "web-2-0-0-production-smoke-1: Failed",
            "production: SmokeTestFailed: the smoke test failed",
            "production Job web-2-0-0-production-smoke-1: exit 1",
            "Incident (open)",
            "kubectl relman incident web-2-0-0 --root-cause",
            "ProductionStarted",
            "on-call    IncidentOpened   failed   3",
            "the receiver answered HTTP 503",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
    }
}
