{{/* Name of the chart, overridable. */}}
{{- define "profiled.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified name: the release, plus the chart's name unless the release already holds it. */}}
{{- define "profiled.fullname" -}}
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

{{- define "profiled.selectorLabels" -}}
app.kubernetes.io/name: {{ include "profiled.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "profiled.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "profiled.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "profiled.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "profiled.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding PROFILED_REDIS_URL, PROFILED_REDIS_PASSWORD, PROFILED_KAFKA_SASL_PASSWORD, PROFILED_API_TOKEN. */}}
{{- define "profiled.secretName" -}}
{{- default (include "profiled.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* A list (or a comma-separated string) as one comma-separated string. */}}
{{- define "profiled.csv" -}}
{{- if kindIs "slice" . }}{{ join "," . }}{{ else }}{{ . | default "" }}{{ end }}
{{- end }}

{{/* Seconds the kubelet waits after SIGTERM: above the shutdown timeout. */}}
{{- define "profiled.gracePeriod" -}}
{{- $shutdown := int .Values.shutdownTimeoutSeconds }}
{{- $grace := add $shutdown 10 }}
{{- if .Values.terminationGracePeriodSeconds }}
{{- $grace = int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- if le $grace $shutdown }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed shutdownTimeoutSeconds (%d): the kubelet would kill a clean shutdown" $grace $shutdown) }}
{{- end }}
{{- $grace }}
{{- end }}

{{/* KEDA's cap: never more instances than partitions. */}}
{{- define "profiled.maxReplicas" -}}
{{- $parts := int .Values.kafka.partitions }}
{{- if lt $parts 1 }}
{{- fail "kafka.partitions must be the input topics' total partition count (at least 1)" }}
{{- end }}
{{- $max := $parts }}
{{- if .Values.keda.maxReplicaCount }}
{{- $max = min $parts (int .Values.keda.maxReplicaCount) }}
{{- end }}
{{- $max }}
{{- end }}
