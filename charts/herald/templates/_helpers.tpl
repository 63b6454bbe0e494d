{{/* Names and labels shared by every template. */}}
{{- define "herald.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "herald.fullname" -}}
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

{{- define "herald.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels; call with (dict "root" $ "component" "contacts"). */}}
{{- define "herald.labels" -}}
helm.sh/chart: {{ include "herald.chart" .root }}
{{ include "herald.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: herald
{{- end }}

{{- define "herald.selectorLabels" -}}
app.kubernetes.io/name: {{ include "herald.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Image reference for a component; call with (dict "root" $ "component" "worker"). */}}
{{- define "herald.image" -}}
{{- $img := .root.Values.image -}}
{{- $name := printf "%s%s:%s" $img.namePrefix .component (default .root.Chart.AppVersion $img.tag) -}}
{{- if $img.registry }}{{ printf "%s/%s" (trimSuffix "/" $img.registry) $name }}{{ else }}{{ $name }}{{ end }}
{{- end }}

{{- define "herald.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "herald.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "herald.secretName" -}}
{{- default (printf "%s-secrets" (include "herald.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{/* Environment shared by every container: ConfigMap and Secret, plus URLs from operator Secrets. */}}
{{- define "herald.envFrom" -}}
- configMapRef:
    name: {{ include "herald.fullname" . }}-config
- secretRef:
    name: {{ include "herald.secretName" . }}
{{- end }}

{{- define "herald.urlEnv" -}}
{{- if .Values.database.urlSecretRef.name }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.urlSecretRef.name }}
      key: {{ .Values.database.urlSecretRef.key }}
{{- end }}
{{- if .Values.redis.urlSecretRef.name }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.urlSecretRef.name }}
      key: {{ .Values.redis.urlSecretRef.key }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by Deployments, CronJobs and hook Jobs. */}}
{{- define "herald.podSpecCommon" -}}
serviceAccountName: {{ include "herald.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "herald.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{- define "herald.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Pod annotations: config and secret checksums roll the pods when either changes. */}}
{{- define "herald.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "herald.topologySpread" -}}
{{- if .root.Values.topologySpread.enabled }}
topologySpreadConstraints:
  - maxSkew: {{ .root.Values.topologySpread.maxSkew }}
    topologyKey: {{ .root.Values.topologySpread.topologyKey }}
    whenUnsatisfiable: {{ .root.Values.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "herald.selectorLabels" . | nindent 8 }}
{{- end }}
{{- end }}

{{/* A Kubernetes name from a job name: lower case, dashes, short enough for CronJob names. */}}
{{- define "herald.jobResourceName" -}}
{{- printf "%s-%s" (include "herald.fullname" .root) (.name | lower | replace "_" "-" | replace "." "-") | trunc 52 | trimSuffix "-" }}
{{- end }}
