//! What a Release's Job templates may ask of the cluster. relman creates the backup and
//! smoke-test Jobs with its own identity, so a template is held to the rules a namespace owner
//! would expect of a Release's author, who may not create pods at all: the Pod Security
//! Standards' **baseline** level (no host namespaces, host paths, host ports, privileged or
//! extra-capability containers, unconfined seccomp or AppArmor, custom SELinux users or roles,
//! unmasked /proc outside a user namespace, unsafe sysctls, Windows host processes, probes or
//! hooks that name another host) and the
//! namespace's `default` ServiceAccount. The rules are Kubernetes' own (`k8s.io/pod-security-admission`, policy
//! version latest); `tests/pod_security.rs` checks each case against the API server's Pod
//! Security admission. Pure: a template in, the violations out.

use k8s_openapi::api::batch::v1::JobTemplateSpec;
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

/// The ServiceAccount Jobs run as.
pub const JOB_SERVICE_ACCOUNT: &str = "default";

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
pub fn template_violations(template: &JobTemplateSpec) -> Vec<Violation> {
    let Some(pod) = template.spec.as_ref().map(|s| &s.template) else {
        return Vec::new();
    };
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    violations(
        spec,
        pod.metadata.as_ref().and_then(|m| m.annotations.as_ref()),
    )
}

/// The violations of `pod` (with the pod template's `annotations`), in field order; empty when
/// relman may run it.
pub fn violations(
    pod: &PodSpec,
    annotations: Option<&std::collections::BTreeMap<String, String>>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut bad = |field: String, message: &str| {
        out.push(Violation {
            field,
            message: message.to_owned(),
        })
    };
    for (set, field) in [
        (pod.host_network, "hostNetwork"),
        (pod.host_pid, "hostPID"),
        (pod.host_ipc, "hostIPC"),
    ] {
        if set == Some(true) {
            bad(field.into(), "host namespaces are not allowed; remove it");
        }
    }
    // Both fields: the API server uses the deprecated serviceAccount when serviceAccountName
    // is empty.
    for (value, field) in [
        (&pod.service_account_name, "serviceAccountName"),
        (&pod.service_account, "serviceAccount"),
    ] {
        if let Some(account) = value
            .as_deref()
            .filter(|a| !a.is_empty() && *a != JOB_SERVICE_ACCOUNT)
        {
            bad(
                field.into(),
                &format!(
                    "Jobs run as the namespace's {JOB_SERVICE_ACCOUNT} ServiceAccount, not {account}; remove it"
                ),
            );
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
        pod_context(context, &mut bad);
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
                container_context(&at, context, user_namespace, &mut bad);
            }
            handler_hosts(&at, container, &mut bad);
        }
    }
    for (index, container) in pod.ephemeral_containers.iter().flatten().enumerate() {
        if let Some(context) = &container.security_context {
            let at = format!("ephemeralContainers[{index}]");
            container_context(&at, context, user_namespace, &mut bad);
        }
    }
    out
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

    fn fields(spec: serde_json::Value) -> Vec<String> {
        violations(&pod(spec), None)
            .into_iter()
            .map(|v| v.field)
            .collect()
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
                "hostPID",
                "serviceAccountName",
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
        assert_eq!(violations(&pod(json!({})), Some(&annotations)).len(), 1);
    }
}
