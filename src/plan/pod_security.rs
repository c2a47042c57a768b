//! What a Release's Job templates may ask of the cluster. relman creates the backup and
//! smoke-test Jobs with its own identity, so a template is held to the rules the owner of the
//! stage's namespace set in its ReleasePolicy (see [`crate::plan::policy`]): a Pod Security
//! Standards level and the ServiceAccounts Jobs may run as. Without a policy that is the
//! **restricted** level and the namespace's `default` ServiceAccount.
//!
//! The levels are Kubernetes' own (`k8s.io/pod-security-admission`, policy version latest):
//! - **baseline**: no host namespaces, host paths, host ports, privileged or extra-capability
//!   containers, unconfined seccomp or AppArmor, custom SELinux users or roles, unmasked /proc
//!   outside a user namespace, unsafe sysctls, Windows host processes, probes or hooks that
//!   name another host;
//! - **restricted**: baseline, plus only ordinary volume types, `allowPrivilegeEscalation:
//!   false`, `runAsNonRoot: true`, never user 0, a RuntimeDefault or Localhost seccomp
//!   profile, and every capability dropped (`NET_BIND_SERVICE` alone may be added back);
//! - **privileged**: anything.
//!
//! `tests/pod_security.rs` checks each case against the API server's Pod Security admission.
//! Pure: a template in, the violations out.

use k8s_openapi::api::batch::v1::JobTemplateSpec;

use crate::api::policy::PodSecurityLevel;
use k8s_openapi::api::core::v1::{
    AppArmorProfile, Capabilities, Container, PodSecurityContext, PodSpec, SELinuxOptions,
    SeccompProfile, SecurityContext, WindowsSecurityContextOptions,
};

/// The capabilities the baseline level lets a container add.
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The sysctls the baseline level allows.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.ipv4.tcp_slow_start_after_idle",
    "net.ipv4.tcp_notsent_lowat",
];

/// The SELinux types the baseline level allows (besides none).
const SELINUX_TYPES: &[&str] = &[
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// The ServiceAccount Jobs run as when no policy names others.
pub const JOB_SERVICE_ACCOUNT: &str = "default";

/// The volume types the restricted level allows.
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// What a Job's pod may ask for: a Pod Security level and the ServiceAccounts it may run as.
#[derive(Clone, Copy, Debug)]
pub struct JobLimits<'a> {
    /// The Pod Security Standards level the pod must meet.
    pub level: PodSecurityLevel,
    /// The ServiceAccounts the pod may name (an empty name means `default`).
    pub service_accounts: &'a [String],
}

/// One thing a pod template asks for that it may not: the field (relative to the pod spec,
/// e.g. `containers[0].securityContext.privileged`) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The field, relative to the pod spec.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The violations of a Job template's pod (spec and annotations), in field order; empty when
/// relman may run it. Fields are relative to the pod spec, or start with `metadata.`.
pub fn template_violations(template: &JobTemplateSpec, limits: JobLimits<'_>) -> Vec<Violation> {
    let Some(pod) = template.spec.as_ref().map(|s| &s.template) else {
        return Vec::new();
    };
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    violations(
        spec,
        pod.metadata.as_ref().and_then(|m| m.annotations.as_ref()),
        limits,
    )
}

/// The violations of `pod` (with the pod template's `annotations`), in field order; empty when
/// relman may run it.
pub fn violations(
    pod: &PodSpec,
    annotations: Option<&std::collections::BTreeMap<String, String>>,
    limits: JobLimits<'_>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut bad = |field: String, message: &str| {
        out.push(Violation {
            field,
            message: message.to_owned(),
        })
    };
    service_account(pod, limits.service_accounts, &mut bad);
    if limits.level >= PodSecurityLevel::Baseline {
        baseline(pod, annotations, &mut bad);
    }
    if limits.level >= PodSecurityLevel::Restricted {
        restricted(pod, &mut bad);
    }
    out
}

