{{- define "modelops.labels" -}}
app.kubernetes.io/name: modelops
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "modelops.selector" -}}
app.kubernetes.io/name: modelops
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The images spec.template.image and the operator's own workloads may name, as a JSON list
(also a CEL list literal): the worker images, then policy.images. */}}
{{- define "modelops.allowedImages" -}}
{{- $images := list .Values.worker.image -}}
{{- with .Values.worker.gpuImage }}{{ $images = append $images . }}{{ end -}}
{{- range compact .Values.policy.images }}{{ $images = append $images . }}{{ end -}}
{{- $images | uniq | toJson -}}
{{- end }}

{{/* CEL: whether the string `img` is allowed by the list variables.images (core/src/policy.rs). */}}
{{- define "modelops.imageAllowed" -}}
variables.images.exists(p, p == '*' || p == {{ . }} || ((p.endsWith('/') || p.endsWith(':') || p.endsWith('@')) && {{ . }}.startsWith(p) && size({{ . }}) > size(p)))
{{- end }}
