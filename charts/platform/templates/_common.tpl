{{/*
Name and label helpers shared by every subchart. Named templates are global across the umbrella
and its subcharts, so the subcharts call these instead of keeping copies. Each takes
(dict "ctx" $ "component" "name"); component defaults to the calling chart's name.
*/}}

{{/*
Object name: <release>-<component>. Truncated to 63 characters because Service names are DNS
labels (RFC 1123); the release name itself is limited to 53 by Helm, which leaves room for the suffix.
*/}}
{{- define "platform.fullname" -}}
{{- $component := .component | default .ctx.Chart.Name -}}
{{- printf "%s-%s" .ctx.Release.Name $component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "platform.selectorLabels" -}}
{{- $component := .component | default .ctx.Chart.Name -}}
app.kubernetes.io/name: {{ $component }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- end -}}

{{/*
Labels of every object. app.kubernetes.io/version is the version of the image the component runs:
the chart's `image` (api, mlflow, cloudflared) or the component's own (`prometheus.image`,
`grafana.image` in the monitoring chart); objects with no image of their own (rules, dashboards)
carry the chart's appVersion.
*/}}
{{- define "platform.labels" -}}
{{- $component := .component | default .ctx.Chart.Name -}}
{{- $image := .ctx.Values.image -}}
{{- $own := index .ctx.Values $component -}}
{{- if and (kindIs "map" $own) (hasKey $own "image") -}}
{{- $image = $own.image -}}
{{- end -}}
{{- $version := .ctx.Chart.AppVersion -}}
{{- if $image -}}
{{- $version = include "platform.imageVersion" (dict "image" $image "default" .ctx.Chart.AppVersion) -}}
{{- end -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "platform.selectorLabels" . }}
app.kubernetes.io/component: {{ $component }}
app.kubernetes.io/part-of: platform
app.kubernetes.io/version: {{ $version | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- with .ctx.Values.global.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Image reference from {repository, tag, digest}: the digest wins over the tag; `latest` and an
unpinned image fail the render (the schema refuses `latest` too, this covers --set on subcharts).
Takes (dict "image" .Values.image "default" "<tag when empty>").
*/}}
{{- define "platform.image" -}}
{{- $tag := .image.tag | default .default | toString -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else if and $tag (ne $tag "latest") -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- else -}}
{{- fail (printf "image %s must be pinned by a tag other than latest or by a digest" .image.repository) -}}
{{- end -}}
{{- end -}}

{{/*
The version an image runs, as a label value: its tag without a leading "v" (`v3.5.0` -> `3.5.0`),
else the default. Label values allow 63 characters of [A-Za-z0-9_.-].
Takes (dict "image" .Values.image "default" "<version when the tag is empty>").
*/}}
{{- define "platform.imageVersion" -}}
{{- $version := .image.tag | default .default | toString | trimPrefix "v" -}}
{{- regexReplaceAll "[^A-Za-z0-9_.-]" $version "_" | trunc 63 | trimSuffix "-" | trimSuffix "_" | trimSuffix "." -}}
{{- end -}}

{{/* imagePullSecrets key, or nothing: use as `with include ... }}{{ . | nindent N }}`. */}}
{{- define "platform.imagePullSecrets" -}}
{{- with .Values.global.imagePullSecrets -}}
imagePullSecrets:
{{- range . }}
{{ printf "  - name: %s" . }}
{{- end }}
{{- end -}}
{{- end -}}

{{/*
Ingress NetworkPolicy for one component: traffic only from pods of the release namespace and,
when `prometheus` is true, from the Prometheus selected in global.networkPolicy (operator mode
runs it in another namespace). Takes (dict "ctx" $ "component" "name" "port" "http" "prometheus" bool).
*/}}
{{- define "platform.networkPolicy" -}}
{{- $np := .ctx.Values.global.networkPolicy -}}
{{- if $np.enabled }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "platform.fullname" . }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "platform.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "platform.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress]
  ingress:
    - from:
        - podSelector: {}
        {{- if and .prometheus (or $np.prometheusNamespaceSelector $np.prometheusPodSelector) }}
        - namespaceSelector:
            {{- toYaml ($np.prometheusNamespaceSelector | default dict) | nindent 12 }}
          podSelector:
            {{- toYaml ($np.prometheusPodSelector | default dict) | nindent 12 }}
        {{- end }}
      ports:
        - port: {{ .port }}
          protocol: TCP
{{- end }}
{{- end -}}

{{/* Pod-level restricted security context (Pod Security Standards "restricted"). Takes the UID. */}}
{{- define "platform.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level restricted security context: read-only root, no privilege escalation, no capabilities. */}}
{{- define "platform.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
