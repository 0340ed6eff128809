{{/*
Helpers. They use only .Values and .Release (never .Chart), so that the sidecar snippets in
_sidecar.tpl also work when an including chart passes (dict "Values" ... "Release" .Release).
*/}}

{{- define "clerk-m2m-proxy.name" -}}
{{- default "clerk-m2m-proxy" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "clerk-m2m-proxy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "clerk-m2m-proxy.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "clerk-m2m-proxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "clerk-m2m-proxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "clerk-m2m-proxy.labels" -}}
{{ include "clerk-m2m-proxy.selectorLabels" . }}
app.kubernetes.io/component: clerk-m2m-proxy
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "clerk-m2m-proxy.secretName" -}}
{{- default (printf "%s-keys" (include "clerk-m2m-proxy.fullname" .)) .Values.clerk.existingSecret -}}
{{- end -}}

{{/*
The proxy's config file (README "Configuration reference"). Keys come from the environment
(a Secret), never from the ConfigMap.
*/}}
{{- define "clerk-m2m-proxy.config" -}}
mode: proxy
listen: {{ printf "0.0.0.0:%d" (int .Values.listenPort) | quote }}
upstream:
  url: {{ .Values.upstream.url | quote }}
  connect_timeout: {{ .Values.upstream.connectTimeout | quote }}
  timeout: {{ .Values.upstream.timeout | quote }}
  preserve_host: {{ .Values.upstream.preserveHost }}
  tls_verify: {{ .Values.upstream.tlsVerify }}
clerk:
  api_url: {{ .Values.clerk.apiUrl | quote }}
  machine_secret_key: "${CLERK_MACHINE_SECRET_KEY:-}"
  secret_key: "${CLERK_SECRET_KEY:-}"
  timeout: {{ .Values.clerk.timeout | quote }}
  retries: {{ int .Values.clerk.retries }}
auth:
  accepts_token: {{ toJson .Values.auth.acceptsToken }}
  forward_authorization: {{ .Values.auth.forwardAuthorization }}
  clock_skew: {{ .Values.auth.clockSkew | quote }}
{{- if .Values.clerk.machineId }}
  audience: ["${CLERK_MACHINE_ID}"]
{{- end }}
cache:
  max_entries: {{ int .Values.cache.maxEntries }}
  ttl: {{ .Values.cache.ttl | quote }}
  negative_ttl: {{ .Values.cache.negativeTtl | quote }}
  stale_if_error: {{ .Values.cache.staleIfError | quote }}
{{- if .Values.cache.sharedRedis.secretName }}
  shared:
    redis_url: "${REDIS_URL:-}"
{{- end }}
{{- if .Values.headers.claimsToHeaders }}
headers:
  claims_to_headers:
    {{- toYaml .Values.headers.claimsToHeaders | nindent 4 }}
{{- end }}
{{- if .Values.routes }}
routes:
  {{- toYaml .Values.routes | nindent 2 }}
{{- end }}
admin:
  listen: {{ printf "0.0.0.0:%d" (int .Values.adminPort) | quote }}
limits:
  max_header_bytes: {{ int .Values.limits.maxHeaderBytes }}
  max_body_bytes: {{ int .Values.limits.maxBodyBytes }}
  header_timeout: {{ .Values.limits.headerTimeout | quote }}
  idle_timeout: {{ .Values.limits.idleTimeout | quote }}
  max_connections: {{ int .Values.limits.maxConnections }}
  min_body_rate: {{ int .Values.limits.minBodyRate }}
shutdown:
  drain_timeout: {{ .Values.shutdown.drainTimeout | quote }}
log:
  level: {{ .Values.log.level | quote }}
  format: {{ .Values.log.format | quote }}
  access_log: {{ .Values.log.accessLog }}
threads: {{ int .Values.threads }}
{{- end -}}
