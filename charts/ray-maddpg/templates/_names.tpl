{{/* Names and labels. Every resource takes its name, namespace and labels from here. */}}

{{- define "ray-maddpg.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, plus the chart name unless the release name already contains it. */}}
{{- define "ray-maddpg.fullname" -}}
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

{{/* Name of a component's resource: "<fullname>-<component>", short enough for a Service name. */}}
{{- define "ray-maddpg.componentName" -}}
{{- printf "%s-%s" (include "ray-maddpg.fullname" .root | trunc 50 | trimSuffix "-") .component }}
{{- end }}

{{- define "ray-maddpg.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: only name, instance and component, because selectors cannot change after install. Call with (dict "root" $ "component" "head"). */}}
{{- define "ray-maddpg.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ray-maddpg.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Standard labels of every object. Call with (dict "root" $ "component" "head"). */}}
{{- define "ray-maddpg.labels" -}}
{{ include "ray-maddpg.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ include "ray-maddpg.chart" .root }}
{{- end }}

{{/* The labels the NetworkPolicy uses to recognise the release's own pods. */}}
{{- define "ray-maddpg.releaseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "ray-maddpg.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* An object's name, namespace and labels. Call with (dict "root" $ "component" "head"), plus "name" where it is not the component's name. */}}
{{- define "ray-maddpg.metadata" -}}
name: {{ .name | default (include "ray-maddpg.componentName" .) }}
namespace: {{ .root.Release.Namespace }}
labels:
  {{- include "ray-maddpg.labels" . | nindent 2 }}
{{- end }}

{{/* A workload's selector of its pods. Call with (dict "root" $ "component" "worker"). */}}
{{- define "ray-maddpg.selector" -}}
selector:
  matchLabels:
    {{- include "ray-maddpg.selectorLabels" . | nindent 4 }}
{{- end }}

{{/* A pod template's metadata: the labels, and annotations if any. Call with (dict "root" $ "component" "head" "annotations" map). */}}
{{- define "ray-maddpg.podMetadata" -}}
metadata:
  labels:
    {{- include "ray-maddpg.labels" . | nindent 4 }}
  {{- with .annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{- define "ray-maddpg.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ray-maddpg.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ray-maddpg.headServiceName" -}}
{{- include "ray-maddpg.componentName" (dict "root" . "component" "head") }}
{{- end }}

{{- define "ray-maddpg.rayAuthSecretName" -}}
{{- default (include "ray-maddpg.componentName" (dict "root" . "component" "ray-auth")) .Values.rayAuth.existingSecret }}
{{- end }}

{{- define "ray-maddpg.jupyterSecretName" -}}
{{- default (include "ray-maddpg.componentName" (dict "root" . "component" "jupyter")) .Values.jupyter.existingSecret }}
{{- end }}

{{- define "ray-maddpg.experimentConfigMapName" -}}
{{- default (include "ray-maddpg.componentName" (dict "root" . "component" "experiment")) .Values.experiment.existingConfigMap }}
{{- end }}

{{- define "ray-maddpg.experimentConfigMapKey" -}}
{{- if .Values.experiment.existingConfigMap }}{{ .Values.experiment.existingConfigMapKey }}{{ else }}experiment.yaml{{ end }}
{{- end }}

{{/* Each revision's own experiment Job (its pod template cannot change). */}}
{{- define "ray-maddpg.experimentJobName" -}}
{{- printf "%s-%d" (include "ray-maddpg.componentName" (dict "root" . "component" "experiment")) (int .Release.Revision) }}
{{- end }}

{{- define "ray-maddpg.resultsClaimName" -}}
{{- default (include "ray-maddpg.componentName" (dict "root" . "component" "results")) .Values.storage.pvc.existingClaim }}
{{- end }}

{{- define "ray-maddpg.waitForClusterConfigMapName" -}}
{{- include "ray-maddpg.componentName" (dict "root" . "component" "wait-for-cluster") }}
{{- end }}
