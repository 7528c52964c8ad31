{{/* API helpers; names and labels come from the umbrella's _common.tpl. */}}

{{- define "api.fullname" -}}
{{- include "platform.fullname" (dict "ctx" .) -}}
{{- end -}}

{{- define "api.trackingUri" -}}
{{- .Values.mlflow.trackingUri | default (printf "http://%s-mlflow:5000" .Release.Name) -}}
{{- end -}}

{{/* Fails the render on settings the server would reject at start-up. */}}
{{- define "api.validate" -}}
{{- if not .Values.image.repository -}}
{{- fail "api.image.repository is required: the repository you push the API image to (the build workflow pushes ghcr.io/<owner>/<repo>; see docs/kubernetes.md)" -}}
{{- end -}}
{{- if and (ne .Values.challenger.mode "off") (not .Values.challenger.uri) -}}
{{- fail "api.challenger.uri is required when api.challenger.mode is split or shadow" -}}
{{- end -}}
{{- if and .Values.feedback.enabled (not .Values.feedback.store.existingSecret) -}}
{{- fail "api.feedback.store.existingSecret is required when api.feedback.enabled: replicas must share one prediction store" -}}
{{- end -}}
{{- if and .Values.judge.enabled (not .Values.feedback.enabled) -}}
{{- fail "api.judge.enabled needs api.feedback.enabled: the judge reads the recorded predictions" -}}
{{- end -}}
{{- if and .Values.judge.enabled (not .Values.judge.image.repository) -}}
{{- fail "api.judge.image.repository is required when api.judge.enabled (an image with the training environment)" -}}
{{- end -}}
{{- end -}}