/// The pod's ServiceAccount must be one of `allowed`. Both fields count: the API server uses
/// the deprecated `serviceAccount` when `serviceAccountName` is empty; with neither the pod
/// runs as `default`.
fn service_account(pod: &PodSpec, allowed: &[String], bad: &mut impl FnMut(String, &str)) {
    fn named(value: &Option<String>) -> Option<&str> {
        value.as_deref().filter(|a| !a.is_empty())
    }
    let fields = [
        (named(&pod.service_account_name), "serviceAccountName"),
        (named(&pod.service_account), "serviceAccount"),
    ];
    let none_named = fields.iter().all(|(value, _)| value.is_none());
    for (value, field) in fields {
        let account = match value {
            Some(account) => account,
            None if none_named && field == "serviceAccountName" => JOB_SERVICE_ACCOUNT,
            None => continue,
        };
        if !allowed.iter().any(|a| a == account) {
            let names = if allowed.is_empty() {
                "none".to_owned()
            } else {
                allowed.join(", ")
            };
            bad(
                field.into(),
                &format!(
                    "Jobs here may run as the ServiceAccount(s) {names}, not {account}; name one of those"
                ),
            );
        }
    }
}

fn baseline(
    pod: &PodSpec,
    annotations: Option<&std::collections::BTreeMap<String, String>>,
    bad: &mut impl FnMut(String, &str),
) {
    for (set, field) in [
        (pod.host_network, "hostNetwork"),
        (pod.host_pid, "hostPID"),
        (pod.host_ipc, "hostIPC"),
    ] {
        if set == Some(true) {
            bad(field.into(), "host namespaces are not allowed; remove it");
        }
    }
    for (index, volume) in pod.volumes.iter().flatten().enumerate() {
        if volume.host_path.is_some() {
            bad(
                format!("volumes[{index}].hostPath"),
                "hostPath volumes are not allowed; use an emptyDir, a ConfigMap or a Secret",
            );
        }
    }
    if let Some(context) = &pod.security_context {
        pod_context(context, bad);
    }
    for (annotation, value) in annotations.into_iter().flatten() {
        if annotation.starts_with("container.apparmor.security.beta.kubernetes.io/")
            && !(value.is_empty() || value == "runtime/default" || value.starts_with("localhost/"))
        {
            bad(
                format!("metadata.annotations[{annotation}]"),
                "AppArmor must be runtime/default or a localhost/ profile",
            );
        }
    }
    // An unmasked /proc is allowed only inside a user namespace (`hostUsers: false`).
    let user_namespace = pod.host_users == Some(false);
    let lists: [(&str, Vec<&Container>); 2] = [
        (
            "initContainers",
            pod.init_containers.iter().flatten().collect(),
        ),
        ("containers", pod.containers.iter().collect()),
    ];
    for (list, containers) in lists {
        for (index, container) in containers.into_iter().enumerate() {
            let at = format!("{list}[{index}]");
            for (port_index, port) in container.ports.iter().flatten().enumerate() {
                if port.host_port.is_some_and(|p| p != 0) {
                    bad(
                        format!("{at}.ports[{port_index}].hostPort"),
                        "host ports are not allowed; remove it",
                    );
                }
            }
            if let Some(context) = &container.security_context {
                container_context(&at, context, user_namespace, bad);
            }
            handler_hosts(&at, container, bad);
        }
    }
    for (index, container) in pod.ephemeral_containers.iter().flatten().enumerate() {
        if let Some(context) = &container.security_context {
            let at = format!("ephemeralContainers[{index}]");
            container_context(&at, context, user_namespace, bad);
        }
    }
}

