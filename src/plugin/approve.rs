//! `kubectl relman approve REL` and `kubectl relman reject REL`: a `ReleaseApproval` for the
//! release's version, signed by the user the API server sees (from a SelfSubjectReview), so
//! the admission policy's identity check passes for exactly that user.

use std::io::Write;

use clap::Args;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{Api, PostParams};

use crate::api::{Decision, Release, ReleaseApproval, ReleaseApprovalSpec};

use super::error::PluginError;
use super::session::{Session, get_release};

/// The longest name of a Kubernetes object (a DNS subdomain).
const MAX_NAME: usize = 253;

/// The arguments of `kubectl relman approve`.
#[derive(Debug, Clone, Args)]
pub struct ApproveArgs {
    /// The Release to sign off.
    pub release: String,
    /// Approve this named requirement (e.g. acceptance-criteria) instead of a stage.
    #[arg(long, value_name = "NAME", conflicts_with = "gate")]
    pub requirement: Option<String>,
    /// The stage to approve (default: the first stage that still needs approval).
    #[arg(long, value_name = "STAGE")]
    pub gate: Option<String>,
    /// Why, for the record.
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
}

/// The arguments of `kubectl relman reject`.
#[derive(Debug, Clone, Args)]
pub struct RejectArgs {
    /// The Release to reject.
    pub release: String,
    /// The gate (stage or requirement) to reject (default: the first stage that still needs approval).
    #[arg(long, value_name = "STAGE")]
    pub gate: Option<String>,
    /// Why the release must stop.
    #[arg(long, value_name = "TEXT")]
    pub comment: String,
}

/// Runs `kubectl relman approve`.
pub async fn run_approve(
    session: &Session,
    args: &ApproveArgs,
    out: &mut impl Write,
) -> Result<(), PluginError> {
    let gate = args.requirement.clone().or_else(|| args.gate.clone());
    decide(
        session,
        &args.release,
        gate,
        Decision::Approved,
        args.comment.clone(),
        out,
    )
    .await
}

/// Runs `kubectl relman reject`.
pub async fn run_reject(
    session: &Session,
    args: &RejectArgs,
    out: &mut impl Write,
) -> Result<(), PluginError> {
    let comment = Some(args.comment.clone());
    decide(
        session,
        &args.release,
        args.gate.clone(),
        Decision::Rejected,
        comment,
        out,
    )
    .await
}

/// Creates the decision and says what follows.
async fn decide(
    session: &Session,
    name: &str,
    gate: Option<String>,
    decision: Decision,
    comment: Option<String>,
    out: &mut impl Write,
) -> Result<(), PluginError> {
    let release = get_release(session, name).await?;
    let gate = match gate {
        Some(gate) => gate,
        None => default_gate(&release)?,
    };
    let user = whoami(session).await?;
    let approval = approval(&release, &gate, decision, &user, comment);
    let object_name = approval.metadata.name.clone().unwrap_or_default();
    let api: Api<ReleaseApproval> = Api::namespaced(session.client.clone(), &session.namespace);
    match api.create(&PostParams::default(), &approval).await {
        Err(kube::Error::Api(status)) if status.code == 409 => {
            return Err(PluginError::AlreadyDecided(object_name));
        }
        other => other?,
    };
    let verb = match decision {
        Decision::Approved => "approved",
        Decision::Rejected => "rejected",
    };
    writeln!(
        out,
        "{user} {verb} gate {gate} of release {name} (version {}): ReleaseApproval {object_name}.",
        release.spec.version
    )?;
    if decision == Decision::Rejected {
        writeln!(
            out,
            "relman stops the release and reverts every Deployment it changed."
        )?;
    }
    Ok(())
}

/// The first stage that requires approval and does not have its approvals yet.
pub fn default_gate(release: &Release) -> Result<String, PluginError> {
    let approvals = release
        .status
        .as_ref()
        .map(|s| s.approvals.as_slice())
        .unwrap_or_default();
    let gated: Vec<_> = release
        .spec
        .stages
        .iter()
        .filter_map(|stage| {
            let policy = stage.approval.as_ref().filter(|p| p.required)?;
            Some((stage.name.clone(), policy.approvers.max(1)))
        })
        .collect();
    if gated.is_empty() {
        return Err(PluginError::NoGate(format!(
            "no stage of release {} requires approval; name a requirement with --requirement",
            release.metadata.name.as_deref().unwrap_or_default()
        )));
    }
    let approved = |gate: &str| {
        approvals
            .iter()
            .filter(|a| a.gate == gate && a.decision == "Approved")
            .count()
    };
    gated
        .iter()
        .find(|(gate, needed)| approved(gate) < *needed as usize)
        .map(|(gate, _)| gate.clone())
        .ok_or_else(|| {
            PluginError::NoGate(format!(
                "every approval gate of release {} is approved already; name one with --gate",
                release.metadata.name.as_deref().unwrap_or_default()
            ))
        })
}

