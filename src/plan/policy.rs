//! The rules of a stage's target namespace: its ReleasePolicies (every one applies), the
//! cluster default when it has none, or the built-in default. Pure: the policies in, the
//! combined rules and the reasons for a refusal out.
//!
//! Combining policies only ever narrows: a Release namespace must be accepted by every policy,
//! a Deployment selected by every one, a Job template must meet the strictest level and a
//! ServiceAccount every policy names; gates add up (the most approvers, every calendar, every
//! requirement, the release types all allow).

use std::collections::BTreeMap;

use kube::core::{Selector, SelectorExt};

use crate::api::ReleaseType;
use crate::api::policy::{PodSecurityLevel, ReleasePolicySpec};
use crate::api::release::Requirement;

/// What the built-in default is called in messages and in the status.
pub const BUILT_IN: &str = "the built-in default policy";

/// One ReleasePolicy as the planner sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedPolicy {
    /// `namespace/name`.
    pub id: String,
    /// Its spec.
    pub spec: ReleasePolicySpec,
}

/// The rules that govern one namespace for Releases.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NamespacePolicy {
    /// The namespace's own ReleasePolicies; when it has none, the cluster default (if one is
    /// configured and exists). Empty: the built-in default.
    pub policies: Vec<NamedPolicy>,
    /// Whether `policies` is the cluster default rather than the namespace's own.
    pub cluster_default: bool,
    /// relman could not read the namespace's ReleasePolicies (e.g. 403): nothing may be done
    /// there, because what the owner demands is unknown.
    pub unreadable: Option<String>,
}

/// The combined sign-off rule of a namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalDemand {
    /// The most approvers any policy asks for.
    pub approvers: u32,
    /// Whether some policy keeps the Release's creator from signing off.
    pub independent: bool,
    /// The policies that ask for a sign-off, for messages.
    pub by: String,
    /// The groups the approvers must belong to (every one some policy names).
    pub groups: Vec<String>,
}

impl NamespacePolicy {
    /// The specs that apply, with their names: the policies, or the built-in default.
    pub fn specs(&self) -> Vec<(String, ReleasePolicySpec)> {
        if self.policies.is_empty() {
            return vec![(BUILT_IN.to_owned(), ReleasePolicySpec::default())];
        }
        self.policies
            .iter()
            .map(|p| (format!("ReleasePolicy {}", p.id), p.spec.clone()))
            .collect()
    }

    /// The policies the namespace holds a Release to, for `status.stages[].policies`.
    pub fn describe(&self) -> Vec<String> {
        if self.policies.is_empty() {
            return vec!["(built-in default)".to_owned()];
        }
        self.policies
            .iter()
            .map(|p| {
                if self.cluster_default {
                    format!("{} (cluster default)", p.id)
                } else {
                    p.id.clone()
                }
            })
            .collect()
    }

    /// Whether some policy of the namespace's own (not the cluster default) exists: then the
    /// legacy `relman.io/accept-releases-from` annotation is ignored.
    pub fn is_own(&self) -> bool {
        !self.policies.is_empty() && !self.cluster_default
    }

