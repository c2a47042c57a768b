{{/* The chart name, overridable. */}}
{{- define "relman.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every object's name: <release>-relman, or <release> when it already says relman. */}}
{{- define "relman.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "relman.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The labels on every object. */}}
{{- define "relman.labels" -}}
helm.sh/chart: {{ include "relman.chart" . }}
{{ include "relman.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: relman
{{- end }}

{{/* The labels the Deployment, Service and PodDisruptionBudget select pods by. */}}
{{- define "relman.selectorLabels" -}}
app.kubernetes.io/name: {{ include "relman.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount relman runs as. */}}
{{- define "relman.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "relman.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The controller image reference. */}}
{{- define "relman.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Where relman may act, checked before anything renders: clusterWide, or a list of
managedNamespaces, never neither (an upgrade from the cluster-wide default must not silently
lose access) and never the removed watchNamespace / rbac.stageNamespaces (whose stage
namespaces had fewer rules than managedNamespaces grant: mapping them would silently widen
access).
*/}}
{{- define "relman.checkScope" -}}
{{- if .Values.watchNamespace }}
{{- fail (printf "watchNamespace was replaced by managedNamespaces: list every namespace where Releases live and stages deploy, e.g. --set 'managedNamespaces={%s}' (each gets the full Role, see docs/install.md), and unset watchNamespace" (join "," (prepend (default list .Values.rbac.stageNamespaces) .Values.watchNamespace))) }}
{{- end }}
{{- if .Values.rbac.stageNamespaces }}
{{- fail "rbac.stageNamespaces was replaced by managedNamespaces: list the stage namespaces there, with the namespaces of the Releases, and unset rbac.stageNamespaces (see docs/install.md)" }}
{{- end }}
{{- if and .Values.clusterWide .Values.managedNamespaces }}
{{- fail "managedNamespaces is set together with clusterWide=true: clusterWide grants every namespace, so either unset managedNamespaces or set clusterWide=false to confine relman to them" }}
{{- end }}
{{- if and (not .Values.clusterWide) (not .Values.managedNamespaces) }}
{{- fail "relman needs to know where it may act: set managedNamespaces to the namespaces where Releases live and stages deploy (e.g. --set 'managedNamespaces={shop,shop-staging,shop-prod}'), or clusterWide=true for every namespace (the chart's behaviour before 0.2.0); see docs/install.md" }}
{{- end }}
{{- end }}

{{/* The managed namespaces, without duplicates, in order, as a JSON list. */}}
{{- define "relman.managedNamespaces" -}}
{{- if .Values.clusterWide }}[]{{ else }}{{ toJson (sortAlpha (uniq .Values.managedNamespaces)) }}{{ end }}
{{- end }}

{{/*
RBAC rules, one named template per scope. Each rule is exactly what relman's code calls; the
reason is beside it and in docs/install.md. tests/chart/ runs a controller with only these.
*/}}

{{/* Releases and what comes with them: where relman reconciles Releases. */}}
{{- define "relman.rules.releases" -}}
# Watch Releases (list + watch feed the release and calendar controllers' caches); get the
# Release that drives a Deployment another Release wants, to see whether it has finished.
- apiGroups: [relman.io]
  resources: [releases]
  verbs: [get, list, watch]
# Write the status (server-side apply on the status subresource). relman never changes a spec.
- apiGroups: [relman.io]
  resources: [releases/status]
  verbs: [patch]
# Read sign-offs; people create them, relman never does.
- apiGroups: [relman.io]
  resources: [releaseapprovals]
  verbs: [list, watch]
# Record Events on Releases (create, then patch to count repeats).
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# Publish the release notes: the ConfigMap <release>-notes beside the Release, owned by it,
# written with server-side apply only when its content changed (get). The first apply creates
# it, which needs create as well as patch.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create, patch]
# Notifications: read the webhook URL from the Secret a Release's spec.notify names (get only:
# no list or watch, so relman never sees a Secret it is not pointed at).
{{- if .Values.rbac.notificationSecretNames }}
# Only the Secrets named in rbac.notificationSecretNames.
{{- end }}
- apiGroups: [""]
  resources: [secrets]
  {{- with .Values.rbac.notificationSecretNames }}
  resourceNames: {{ toJson (uniq .) }}
  {{- end }}
  verbs: [get]
{{- end }}

{{/* The objects a Release drives: in every namespace a stage deploys to. */}}
{{- define "relman.rules.workloads" -}}
# Roll out images, revert to the known-good template, mark the known-good revision (patch);
# read rollout progress (get, and list + watch for the Deployments it drives).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, patch]
# Run backup and smoke-test Jobs (create) and follow them (list + watch).
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, watch, create]
# Tell why a rollout or a Job does not progress (image pull errors, crash loops, unschedulable).
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
# The namespace's ReleasePolicy (what its owners allow a Release to do there): read only.
- apiGroups: [relman.io]
  resources: [releasepolicies]
  verbs: [get, list, watch]
{{- end }}

{{/* Cluster-scoped objects, and the kinds condition gates read. */}}
{{- define "relman.rules.cluster" -}}
# Deployment windows and freezes: ReleaseCalendars are cluster-scoped. Read them for the
# window gate and the calendar controller (get, list, watch) ...
- apiGroups: [relman.io]
  resources: [releasecalendars]
  verbs: [get, list, watch]
# ... which writes their status (open now?, next change, releases, conflicts). Never a spec.
- apiGroups: [relman.io]
  resources: [releasecalendars/status]
  verbs: [patch]
# Sign-offs count only where the approval identity policy is bound with Deny: watch the
# ValidatingAdmissionPolicies and their bindings (cluster-scoped) to know where that is.
- apiGroups: [admissionregistration.k8s.io]
  resources: [validatingadmissionpolicies, validatingadmissionpolicybindings]
  verbs: [list, watch]
{{- with .Values.rbac.conditionGateRules }}
# Condition gates (rbac.conditionGateRules).
{{ toYaml . }}
{{- end }}
{{- end }}
