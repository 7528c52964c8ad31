{{- define "cloudflared.fullname" -}}
{{- include "platform.fullname" (dict "ctx" .) -}}
{{- end -}}
