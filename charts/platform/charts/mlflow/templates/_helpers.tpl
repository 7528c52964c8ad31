{{- define "mlflow.fullname" -}}
{{- include "platform.fullname" (dict "ctx" .) -}}
{{- end -}}

{{/* Host headers the server accepts: its Service names (short and qualified, any port), loopback and the configured extras. */}}
{{- define "mlflow.allowedHosts" -}}
{{- $svc := include "mlflow.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $hosts := list "localhost:*" "127.0.0.1:*" $svc (printf "%s:*" $svc) (printf "%s.%s" $svc $ns) (printf "%s.%s:*" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc:*" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) (printf "%s.%s.svc.cluster.local:*" $svc $ns) -}}
{{- concat $hosts .Values.allowedHosts | join "," -}}
{{- end -}}

{{/* The service account the pod runs as: the chart's, a named existing one, or the namespace default. */}}
{{- define "mlflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "mlflow.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* s3://<bucket>[/<prefix>]: where the server puts the artifacts it proxies. */}}
{{- define "mlflow.s3Destination" -}}
{{- $s3 := .Values.artifacts.s3 -}}
{{- printf "s3://%s" $s3.bucket -}}{{- with $s3.prefix -}}/{{ . }}{{- end -}}
{{- end -}}

{{- define "mlflow.validate" -}}
{{- if not .Values.image.repository -}}
{{- fail "mlflow.image.repository is required: the platform's MLflow image (deploy/compose/mlflow.Dockerfile; the build workflow pushes ghcr.io/<owner>/<repo>/mlflow; see docs/kubernetes.md)" -}}
{{- end -}}
{{- if and (eq .Values.artifacts.type "s3") (not .Values.artifacts.s3.bucket) -}}
{{- fail "mlflow.artifacts.s3.bucket is required when mlflow.artifacts.type is s3" -}}
{{- end -}}
{{- if and (ne .Values.artifacts.type "s3") .Values.artifacts.s3.existingSecret -}}
{{- fail "mlflow.artifacts.s3.existingSecret is set but mlflow.artifacts.type is not s3" -}}
{{- end -}}
{{- if and .Values.auth.enabled (not .Values.auth.existingSecret) -}}
{{- fail "mlflow.auth.existingSecret (keys username, password) is required when mlflow.auth.enabled is true" -}}
{{- end -}}
{{- end -}}
