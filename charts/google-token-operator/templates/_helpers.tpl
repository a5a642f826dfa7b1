{{/*
Labels on every object: the kustomize base's part-of label, and Helm's own (which
tests/cluster/test_chart.py strips before comparing with the kustomize output).
*/}}
{{- define "google-token-operator.labels" -}}
app.kubernetes.io/part-of: google-token-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/*
The name of the objects only the chart refers to (the Deployment, the operator's
ServiceAccount and RBAC, the PodDisruptionBudget, the operator's NetworkPolicy, the Prometheus
objects), built as most charts build it: fullnameOverride, else the release name, suffixed with
nameOverride (or the chart name) unless it already holds it. Release google-token-operator:
google-token-operator. The names the operator and its callback find each other by (the Service
google-token-operator, the google-token-operator-callback objects, the Lease) and the pods'
labels never change.
*/}}
{{- define "google-token-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := .Values.nameOverride | default .Chart.Name }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The operator's ServiceAccount: the chart's, or one the user manages (create: false). */}}
{{- define "google-token-operator.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "google-token-operator.fullname" .) }}
{{- end }}

{{/* The operator's pods; also the Deployment's selector, which must never change. */}}
{{- define "google-token-operator.operatorSelector" -}}
app.kubernetes.io/name: google-token-operator
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator's image, which the callback pods run too. */}}
{{- define "google-token-operator.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
What the operator does in the namespaces it serves: its custom resources (watched;
GoogleClients patched for kopf's finalizer and read by the consent API; status patched; never
created or deleted) and Secrets (credentials read; its own private and consumer Secrets
created, patched in place and deleted, each checked against its owner first). Granted
cluster-wide, or per namespace in the namespaced mode.
*/}}
{{- define "google-token-operator.applicationRules" -}}
- apiGroups: [google-token-operator.dev]
  resources: [googleclients]
  verbs: [get, list, watch, patch]
- apiGroups: [google-token-operator.dev]
  resources: [branches]
  # get: a Branch whose status changed under a pass is read again (a status conflict).
  verbs: [get, list, watch]
- apiGroups: [google-token-operator.dev]
  resources: [googleclients/status, branches/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch, delete]
{{- end }}

{{/* kopf posts Events about GoogleClients and Branches; it never patches or deletes them. */}}
{{- define "google-token-operator.eventRules" -}}
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}