/// The restricted level's rules beyond baseline. A Windows pod (`os.name: windows`) is exempt
/// from the Linux-only ones (privilege escalation, seccomp, capabilities), as Pod Security
/// exempts it.
fn restricted(pod: &PodSpec, bad: &mut impl FnMut(String, &str)) {
    for (index, volume) in pod.volumes.iter().flatten().enumerate() {
        let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(volume) else {
            continue;
        };
        for source in fields.keys().filter(|k| *k != "name") {
            if !RESTRICTED_VOLUMES.contains(&source.as_str()) && source != "hostPath" {
                bad(
                    format!("volumes[{index}].{source}"),
                    &format!(
                        "{source} volumes are not allowed at the restricted level; use {}",
                        RESTRICTED_VOLUMES.join(", ")
                    ),
                );
            }
        }
    }
    let windows = pod.os.as_ref().is_some_and(|os| os.name == "windows");
    let context = pod.security_context.as_ref();
    let pod_non_root = context.and_then(|c| c.run_as_non_root);
    if pod_non_root == Some(false) {
        bad(
            "securityContext.runAsNonRoot".into(),
            "must be true at the restricted level",
        );
    }
    if context.and_then(|c| c.run_as_user) == Some(0) {
        bad(
            "securityContext.runAsUser".into(),
            "user 0 (root) is not allowed at the restricted level",
        );
    }
    let pod_seccomp = context
        .and_then(|c| c.seccomp_profile.as_ref())
        .map(|p| p.type_.as_str());
    // Unconfined is baseline's finding already.
    if !windows
        && pod_seccomp.is_some_and(|t| !matches!(t, "RuntimeDefault" | "Localhost" | "Unconfined"))
    {
        bad(
            "securityContext.seccompProfile.type".into(),
            "must be RuntimeDefault or Localhost at the restricted level",
        );
    }
    let lists: [(&str, Vec<Option<&SecurityContext>>); 3] = [
        (
            "initContainers",
            pod.init_containers
                .iter()
                .flatten()
                .map(|c| c.security_context.as_ref())
                .collect(),
        ),
        (
            "containers",
            pod.containers
                .iter()
                .map(|c| c.security_context.as_ref())
                .collect(),
        ),
        (
            "ephemeralContainers",
            pod.ephemeral_containers
                .iter()
                .flatten()
                .map(|c| c.security_context.as_ref())
                .collect(),
        ),
    ];
    for (list, contexts) in lists {
        for (index, context) in contexts.into_iter().enumerate() {
            let at = format!("{list}[{index}].securityContext");
            let non_root = context.and_then(|c| c.run_as_non_root);
            if non_root == Some(false) || (non_root.is_none() && pod_non_root != Some(true)) {
                bad(
                    format!("{at}.runAsNonRoot"),
                    "must be true (here or in the pod's securityContext) at the restricted level",
                );
            }
            if context.and_then(|c| c.run_as_user) == Some(0) {
                bad(
                    format!("{at}.runAsUser"),
                    "user 0 (root) is not allowed at the restricted level",
                );
            }
            if windows {
                continue;
            }
            if context.and_then(|c| c.allow_privilege_escalation) != Some(false) {
                bad(
                    format!("{at}.allowPrivilegeEscalation"),
                    "must be false at the restricted level",
                );
            }
            match context
                .and_then(|c| c.seccomp_profile.as_ref())
                .map(|p| p.type_.as_str())
            {
                Some("RuntimeDefault" | "Localhost") | Some("Unconfined") => {}
                Some(_) => bad(
                    format!("{at}.seccompProfile.type"),
                    "must be RuntimeDefault or Localhost at the restricted level",
                ),
                None if pod_seccomp.is_none() => bad(
                    format!("{at}.seccompProfile.type"),
                    "must be RuntimeDefault or Localhost (here or in the pod's securityContext) at the restricted level",
                ),
                None => {}
            }
            let capabilities = context.and_then(|c| c.capabilities.as_ref());
            if !capabilities
                .and_then(|c| c.drop.as_ref())
                .is_some_and(|d| d.iter().any(|c| c == "ALL"))
            {
                bad(
                    format!("{at}.capabilities.drop"),
                    "must include ALL at the restricted level",
                );
            }
            for (cap_index, cap) in capabilities
                .and_then(|c| c.add.as_ref())
                .into_iter()
                .flatten()
                .enumerate()
            {
                if cap != "NET_BIND_SERVICE" && BASELINE_CAPABILITIES.contains(&cap.as_str()) {
                    bad(
                        format!("{at}.capabilities.add[{cap_index}]"),
                        &format!(
                            "{cap} may not be added at the restricted level (only NET_BIND_SERVICE)"
                        ),
                    );
                }
            }
        }
    }
}