/// The user name the API server authenticates this session as.
pub async fn whoami(session: &Session) -> Result<String, PluginError> {
    let api: Api<SelfSubjectReview> = Api::all(session.client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await?;
    review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| PluginError::Api("the API server did not say who you are".into()))
}

/// The ReleaseApproval for `release`'s version at `gate`.
pub fn approval(
    release: &Release,
    gate: &str,
    decision: Decision,
    user: &str,
    comment: Option<String>,
) -> ReleaseApproval {
    let release_name = release.metadata.name.clone().unwrap_or_default();
    let mut name = format!("{release_name}-{gate}-{user}");
    if decision == Decision::Rejected {
        name.push_str("-rejected");
    }
    ReleaseApproval::new(
        &dns_name(&name),
        ReleaseApprovalSpec {
            release: release_name,
            version: release.spec.version.clone(),
            gate: gate.to_owned(),
            decision,
            approver: user.to_owned(),
            comment,
            release_uid: release.metadata.uid.clone(),
        },
    )
}

/// `name` as a DNS subdomain: lower case, other characters replaced by `-`, at most 253
/// characters, starting and ending with a letter or digit.
pub fn dns_name(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '.') => c,
            _ => '-',
        })
        .take(MAX_NAME)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn release(approvals: serde_json::Value) -> Release {
        serde_json::from_value(json!({
            "apiVersion": "relman.io/v1alpha1", "kind": "Release",
            "metadata": {"name": "web-2-0-0"},
            "spec": {"application": "web", "version": "2.0.0", "type": "Minor", "owner": "team",
                "images": [{"container": "api", "image": "web:2.0.0"}],
                "stages": [
                    {"name": "staging", "deployments": ["web-staging"]},
                    {"name": "canary", "deployments": ["web-canary"], "approval": {"approvers": 2}},
                    {"name": "production", "deployments": ["web-prod"], "approval": {}}
                ]},
            "status": {"approvals": approvals}
        }))
        .unwrap()
    }

    fn record(gate: &str, approver: &str) -> serde_json::Value {
        json!({"name": format!("{gate}-{approver}"), "gate": gate, "decision": "Approved",
            "approver": approver})
    }

    #[test]
    fn the_default_gate_is_the_first_stage_still_needing_approvals() {
        assert_eq!(default_gate(&release(json!([]))).unwrap(), "canary");
        let one = release(json!([record("canary", "alice")]));
        assert_eq!(default_gate(&one).unwrap(), "canary");
        let two = release(json!([record("canary", "alice"), record("canary", "bob")]));
        assert_eq!(default_gate(&two).unwrap(), "production");
        let all = release(json!([
            record("canary", "alice"),
            record("canary", "bob"),
            record("production", "carol")
        ]));
        assert!(matches!(default_gate(&all), Err(PluginError::NoGate(_))));
    }

    #[test]
    fn an_approval_signs_the_releases_version() {
        let approval = approval(
            &release(json!([])),
            "production",
            Decision::Rejected,
            "system:admin",
            Some("no".into()),
        );
        assert_eq!(
            approval.metadata.name.as_deref(),
            Some("web-2-0-0-production-system-admin-rejected")
        );
        assert_eq!(approval.spec.version, "2.0.0");
        assert_eq!(approval.spec.approver, "system:admin");
        assert_eq!(
            approval.spec.release_uid, None,
            "a Release without a uid names none"
        );
        let mut live = release(json!([]));
        live.metadata.uid = Some("uid-live".into());
        let bound = super::approval(&live, "production", Decision::Approved, "alice", None);
        assert_eq!(bound.spec.release_uid.as_deref(), Some("uid-live"));
    }

    #[test]
    fn names_are_dns_subdomains() {
        assert_eq!(
            dns_name("checkout-2-3-0-production-system:admin"),
            "checkout-2-3-0-production-system-admin"
        );
        assert_eq!(
            dns_name("Web-Prod-Alice@Example.com-"),
            "web-prod-alice-example.com"
        );
        assert_eq!(dns_name(&"a".repeat(300)).len(), MAX_NAME);
    }
}
