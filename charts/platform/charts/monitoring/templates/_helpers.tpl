{{/*
"true" when the Prometheus Operator objects are rendered: forced by mode=operator, or in mode=auto
when the cluster serves both CRDs (`helm template` needs `--api-versions monitoring.coreos.com/v1`).
*/}}
{{- define "monitoring.operatorMode" -}}
{{- if eq .Values.mode "operator" -}}
true
{{- else if and (eq .Values.mode "auto") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/PrometheusRule") -}}
true
{{- end -}}
{{- end -}}

{{/* The job label every rule and dashboard selects the API by, in both modes. */}}
{{- define "monitoring.apiJob" -}}model-platform-api{{- end -}}
{{- define "monitoring.cloudflaredJob" -}}model-platform-cloudflared{{- end -}}
{{- define "monitoring.mlflowJob" -}}model-platform-mlflow{{- end -}}

{{/* Dashboards ConfigMap data: every JSON file under files/dashboards. */}}
{{- define "monitoring.dashboardsData" -}}
{{- range $path, $_ := .Files.Glob "files/dashboards/*.json" }}
{{ base $path }}: |-
{{ $.Files.Get $path | indent 2 }}
{{- end }}
{{- end -}}