fn pod_context(context: &PodSecurityContext, bad: &mut impl FnMut(String, &str)) {
    let at = "securityContext";
    host_process(at, context.windows_options.as_ref(), bad);
    seccomp(at, context.seccomp_profile.as_ref(), bad);
    selinux(at, context.se_linux_options.as_ref(), bad);
    app_armor(at, context.app_armor_profile.as_ref(), bad);
    for (index, sysctl) in context.sysctls.iter().flatten().enumerate() {
        if !SAFE_SYSCTLS.contains(&sysctl.name.as_str()) {
            bad(
                format!("{at}.sysctls[{index}].name"),
                &format!("{} is not a safe sysctl", sysctl.name),
            );
        }
    }
}

fn container_context(
    at: &str,
    context: &SecurityContext,
    user_namespace: bool,
    bad: &mut impl FnMut(String, &str),
) {
    let at = format!("{at}.securityContext");
    if context.privileged == Some(true) {
        bad(
            format!("{at}.privileged"),
            "privileged containers are not allowed; remove it",
        );
    }
    host_process(&at, context.windows_options.as_ref(), bad);
    capabilities(&at, context.capabilities.as_ref(), bad);
    seccomp(&at, context.seccomp_profile.as_ref(), bad);
    selinux(&at, context.se_linux_options.as_ref(), bad);
    app_armor(&at, context.app_armor_profile.as_ref(), bad);
    if !user_namespace
        && context
            .proc_mount
            .as_deref()
            .is_some_and(|m| m != "Default")
    {
        bad(
            format!("{at}.procMount"),
            "only the Default /proc mount is allowed (Unmasked needs hostUsers: false)",
        );
    }
}

/// Probes and lifecycle hooks may not reach another host (`httpGet.host`, `tcpSocket.host`).
fn handler_hosts(at: &str, container: &Container, bad: &mut impl FnMut(String, &str)) {
    let probes = [
        ("livenessProbe", container.liveness_probe.as_ref()),
        ("readinessProbe", container.readiness_probe.as_ref()),
        ("startupProbe", container.startup_probe.as_ref()),
    ];
    let mut hosts: Vec<(String, Option<&String>)> = Vec::new();
    for (name, probe) in probes {
        if let Some(probe) = probe {
            hosts.push((
                format!("{name}.httpGet.host"),
                probe.http_get.as_ref().and_then(|h| h.host.as_ref()),
            ));
            hosts.push((
                format!("{name}.tcpSocket.host"),
                probe.tcp_socket.as_ref().and_then(|t| t.host.as_ref()),
            ));
        }
    }
    let lifecycle = container.lifecycle.as_ref();
    for (name, handler) in [
        (
            "lifecycle.postStart",
            lifecycle.and_then(|l| l.post_start.as_ref()),
        ),
        (
            "lifecycle.preStop",
            lifecycle.and_then(|l| l.pre_stop.as_ref()),
        ),
    ] {
        if let Some(handler) = handler {
            hosts.push((
                format!("{name}.httpGet.host"),
                handler.http_get.as_ref().and_then(|h| h.host.as_ref()),
            ));
            hosts.push((
                format!("{name}.tcpSocket.host"),
                handler.tcp_socket.as_ref().and_then(|t| t.host.as_ref()),
            ));
        }
    }
    for (field, host) in hosts {
        if host.is_some_and(|h| !h.is_empty()) {
            bad(
                format!("{at}.{field}"),
                "probes and hooks may not name a host; remove it",
            );
        }
    }
}

fn host_process(
    at: &str,
    options: Option<&WindowsSecurityContextOptions>,
    bad: &mut impl FnMut(String, &str),
) {
    if options.and_then(|w| w.host_process) == Some(true) {
        bad(
            format!("{at}.windowsOptions.hostProcess"),
            "Windows host processes are not allowed",
        );
    }
}

fn app_armor(at: &str, profile: Option<&AppArmorProfile>, bad: &mut impl FnMut(String, &str)) {
    if profile.is_some_and(|p| p.type_ == "Unconfined") {
        bad(
            format!("{at}.appArmorProfile.type"),
            "AppArmor may not be Unconfined",
        );
    }
}

fn capabilities(at: &str, caps: Option<&Capabilities>, bad: &mut impl FnMut(String, &str)) {
    for (index, cap) in caps
        .and_then(|c| c.add.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !BASELINE_CAPABILITIES.contains(&cap.as_str()) {
            bad(
                format!("{at}.capabilities.add[{index}]"),
                &format!("{cap} may not be added"),
            );
        }
    }
}

