{{/* API helpers; names and labels come from the umbrella's _common.tpl. */}}

{{- define "api.fullname" -}}
{{- include "platform.fullname" (dict "ctx" .) -}}
{{- end -}}

{{/*
The judge's image: the training image the build workflow pushes beside the API's, as
`<api repository>/training` under the API's tag, unless api.judge.image names another (whose
empty tag then means the chart's appVersion: the API's tag is not that repository's).
*/}}
{{- define "api.judgeImage" -}}
{{- $image := .Values.judge.image -}}
{{- $repository := $image.repository | default (printf "%s/training" .Values.image.repository) -}}
{{- $tag := $image.tag -}}
{{- if not $image.repository -}}
{{- $tag = $image.tag | default .Values.image.tag -}}
{{- end -}}
{{- include "platform.image" (dict "image" (dict "repository" $repository "tag" $tag "digest" $image.digest) "default" .Chart.AppVersion) -}}
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
{{- if gt (float64 .Values.drift.warningPsi) (float64 .Values.drift.thresholdPsi) -}}
{{- fail "api.drift.warningPsi must not exceed api.drift.thresholdPsi (the server refuses to start)" -}}
{{- end -}}
{{- end -}}
