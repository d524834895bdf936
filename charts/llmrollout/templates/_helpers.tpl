{{- define "llmrollout.fullname" -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- define "llmrollout.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ include "llmrollout.fullname" . }}{{- else -}}{{ .Values.serviceAccount.name | default "default" }}{{- end -}}
{{- end -}}
{{- define "llmrollout.labels" -}}
app.kubernetes.io/name: llmrollout
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