fn seccomp(at: &str, profile: Option<&SeccompProfile>, bad: &mut impl FnMut(String, &str)) {
    if profile.is_some_and(|p| p.type_ == "Unconfined") {
        bad(
            format!("{at}.seccompProfile.type"),
            "seccomp may not be Unconfined; use RuntimeDefault",
        );
    }
}

fn selinux(at: &str, options: Option<&SELinuxOptions>, bad: &mut impl FnMut(String, &str)) {
    let Some(options) = options else {
        return;
    };
    if let Some(type_) = options.type_.as_deref().filter(|t| !t.is_empty())
        && !SELINUX_TYPES.contains(&type_)
    {
        bad(
            format!("{at}.seLinuxOptions.type"),
            &format!("{type_} is not an allowed SELinux type"),
        );
    }
    for (value, field) in [(&options.user, "user"), (&options.role, "role")] {
        if value.as_deref().is_some_and(|v| !v.is_empty()) {
            bad(
                format!("{at}.seLinuxOptions.{field}"),
                "custom SELinux users and roles are not allowed",
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(spec: serde_json::Value) -> PodSpec {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "smoke", "image": "smoke:1"}]);
        }
        serde_json::from_value(spec).unwrap()
    }

    fn default_account() -> Vec<String> {
        vec![JOB_SERVICE_ACCOUNT.to_owned()]
    }

    fn fields_at(level: PodSecurityLevel, spec: serde_json::Value) -> Vec<String> {
        let accounts = default_account();
        let limits = JobLimits {
            level,
            service_accounts: &accounts,
        };
        violations(&pod(spec), None, limits)
            .into_iter()
            .map(|v| v.field)
            .collect()
    }

    fn fields(spec: serde_json::Value) -> Vec<String> {
        fields_at(PodSecurityLevel::Baseline, spec)
    }

    /// A pod that meets the restricted level.
    fn hardened() -> serde_json::Value {
        json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "s", "image": "s", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]
        })
    }

    #[test]
    fn the_restricted_level_adds_the_hardening_rules() {
        let restricted = |spec| fields_at(PodSecurityLevel::Restricted, spec);
        assert!(restricted(hardened()).is_empty());
        assert_eq!(
            restricted(json!({})),
            vec![
                "containers[0].securityContext.runAsNonRoot",
                "containers[0].securityContext.allowPrivilegeEscalation",
                "containers[0].securityContext.seccompProfile.type",
                "containers[0].securityContext.capabilities.drop",
            ]
        );
        let mut root = hardened();
        root["securityContext"]["runAsUser"] = json!(0);
        assert_eq!(restricted(root), vec!["securityContext.runAsUser"]);
        let mut chown = hardened();
        chown["containers"][0]["securityContext"]["capabilities"]["add"] = json!(["CHOWN"]);
        assert_eq!(
            restricted(chown),
            vec!["containers[0].securityContext.capabilities.add[0]"]
        );
        let mut bind = hardened();
        bind["containers"][0]["securityContext"]["capabilities"]["add"] =
            json!(["NET_BIND_SERVICE"]);
        assert!(restricted(bind).is_empty());
        let mut nfs = hardened();
        nfs["volumes"] = json!([{"name": "n", "nfs": {"server": "s", "path": "/"}}]);
        assert_eq!(restricted(nfs), vec!["volumes[0].nfs"]);
        // The same pod is fine at baseline, and anything goes at privileged but the account.
        assert!(fields(json!({})).is_empty());
        assert_eq!(
            fields_at(
                PodSecurityLevel::Privileged,
                json!({"hostPID": true, "serviceAccountName": "admin"})
            ),
            vec!["serviceAccountName"]
        );
    }

    #[test]
    fn a_policy_may_name_other_service_accounts() {
        let accounts = vec!["backup".to_owned()];
        let limits = JobLimits {
            level: PodSecurityLevel::Baseline,
            service_accounts: &accounts,
        };
        let found = |spec| violations(&pod(spec), None, limits);
        assert!(found(json!({"serviceAccountName": "backup"})).is_empty());
        // Without a name the pod runs as default, which this policy does not allow.
        assert_eq!(found(json!({})).len(), 1);
        assert_eq!(found(json!({"serviceAccount": "admin"})).len(), 1);
    }

    #[test]
    fn an_ordinary_smoke_test_is_allowed() {
        assert!(fields(json!({"restartPolicy": "Never"})).is_empty());
        assert!(
            fields(json!({
                "serviceAccountName": "default",
                "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "s", "image": "s", "securityContext": {
                    "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
                "volumes": [{"name": "tmp", "emptyDir": {}}]
            }))
            .is_empty()
        );
    }

    #[test]
    fn the_attack_of_the_issue_is_refused_field_by_field() {
        let found = fields(json!({
            "hostPID": true,
            "serviceAccountName": "relman",
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
            "containers": [{"name": "s", "image": "s", "securityContext": {"privileged": true}}]
        }));
        assert_eq!(
            found,
            vec![
                "serviceAccountName",
                "hostPID",
                "volumes[0].hostPath",
                "containers[0].securityContext.privileged"
            ]
        );
    }

    #[test]
    fn every_baseline_rule_names_its_field() {
        let cases = [
            (json!({"hostNetwork": true}), "hostNetwork"),
            (json!({"hostIPC": true}), "hostIPC"),
            (json!({"serviceAccount": "admin"}), "serviceAccount"),
            (
                json!({"serviceAccountName": "", "serviceAccount": "admin"}),
                "serviceAccount",
            ),
            (
                json!({"containers": [{"name": "s", "image": "s",
                    "readinessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}}}]}),
                "containers[0].readinessProbe.httpGet.host",
            ),
            (
                json!({"containers": [{"name": "s", "image": "s",
                    "lifecycle": {"preStop": {"tcpSocket": {"host": "metadata", "port": 80}}}}]}),
                "containers[0].lifecycle.preStop.tcpSocket.host",
            ),
            (
                json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
                "securityContext.seccompProfile.type",
            ),
            (
                json!({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}}),
                "securityContext.sysctls[0].name",
            ),
            (
                json!({"securityContext": {"seLinuxOptions": {"user": "root"}}}),
                "securityContext.seLinuxOptions.user",
            ),
            (
                json!({"securityContext": {"windowsOptions": {"hostProcess": true}}}),
                "securityContext.windowsOptions.hostProcess",
            ),
            (
                json!({"initContainers": [{"name": "i", "image": "i", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}],
                       "containers": [{"name": "s", "image": "s"}]}),
                "initContainers[0].securityContext.capabilities.add[0]",
            ),
            (
                json!({"containers": [{"name": "s", "image": "s", "ports": [{"containerPort": 80, "hostPort": 80}]}]}),
                "containers[0].ports[0].hostPort",
            ),
            (
                json!({"containers": [{"name": "s", "image": "s", "securityContext": {"procMount": "Unmasked"}}]}),
                "containers[0].securityContext.procMount",
            ),
            (
                json!({"containers": [{"name": "s", "image": "s", "securityContext": {"seLinuxOptions": {"type": "spc_t"}}}]}),
                "containers[0].securityContext.seLinuxOptions.type",
            ),
            (
                json!({"containers": [{"name": "s", "image": "s", "securityContext": {"appArmorProfile": {"type": "Unconfined"}}}]}),
                "containers[0].securityContext.appArmorProfile.type",
            ),
        ];
        for (spec, field) in cases {
            assert_eq!(fields(spec.clone()), vec![field], "{spec}");
        }
        // Inside a user namespace an unmasked /proc is allowed, as Pod Security allows it.
        assert!(
            fields(
                json!({"hostUsers": false, "containers": [{"name": "s", "image": "s",
                "securityContext": {"procMount": "Unmasked"}}]})
            )
            .is_empty()
        );
        let annotations = [(
            "container.apparmor.security.beta.kubernetes.io/s".to_owned(),
            "unconfined".to_owned(),
        )]
        .into();
        let accounts = default_account();
        let limits = JobLimits {
            level: PodSecurityLevel::Baseline,
            service_accounts: &accounts,
        };
        assert_eq!(
            violations(&pod(json!({})), Some(&annotations), limits).len(),
            1
        );
    }
}