    /// `Ok` when every policy accepts Releases of `source` (a namespace with `labels`), else
    /// the first policy that does not and why.
    pub fn accepts(
        &self,
        source: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), (String, String)> {
        for (name, spec) in self.specs() {
            let Some(from) = &spec.accept_releases_from else {
                return Err((name, "spec.acceptReleasesFrom is not set".to_owned()));
            };
            let by_name = from.namespaces.iter().any(|n| n.0 == "*" || n.0 == source);
            let by_label = match &from.namespace_selector {
                None => false,
                Some(selector) => match Selector::try_from(selector.clone()) {
                    Ok(selector) => selector.matches(labels),
                    Err(e) => {
                        return Err((
                            name,
                            format!("spec.acceptReleasesFrom.namespaceSelector is invalid: {e}"),
                        ));
                    }
                },
            };
            if !by_name && !by_label {
                return Err((
                    name,
                    format!(
                        "spec.acceptReleasesFrom neither names namespace {source} nor selects its labels"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `Some((policy, why))` when a policy does not let Releases drive a Deployment with
    /// `labels`.
    pub fn refuses_deployment(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Option<(String, String)> {
        self.specs().into_iter().find_map(|(name, spec)| {
            let rules = spec.deployments.as_ref()?;
            match Selector::try_from(rules.selector.clone()) {
                Ok(selector) if selector.matches(labels) => None,
                Ok(selector) => Some((
                    name,
                    format!("its labels do not match spec.deployments.selector ({selector})"),
                )),
                Err(e) => Some((name, format!("spec.deployments.selector is invalid: {e}"))),
            }
        })
    }

    /// `Some((policy, allowed prefixes))` when a policy does not allow `image`.
    pub fn refuses_image(&self, image: &str) -> Option<(String, Vec<String>)> {
        self.specs().into_iter().find_map(|(name, spec)| {
            let allowed = spec.images?.allowed_prefixes;
            (!allowed
                .iter()
                .any(|prefix| image.starts_with(prefix.as_str())))
            .then_some((name, allowed))
        })
    }

    /// The strictest Pod Security level of the policies, the ServiceAccounts every policy
    /// allows, and which policy set the level (for messages).
    pub fn job_limits(&self) -> (PodSecurityLevel, Vec<String>, String) {
        let specs = self.specs();
        let (level, by) = specs
            .iter()
            .map(|(name, spec)| (spec.jobs.pod_security, name.clone()))
            .max_by_key(|(level, _)| *level)
            .unwrap_or((PodSecurityLevel::Restricted, BUILT_IN.to_owned()));
        let mut accounts: Option<Vec<String>> = None;
        for (_, spec) in &specs {
            let allowed: Vec<String> = spec
                .jobs
                .service_accounts
                .iter()
                .map(|a| a.0.clone())
                .collect();
            accounts = Some(match accounts {
                None => allowed,
                Some(so_far) => so_far.into_iter().filter(|a| allowed.contains(a)).collect(),
            });
        }
        (level, accounts.unwrap_or_default(), by)
    }

    /// `Some((policy, allowed))` when a policy does not allow `release_type` here.
    pub fn refuses_type(&self, release_type: ReleaseType) -> Option<(String, Vec<ReleaseType>)> {
        self.specs().into_iter().find_map(|(name, spec)| {
            let allowed = &spec.gates.release_types;
            (!allowed.is_empty() && !allowed.contains(&release_type))
                .then(|| (name, allowed.clone()))
        })
    }

    /// The sign-off the policies demand, if any.
    pub fn approval(&self) -> Option<ApprovalDemand> {
        let mut demand: Option<ApprovalDemand> = None;
        for (name, spec) in self.specs() {
            let Some(rule) = &spec.gates.approval else {
                continue;
            };
            demand = Some(match demand {
                None => ApprovalDemand {
                    approvers: rule.approvers.max(1),
                    independent: rule.independent,
                    by: name,
                    groups: rule.group.iter().cloned().collect(),
                },
                Some(d) => ApprovalDemand {
                    approvers: d.approvers.max(rule.approvers),
                    independent: d.independent || rule.independent,
                    by: format!("{}, {name}", d.by),
                    groups: d.groups.into_iter().chain(rule.group.clone()).collect(),
                },
            });
        }
        demand
    }

    /// The calendars the policies demand, each with the policy that demands it.
    pub fn calendars(&self) -> Vec<(String, String)> {
        self.specs()
            .into_iter()
            .filter_map(|(name, spec)| spec.gates.calendar.map(|c| (c, name)))
            .collect()
    }

    /// The requirements the policies demand, each with the policy that demands it (the first
    /// policy's definition of a name wins).
    pub fn requirements(&self) -> Vec<(Requirement, Demanded)> {
        let mut out: Vec<(Requirement, Demanded)> = Vec::new();
        for policy in &self.policies {
            for requirement in &policy.spec.gates.requirements {
                if !out.iter().any(|(r, _)| r.name == requirement.name) {
                    let namespace = policy.id.split('/').next().unwrap_or_default();
                    out.push((
                        requirement.clone(),
                        Demanded {
                            policy: format!("ReleasePolicy {}", policy.id),
                            namespace: namespace.to_owned(),
                        },
                    ));
                }
            }
        }
        out
    }
}

/// The policy that demands a requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Demanded {
    /// The policy, for messages: `ReleasePolicy namespace/name`.
    pub policy: String,
    /// The policy's namespace: a condition the requirement names is read there.
    pub namespace: String,
}

/// The requirements a Release must meet: its own, with those its stage namespaces' policies
/// demand added, a policy's definition replacing the Release's own of the same name (so the
/// author cannot point a demanded requirement at an object they control). Each comes with the
/// policy that demands it, if any.
pub fn effective_requirements<'a>(
    own: &[Requirement],
    policies: impl IntoIterator<Item = &'a NamespacePolicy>,
) -> Vec<(Requirement, Option<Demanded>)> {
    let mut out: Vec<(Requirement, Option<Demanded>)> =
        own.iter().map(|r| (r.clone(), None)).collect();
    for policy in policies {
        for (requirement, demanded) in policy.requirements() {
            match out.iter_mut().find(|(r, _)| r.name == requirement.name) {
                Some(slot) if slot.1.is_none() => *slot = (requirement, Some(demanded)),
                Some(_) => {}
                None => out.push((requirement, Some(demanded))),
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy(id: &str, spec: serde_json::Value) -> NamedPolicy {
        NamedPolicy {
            id: id.to_owned(),
            spec: serde_json::from_value(spec).unwrap(),
        }
    }

    fn own(policies: Vec<NamedPolicy>) -> NamespacePolicy {
        NamespacePolicy {
            policies,
            ..Default::default()
        }
    }

    #[test]
    fn the_built_in_default_is_restricted_same_namespace_and_gate_free() {
        let default = NamespacePolicy::default();
        let (level, accounts, by) = default.job_limits();
        assert_eq!(level, PodSecurityLevel::Restricted);
        assert_eq!(accounts, vec!["default"]);
        assert_eq!(by, BUILT_IN);
        assert!(default.accepts("other", &BTreeMap::new()).is_err());
        assert!(default.approval().is_none());
        assert!(default.calendars().is_empty());
        assert!(default.refuses_type(ReleaseType::Major).is_none());
        assert!(default.refuses_deployment(&BTreeMap::new()).is_none());
        assert_eq!(default.describe(), vec!["(built-in default)"]);
    }

    #[test]
    fn every_policy_must_accept_a_source_namespace() {
        let labels = BTreeMap::from([("team".to_owned(), "shop".to_owned())]);
        let by_name = policy(
            "prod/a",
            json!({"acceptReleasesFrom": {"namespaces": ["dev"]}}),
        );
        let by_label = policy(
            "prod/b",
            json!({"acceptReleasesFrom": {"namespaceSelector": {"matchLabels": {"team": "shop"}}}}),
        );
        let any = policy(
            "prod/c",
            json!({"acceptReleasesFrom": {"namespaces": ["*"]}}),
        );
        assert!(own(vec![by_name.clone()]).accepts("dev", &labels).is_ok());
        assert!(own(vec![by_label.clone()]).accepts("dev", &labels).is_ok());
        assert!(
            own(vec![any.clone()])
                .accepts("qa", &BTreeMap::new())
                .is_ok()
        );
        assert!(
            own(vec![by_label.clone()])
                .accepts("dev", &BTreeMap::new())
                .is_err()
        );
        let (which, why) = own(vec![any, by_name]).accepts("qa", &labels).unwrap_err();
        assert_eq!(which, "ReleasePolicy prod/a");
        assert!(why.contains("qa"), "{why}");
    }

    #[test]
    fn policies_narrow_jobs_and_add_up_gates() {
        let loose = policy(
            "prod/loose",
            json!({"jobs": {"podSecurity": "Privileged", "serviceAccounts": ["default", "backup"]},
                   "gates": {"approval": {"approvers": 1, "independent": false}, "calendar": "ops"}}),
        );
        let strict = policy(
            "prod/strict",
            json!({"jobs": {"podSecurity": "Baseline", "serviceAccounts": ["backup"]},
                   "gates": {"approval": {"approvers": 2}, "releaseTypes": ["Patch"],
                             "requirements": [{"name": "security-scan"}]}}),
        );
        let both = own(vec![loose, strict]);
        let (level, accounts, by) = both.job_limits();
        assert_eq!(level, PodSecurityLevel::Baseline);
        assert_eq!(accounts, vec!["backup"]);
        assert_eq!(by, "ReleasePolicy prod/strict");
        let approval = both.approval().unwrap();
        assert_eq!((approval.approvers, approval.independent), (2, true));
        assert_eq!(
            both.calendars(),
            vec![("ops".to_owned(), "ReleasePolicy prod/loose".to_owned())]
        );
        assert!(both.refuses_type(ReleaseType::Minor).is_some());
        assert!(both.refuses_type(ReleaseType::Patch).is_none());
        assert_eq!(both.requirements().len(), 1);
    }

    #[test]
    fn only_images_under_an_allowed_prefix_pass_every_policy() {
        let shop = own(vec![
            policy(
                "prod/a",
                json!({"images": {"allowedPrefixes": ["registry.example/shop/"]}}),
            ),
            policy(
                "prod/b",
                json!({"images": {"allowedPrefixes": ["registry.example/"]}}),
            ),
        ]);
        assert!(
            shop.refuses_image("registry.example/shop/api:2.0.0")
                .is_none()
        );
        let (which, allowed) = shop.refuses_image("registry.example/other/api:1").unwrap();
        assert_eq!(which, "ReleasePolicy prod/a");
        assert_eq!(allowed, vec!["registry.example/shop/"]);
        assert!(shop.refuses_image("evil.example/shop/api:1").is_some());
        assert!(
            NamespacePolicy::default()
                .refuses_image("anything:1")
                .is_none()
        );
    }

    #[test]
    fn a_deployment_outside_the_selector_is_refused() {
        let shop = own(vec![policy(
            "prod/a",
            json!({"deployments": {"selector": {"matchLabels": {"team": "shop"}}}}),
        )]);
        let labels = |team: &str| BTreeMap::from([("team".to_owned(), team.to_owned())]);
        assert!(shop.refuses_deployment(&labels("shop")).is_none());
        let (which, why) = shop.refuses_deployment(&labels("billing")).unwrap();
        assert_eq!(which, "ReleasePolicy prod/a");
        assert!(why.contains("team=shop"), "{why}");
    }

    #[test]
    fn a_policy_requirement_replaces_the_authors_own() {
        let own_requirements: Vec<Requirement> = serde_json::from_value(json!([
            {"name": "security-scan", "condition": {"apiVersion": "v1", "kind": "ConfigMap",
                "name": "mine", "type": "Ready"}},
            {"name": "docs"}
        ]))
        .unwrap();
        let demanded = own(vec![policy(
            "prod/a",
            json!({"gates": {"requirements": [{"name": "security-scan"}, {"name": "load-test"}]}}),
        )]);
        let effective = effective_requirements(&own_requirements, [&demanded]);
        let names: Vec<(&str, bool, Option<&str>)> = effective
            .iter()
            .map(|(r, by)| {
                (
                    r.name.as_str(),
                    r.condition.is_some(),
                    by.as_ref().map(|d| d.policy.as_str()),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("security-scan", false, Some("ReleasePolicy prod/a")),
                ("docs", false, None),
                ("load-test", false, Some("ReleasePolicy prod/a")),
            ]
        );
    }
}
