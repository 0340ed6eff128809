{{/*
Sidecar snippets for charts that run clerk-m2m-proxy next to their own app container.

In the including chart (this chart as a dependency, with values under the key
"clerk-m2m-proxy" and mode: sidecar):

  containers:
    - name: app
      ...                                  # listens on 127.0.0.1:3000 (upstream.url)
    {{- include "clerk-m2m-proxy.sidecar" (dict "Values" (index .Values "clerk-m2m-proxy") "Release" .Release) | nindent 4 }}
  volumes:
    {{- include "clerk-m2m-proxy.sidecarVolumes" (dict "Values" (index .Values "clerk-m2m-proxy") "Release" .Release) | nindent 4 }}

and terminationGracePeriodSeconds > shutdown.preStopSleepSeconds + shutdown.drainTimeout.
The ConfigMap (and Secret) come from this chart, named after the same release.
*/}}

{{- define "clerk-m2m-proxy.container" -}}
- name: clerk-m2m-proxy
  image: {{ printf "%s:%s" .Values.image.repository .Values.image.tag | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  # entrypoint: clerk-m2m-proxy --config /etc/clerk-m2m-proxy/config.yaml
  ports:
    - name: http
      containerPort: {{ int .Values.listenPort }}
      protocol: TCP
    - name: admin
      containerPort: {{ int .Values.adminPort }}
      protocol: TCP
  env:
    - name: CLERK_MACHINE_SECRET_KEY
      valueFrom:
        secretKeyRef:
          name: {{ include "clerk-m2m-proxy.secretName" . }}
          key: {{ .Values.clerk.secretKeys.machineSecretKey }}
          optional: true
    - name: CLERK_SECRET_KEY
      valueFrom:
        secretKeyRef:
          name: {{ include "clerk-m2m-proxy.secretName" . }}
          key: {{ .Values.clerk.secretKeys.secretKey }}
          optional: true
    {{- if .Values.cache.sharedRedis.secretName }}
    - name: REDIS_URL
      valueFrom:
        secretKeyRef:
          name: {{ .Values.cache.sharedRedis.secretName | quote }}
          key: {{ .Values.cache.sharedRedis.secretKey }}
    {{- end }}
    {{- if .Values.clerk.machineId }}
    - name: CLERK_MACHINE_ID
      value: {{ .Values.clerk.machineId | quote }}
    {{- end }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: admin
    periodSeconds: 10
    failureThreshold: 3
  readinessProbe:
    httpGet:
      path: /readyz
      port: admin
    periodSeconds: 5
    failureThreshold: 1
  lifecycle:
    preStop:
      exec:
        command: ["/bin/sleep", "{{ int .Values.shutdown.preStopSleepSeconds }}"]
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: clerk-m2m-proxy-config
      mountPath: /etc/clerk-m2m-proxy
      readOnly: true
{{- end -}}

{{- define "clerk-m2m-proxy.sidecar" -}}
{{ include "clerk-m2m-proxy.container" . }}
{{- end -}}

{{- define "clerk-m2m-proxy.sidecarVolumes" -}}
- name: clerk-m2m-proxy-config
  configMap:
    name: {{ include "clerk-m2m-proxy.fullname" . }}
{{- end -}}
