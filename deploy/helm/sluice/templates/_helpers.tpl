{{/* Chart name, overridable. */}}
{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, prefixed by the chart name unless it contains it. */}}
{{- define "sluice.fullname" -}}
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

{{- define "sluice.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable across upgrades (a Deployment's selector is immutable). */}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sluice.labels" -}}
helm.sh/chart: {{ include "sluice.chart" . }}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: {{ .Values.mode }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sluice.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Fails the render early on a mode the templates do not know. */}}
{{- define "sluice.mode" -}}
{{- if not (has .Values.mode (list "gateway" "node-local")) }}
{{- fail (printf "mode must be gateway or node-local, not %q" .Values.mode) }}
{{- end }}
{{- .Values.mode }}
{{- end }}

{{- define "sluice.socketPath" -}}
{{- printf "%s/%s" (trimSuffix "/" .Values.nodeLocal.hostDir) .Values.nodeLocal.socketName }}
{{- end }}

{{/*
The sluice config. Written out here (not toYaml'd) so the ConfigMap reads like the
examples; extraConfig adds the keys the chart leaves to the user.
*/}}
{{- define "sluice.config" -}}
{{- $mode := include "sluice.mode" . -}}
{{- $own := list "log" "admin" "config" "shutdown" "listeners" "sources" }}
{{- range $k, $_ := .Values.extraConfig }}
{{- if has $k $own }}
{{- fail (printf "extraConfig.%s: the chart writes %q itself; use the chart's values" $k $k) }}
{{- end }}
{{- end -}}
log:
  level: {{ .Values.config.logLevel | quote }}
  format: {{ .Values.config.logFormat }}
  access_log: {{ .Values.config.accessLog }}
# All interfaces of the pod's own network namespace: the kubelet probes the pod IP,
# which a loopback bind would never answer. Nothing outside the pod network sees it.
admin:
  bind: "0.0.0.0:{{ .Values.admin.port }}"
# The ConfigMap is mounted as a directory (not subPath), so edits reach the file and
# reload routes and backends live.
config:
  watch: true
shutdown:
  drain_timeout: {{ .Values.config.drainTimeout }}
listeners:
{{- if eq $mode "gateway" }}
  - name: http
    bind: "0.0.0.0:{{ .Values.gateway.port }}"
{{- if .Values.gateway.https.enabled }}
  - name: https
    bind: "0.0.0.0:{{ .Values.gateway.https.port }}"
    tls:
      certificates: []
{{- end }}
{{- else }}
  - name: egress
    bind: "unix:{{ include "sluice.socketPath" . }}"
    mode: {{ .Values.nodeLocal.socketMode | quote }}
{{- end }}
sources:
  kubernetes:
    namespaces: {{ toJson .Values.watchNamespaces }}
    ingress_class: {{ .Values.ingressClass.name }}
    secrets_dir: /run/sluice/kubernetes
    {{- if and (eq $mode "gateway") .Values.gateway.https.enabled }}
    tls_listener: https
    {{- end }}
    {{- with .Values.statusAddress }}
    status_address: {{ . | quote }}
    {{- end }}
{{- with .Values.extraConfig }}
{{ toYaml . }}
{{- end }}
{{- end }}
