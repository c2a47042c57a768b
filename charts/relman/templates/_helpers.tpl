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
RBAC rules, one named template per scope. Each rule is exactly what relman's code calls; the
reason is beside it and in docs/install.md. tests/chart.rs runs a controller with only these.
*/}}

{{/* Releases and what comes with them: only in the namespaces whose Releases relman reconciles. */}}
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
- apiGroups: [""]
  resources: [secrets]
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
