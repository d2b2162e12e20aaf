{{/* The rest: results storage, generated tokens, and what the head's two sidecars (jupyter, tensorboard) share. */}}

{{/* Where the training run writes: the S3 URI, or the mounted results volume. */}}
{{- define "ray-maddpg.resultsDir" -}}
{{- if eq .Values.storage.type "s3" }}{{ .Values.storage.s3.uri }}{{ else }}{{ .Values.storage.mountPath }}{{ end }}
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

{{/* A fixed secret value: the one already in the cluster (kept across upgrades), else a new random one. Call with (dict "root" $ "name" secretName "key" key). */}}
{{- define "ray-maddpg.keptSecretValue" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .name }}
{{- if and $existing (hasKey $existing.data .key) }}
{{- index $existing.data .key }}
{{- else }}
{{- randAlphaNum 64 | b64enc }}
{{- end }}
{{- end }}

{{/* A Secret holding one generated token. Call with (dict "root" $ "component" "jupyter" "name" secretName "key" key). */}}
{{- define "ray-maddpg.tokenSecret" -}}
apiVersion: v1
kind: Secret
metadata:
  {{- include "ray-maddpg.metadata" . | nindent 2 }}
type: Opaque
data:
  # Generated on install; upgrades keep the value already in the cluster.
  {{ .key }}: {{ include "ray-maddpg.keptSecretValue" . }}
{{- end }}

{{/* A sidecar's named HTTP port and the probes on it. Call with (dict "root" $ "name" "jupyter" "path" "/api"). */}}
{{- define "ray-maddpg.sidecarPort" -}}
ports:
  - name: {{ .name }}
    containerPort: {{ (index .root.Values .name).containerPort }}
readinessProbe:
  httpGet:
    path: {{ .path }}
    port: {{ .name }}
  periodSeconds: 10
livenessProbe:
  httpGet:
    path: {{ .path }}
    port: {{ .name }}
  initialDelaySeconds: 30
  periodSeconds: 20
  failureThreshold: 6
{{- end }}

{{/* The Service of a sidecar, from its `service` values. Call with (dict "root" $ "component" "jupyter"). */}}
{{- define "ray-maddpg.sidecarService" -}}
{{- $service := (index .root.Values .component).service -}}
apiVersion: v1
kind: Service
metadata:
  {{- include "ray-maddpg.metadata" . | nindent 2 }}
spec:
  type: {{ $service.type }}
  # The {{ .component }} container runs in the head pod.
  selector:
    {{- include "ray-maddpg.selectorLabels" (dict "root" .root "component" "head") | nindent 4 }}
  ports:
    - name: {{ .component }}
      port: {{ $service.port }}
      targetPort: {{ .component }}
      {{- if and (ne $service.type "ClusterIP") $service.nodePort }}
      nodePort: {{ $service.nodePort }}
      {{- end }}
{{- end }}
