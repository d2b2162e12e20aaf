{{/* Ray: the head's addresses, the env and mounts of Ray processes, the Ray node container and the cluster wait. */}}

{{/* Where the workers join: the head Service's GCS port. */}}
{{- define "ray-maddpg.headGcsAddress" -}}
{{ include "ray-maddpg.headServiceName" . }}:{{ .Values.head.ports.gcs }}
{{- end }}

{{/* The head's dashboard, jobs and state APIs, as clients in other pods reach them. */}}
{{- define "ray-maddpg.headDashboardUrl" -}}
http://{{ include "ray-maddpg.headServiceName" . }}:{{ .Values.head.ports.dashboard }}
{{- end }}

{{/* Ray pods expected in the cluster: the head plus every worker. */}}
{{- define "ray-maddpg.expectedNodes" -}}
{{- add 1 .Values.worker.replicas }}
{{- end }}

{{- define "ray-maddpg.expectedGpus" -}}
{{- add .Values.head.gpus (mul .Values.worker.replicas .Values.worker.gpus) }}
{{- end }}

{{/* Env every Ray process and client needs to reach the token-authenticated cluster. */}}
{{- define "ray-maddpg.rayAuthEnv" -}}
{{- if .Values.rayAuth.enabled -}}
- name: RAY_AUTH_MODE
  value: token
- name: RAY_AUTH_TOKEN_PATH
  value: {{ include "ray-maddpg.rayAuthMountPath" . }}/{{ .Values.rayAuth.secretKey }}
{{- else -}}
- name: RAY_AUTH_MODE
  value: disabled
{{- end }}
{{- end }}

{{- define "ray-maddpg.rayAuthVolumeMount" -}}
{{- if .Values.rayAuth.enabled -}}
- name: ray-auth
  mountPath: {{ include "ray-maddpg.rayAuthMountPath" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Env of the containers that run Ray and the training code (ray-head, ray-worker, jupyter): the token, S3 and extraEnv. */}}
{{- define "ray-maddpg.rayEnv" -}}
{{ include "ray-maddpg.rayAuthEnv" . }}
{{- with include "ray-maddpg.storageEnv" . | trim }}
{{ . }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volume mounts of the same containers: the results, /dev/shm, scratch space, the token and extraVolumeMounts. */}}
{{- define "ray-maddpg.rayVolumeMounts" -}}
- name: results
  mountPath: {{ .Values.storage.mountPath }}
- name: dshm
  mountPath: /dev/shm
{{ include "ray-maddpg.scratchVolumeMounts" . }}
{{- with include "ray-maddpg.rayAuthVolumeMount" . }}
{{ . }}
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volumes of a Ray node pod, for the mounts above. Call with (dict "root" $ "role" "head") or "worker". */}}
{{- define "ray-maddpg.rayNodeVolumes" -}}
{{ include "ray-maddpg.resultsVolume" .root }}
{{ include "ray-maddpg.shmVolume" (index .root.Values .role).shmSize }}
{{ include "ray-maddpg.scratchVolumes" .root }}
{{- with include "ray-maddpg.rayAuthVolume" .root }}
{{ . }}
{{- end }}
{{- with .root.Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Env of the short-lived clients of the head's jobs API (the wait and the Job's submit). */}}
{{- define "ray-maddpg.rayClientEnv" -}}
- name: RAY_API_SERVER_ADDRESS
  value: {{ include "ray-maddpg.headDashboardUrl" . }}
{{ include "ray-maddpg.rayAuthEnv" . }}
{{- end }}

{{- define "ray-maddpg.rayClientVolumeMounts" -}}
{{ include "ray-maddpg.scratchVolumeMounts" . }}
{{- with include "ray-maddpg.rayAuthVolumeMount" . }}
{{ . }}
{{- end }}
{{- end }}

{{/* Volumes of a pod of such clients, for the mounts above and the wait script. */}}
{{- define "ray-maddpg.rayClientVolumes" -}}
{{ include "ray-maddpg.scratchVolumes" . }}
{{- with include "ray-maddpg.rayAuthVolume" . }}
{{ . }}
{{- end }}
{{ include "ray-maddpg.waitForClusterVolume" . }}
{{- end }}

