{{/* The app.kubernetes.io/name label: `shop`, the service name in the SLO spec. */}}
{{- define "ouro-shop.name" -}}
{{- default "shop" .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object names: the release name when it already contains the app name (`shop`). */}}
{{- define "ouro-shop.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "ouro-shop.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ouro-shop.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ouro-shop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ouro-shop.labels" -}}
{{ include "ouro-shop.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: ouro-obs
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels for objects the Prometheus Operator selects: chart labels, `release`, extra labels. */}}
{{- define "ouro-shop.monitoringLabels" -}}
{{ include "ouro-shop.labels" . }}
{{- with .Values.monitoring.release }}
release: {{ . }}
{{- end }}
{{- with .Values.monitoring.labels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "ouro-shop.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
One object written by `ouro-obs generate` into deploy/generated/, which files/generated
links to. Fails the render with the fix when the file is missing, instead of emitting an
empty object.
*/}}
{{- define "ouro-shop.generated" -}}
{{- $path := printf "files/generated/%s" .file }}
{{- $text := .context.Files.Get $path }}
{{- if not $text }}
{{- fail (printf "%s is missing or empty: run `ouro-obs generate examples/shop/slo.yaml -o .` in the repository, and set `environment` (or `monitoring.environment`) to one of the spec's environments" $path) }}
{{- end }}
{{- $text }}
{{- end }}

{{/*
The SLO spec's environment whose generated rules, dashboards and routing this release
installs (deploy/generated/<environment>/): `monitoring.environment`, else `environment`,
else dev (the chart's defaults are a development install).
*/}}
{{- define "ouro-shop.sloEnvironment" -}}
{{- .Values.monitoring.environment | default .Values.environment | default "dev" }}
{{- end }}

{{/* A NetworkPolicy peer: pods with `podLabels` (any pod when empty) in `namespace`. */}}
{{- define "ouro-shop.peer" -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .namespace }}
  {{- with .podLabels }}
  podSelector:
    matchLabels:
      {{- toYaml . | nindent 6 }}
  {{- end }}
{{- end }}
