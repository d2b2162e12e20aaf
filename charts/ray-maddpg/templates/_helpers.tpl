{{/* Names, labels and shared snippets. Every resource takes its name and labels from here. */}}

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

{{- define "ray-maddpg.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
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

{{- define "ray-maddpg.resultsClaimName" -}}
{{- default (include "ray-maddpg.componentName" (dict "root" . "component" "results")) .Values.storage.pvc.existingClaim }}
{{- end }}

{{/* Where the training run writes: the S3 URI, or the mounted results volume. */}}
{{- define "ray-maddpg.resultsDir" -}}
{{- if eq .Values.storage.type "s3" }}{{ .Values.storage.s3.uri }}{{ else }}{{ .Values.storage.mountPath }}{{ end }}
{{- end }}

{{/* Ray pods expected in the cluster: the head plus every worker. */}}
{{- define "ray-maddpg.expectedNodes" -}}
{{- add 1 .Values.worker.replicas }}
{{- end }}

{{- define "ray-maddpg.expectedGpus" -}}
{{- add .Values.head.gpus (mul .Values.worker.replicas .Values.worker.gpus) }}
{{- end }}

{{/* A fixed secret value: the one already in the cluster (kept across upgrades), else a new random one. Call with (dict "root" $ "name" secretName "key" key). */}}
{{- define "ray-maddpg.keptSecretValue" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .name }}
{{- if and $existing (hasKey $existing.data .key) }}
{{- index $existing.data .key }}
{{- else }}
{{- randAlphaNum 64 | b64enc }}
{{- end }}
{{- end }}

{{/* Mount paths of the token files (Secrets as files, never as env values). */}}
{{- define "ray-maddpg.rayAuthMountPath" -}}/etc/ray-auth{{- end }}
{{- define "ray-maddpg.jupyterAuthMountPath" -}}/etc/jupyter-auth{{- end }}

{{/* Env every Ray process and client needs to reach the token-authenticated cluster. */}}
{{- define "ray-maddpg.rayAuthEnv" -}}
{{- if .Values.rayAuth.enabled }}
- name: RAY_AUTH_MODE
  value: token
- name: RAY_AUTH_TOKEN_PATH
  value: {{ include "ray-maddpg.rayAuthMountPath" . }}/{{ .Values.rayAuth.secretKey }}
{{- else }}
- name: RAY_AUTH_MODE
  value: disabled
{{- end }}
{{- end }}

{{- define "ray-maddpg.rayAuthVolumeMount" -}}
{{- if .Values.rayAuth.enabled }}
- name: ray-auth
  mountPath: {{ include "ray-maddpg.rayAuthMountPath" . }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "ray-maddpg.rayAuthVolume" -}}
{{- if .Values.rayAuth.enabled }}
- name: ray-auth
  secret:
    secretName: {{ include "ray-maddpg.rayAuthSecretName" . }}
    defaultMode: 0440
    items:
      - key: {{ .Values.rayAuth.secretKey }}
        path: {{ .Values.rayAuth.secretKey }}
{{- end }}
{{- end }}

{{/* S3 credentials and endpoint for every process that reads or writes results. */}}
{{- define "ray-maddpg.storageEnv" -}}
{{- if eq .Values.storage.type "s3" }}
{{- with .Values.storage.s3.credentialsSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: AWS_SECRET_ACCESS_KEY
{{- end }}
{{- with .Values.storage.s3.endpointUrl }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.storage.s3.region }}
- name: AWS_REGION
  value: {{ . | quote }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The results volume: the PVC, or a scratch emptyDir when results go to S3. */}}
{{- define "ray-maddpg.resultsVolume" -}}
- name: results
{{- if eq .Values.storage.type "pvc" }}
  persistentVolumeClaim:
    claimName: {{ include "ray-maddpg.resultsClaimName" . }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end }}

{{/* Writable scratch space, since the root filesystem is read-only: Ray's /tmp/ray, HOME (~/.ray, ~/.jupyter, ~/.cache). */}}
{{- define "ray-maddpg.scratchVolumes" -}}
- name: tmp
  emptyDir: {}
- name: home
  emptyDir: {}
{{- end }}

{{- define "ray-maddpg.scratchVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /home/ray
{{- end }}

{{/* `ray start` flags from rayStartParams, as --flag=value. */}}
{{- define "ray-maddpg.rayStartParams" -}}
{{- range $flag, $value := . }}
- --{{ $flag }}={{ $value }}
{{- end }}
{{- end }}

{{/* Resources with the nvidia.com/gpu limit added from a GPU count. Call with (dict "resources" ... "gpus" n). */}}
{{- define "ray-maddpg.gpuResources" -}}
{{- $resources := deepCopy (default dict .resources) }}
{{- if gt (int .gpus) 0 }}
{{- $limits := default dict $resources.limits }}
{{- $_ := set $limits "nvidia.com/gpu" (int .gpus) }}
{{- $_ := set $resources "limits" $limits }}
{{- end }}
{{- toYaml $resources }}
{{- end }}

{{/*
Waits until the Ray jobs API answers and the cluster has the expected alive nodes and GPUs.
Used by the Job (the whole cluster), the workers (only the head) and the `helm test` pod; settings come from env.
*/}}
{{- define "ray-maddpg.waitForClusterScript" -}}
import os, sys, time
from ray.job_submission import JobSubmissionClient
from ray.util.state import list_nodes

address = os.environ["RAY_API_SERVER_ADDRESS"]
want_nodes = int(os.environ["RAY_EXPECTED_NODES"])
want_gpus = float(os.environ["RAY_EXPECTED_GPUS"])
timeout = float(os.environ["RAY_WAIT_TIMEOUT_SECONDS"])
deadline = time.monotonic() + timeout
seen = "no answer yet"
while True:
    try:
        JobSubmissionClient(address).list_jobs()
        # A worker that restarted leaves a dead node behind; without this the state API raises.
        nodes = list_nodes(
            address=address, filters=[("state", "=", "ALIVE")], detail=True, raise_on_missing_output=False
        )
        gpus = sum(node.resources_total.get("GPU", 0) for node in nodes)
        seen = f"{len(nodes)} alive nodes with {gpus:g} GPUs"
        if len(nodes) >= want_nodes and gpus >= want_gpus:
            print(f"Ray cluster at {address} is ready: {seen}", flush=True)
            break
    except Exception as error:
        seen = f"{type(error).__name__}: {error}"
    if time.monotonic() >= deadline:
        sys.exit(
            f"Ray cluster at {address} not ready after {timeout:g}s: expected "
            f"{want_nodes} nodes with {want_gpus:g} GPUs, last saw {seen}"
        )
    print(f"waiting for the Ray cluster at {address}: {seen}", flush=True)
    time.sleep(5)
{{- end }}

{{/* Env the wait script reads. Call with (dict "root" $ "timeout" seconds), plus "nodes" and "gpus" to expect fewer than the whole cluster. */}}
{{- define "ray-maddpg.waitForClusterEnv" -}}
- name: RAY_API_SERVER_ADDRESS
  value: http://{{ include "ray-maddpg.headServiceName" .root }}:8265
- name: RAY_EXPECTED_NODES
  value: {{ default (include "ray-maddpg.expectedNodes" .root) .nodes | quote }}
- name: RAY_EXPECTED_GPUS
  value: {{ default (include "ray-maddpg.expectedGpus" .root) .gpus | quote }}
- name: RAY_WAIT_TIMEOUT_SECONDS
  value: {{ .timeout | quote }}
{{ include "ray-maddpg.rayAuthEnv" .root | trim }}
{{- end }}