{{/*
The ray-head or ray-worker container: `ray start` in the foreground on the pod IP, with the node's
GPUs and rayStartParams. The head serves the GCS, the dashboard and the client server; a worker
joins through the head Service. Call with (dict "root" $ "role" "head") or "worker".
*/}}
{{- define "ray-maddpg.rayNodeContainer" -}}
{{- $node := index .root.Values .role }}
{{- $head := eq .role "head" -}}
- name: ray-{{ .role }}
  {{- include "ray-maddpg.containerBase" .root | nindent 2 }}
  command:
    - ray
    - start
    - {{ if $head }}--head{{ else }}--address={{ include "ray-maddpg.headGcsAddress" .root }}{{ end }}
    - --block
    - --node-ip-address=$(POD_IP)
    {{- if $head }}
    - --port={{ $node.ports.gcs }}
    - --ray-client-server-port={{ $node.ports.client }}
    - --dashboard-host=0.0.0.0
    - --dashboard-port={{ $node.ports.dashboard }}
    {{- end }}
    - --dashboard-agent-listen-port={{ $node.ports.dashboardAgent }}
    - --num-gpus={{ $node.gpus }}
    - --disable-usage-stats
    {{- range $flag, $value := $node.rayStartParams }}
    - --{{ $flag }}={{ $value }}
    {{- end }}
  env:
    - name: POD_IP
      valueFrom:
        fieldRef:
          fieldPath: status.podIP
    {{- include "ray-maddpg.rayEnv" .root | nindent 4 }}
  ports:
    {{- if $head }}
    - name: gcs
      containerPort: {{ $node.ports.gcs }}
    - name: dashboard
      containerPort: {{ $node.ports.dashboard }}
    - name: client
      containerPort: {{ $node.ports.client }}
    {{- else }}
    - name: agent
      containerPort: {{ $node.ports.dashboardAgent }}
    {{- end }}
  # The health endpoints are public even with token auth: the head's GCS, a worker's raylet.
  {{- $health := ternary (dict "path" "/api/gcs_healthz" "port" "dashboard") (dict "path" "/api/local_raylet_healthz" "port" "agent") $head }}
  startupProbe:
    httpGet:
      {{- toYaml $health | nindent 6 }}
    periodSeconds: 5
    failureThreshold: 60
  readinessProbe:
    httpGet:
      {{- toYaml $health | nindent 6 }}
    periodSeconds: 10
    timeoutSeconds: 5
    failureThreshold: 3
  livenessProbe:
    httpGet:
      {{- toYaml $health | nindent 6 }}
    periodSeconds: 15
    timeoutSeconds: 5
    failureThreshold: 8
  resources:
    {{- include "ray-maddpg.gpuResources" (dict "resources" $node.resources "gpus" $node.gpus) | nindent 4 }}
  volumeMounts:
    {{- include "ray-maddpg.rayVolumeMounts" .root | nindent 4 }}
{{- end }}

{{/*
A container that runs files/wait_for_cluster.py until the jobs API answers and the cluster has
the expected alive nodes and GPUs. Call with (dict "root" $ "name" container "timeout" seconds),
plus "nodes" and "gpus" to expect fewer than the whole cluster.
*/}}
{{- define "ray-maddpg.waitForClusterContainer" -}}
- name: {{ .name }}
  {{- include "ray-maddpg.containerBase" .root | nindent 2 }}
  command:
    - python
    - {{ include "ray-maddpg.waitForClusterMountPath" . }}/wait_for_cluster.py
  env:
    {{- include "ray-maddpg.rayClientEnv" .root | nindent 4 }}
    - name: RAY_EXPECTED_NODES
      value: {{ default (include "ray-maddpg.expectedNodes" .root) .nodes | quote }}
    - name: RAY_EXPECTED_GPUS
      value: {{ default (include "ray-maddpg.expectedGpus" .root) .gpus | quote }}
    - name: RAY_WAIT_TIMEOUT_SECONDS
      value: {{ .timeout | quote }}
  resources:
    {{- toYaml .root.Values.helperResources | nindent 4 }}
  volumeMounts:
    {{- include "ray-maddpg.rayClientVolumeMounts" .root | nindent 4 }}
    - name: wait-for-cluster
      mountPath: {{ include "ray-maddpg.waitForClusterMountPath" . }}
      readOnly: true
{{- end }}
