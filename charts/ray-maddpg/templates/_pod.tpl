{{/* Pod and container parts every workload shares: the pod preamble, the image, and the volumes. */}}

{{/*
The start of every pod spec: the service account, no service links, the pod security context,
the pull secrets, and the scheduling values of a Ray node (nodeSelector, tolerations, affinity,
runtimeClassName) when given. Call with (dict "root" $), plus "node" .Values.head or .Values.worker.
*/}}
{{- define "ray-maddpg.podPreamble" -}}
serviceAccountName: {{ include "ray-maddpg.serviceAccountName" .root }}
automountServiceAccountToken: {{ .root.Values.serviceAccount.automountToken }}
# Service links would inject RAY_*-prefixed variables that Ray reads as its own settings.
enableServiceLinks: false
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.image.pullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- with .node }}
{{- with .runtimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
{{- range $key := list "nodeSelector" "tolerations" "affinity" }}
{{- with index $.node $key }}
{{ $key }}:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ray-maddpg.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* What every container starts with: the image and the container security context. */}}
{{- define "ray-maddpg.containerBase" -}}
image: {{ include "ray-maddpg.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
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

{{/* Ray's object store: a memory-backed /dev/shm. Call with the size. */}}
{{- define "ray-maddpg.shmVolume" -}}
- name: dshm
  emptyDir:
    medium: Memory
    sizeLimit: {{ . }}
{{- end }}

{{/* Writable scratch space, since the root filesystem is read-only: Ray's /tmp, HOME (~/.ray, ~/.jupyter, ~/.cache). */}}
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

{{/* Mount paths of the token files (Secrets as files, never as env values) and of the wait script. */}}
{{- define "ray-maddpg.rayAuthMountPath" -}}/etc/ray-auth{{- end }}
{{- define "ray-maddpg.jupyterAuthMountPath" -}}/etc/jupyter-auth{{- end }}
{{- define "ray-maddpg.waitForClusterMountPath" -}}/opt/wait-for-cluster{{- end }}

{{/* A volume with one key of a Secret as a file only its group reads. Call with (dict "name" volume "secretName" name "key" key). */}}
{{- define "ray-maddpg.secretFileVolume" -}}
- name: {{ .name }}
  secret:
    secretName: {{ .secretName }}
    defaultMode: 0440
    items:
      - key: {{ .key }}
        path: {{ .key }}
{{- end }}

{{- define "ray-maddpg.rayAuthVolume" -}}
{{- if .Values.rayAuth.enabled }}
{{- include "ray-maddpg.secretFileVolume" (dict "name" "ray-auth" "secretName" (include "ray-maddpg.rayAuthSecretName" .) "key" .Values.rayAuth.secretKey) }}
{{- end }}
{{- end }}

{{- define "ray-maddpg.jupyterAuthVolume" -}}
{{- include "ray-maddpg.secretFileVolume" (dict "name" "jupyter-auth" "secretName" (include "ray-maddpg.jupyterSecretName" .) "key" .Values.jupyter.secretKey) }}
{{- end }}

{{/* files/wait_for_cluster.py, from its ConfigMap. */}}
{{- define "ray-maddpg.waitForClusterVolume" -}}
- name: wait-for-cluster
  configMap:
    name: {{ include "ray-maddpg.waitForClusterConfigMapName" . }}
{{- end }}
