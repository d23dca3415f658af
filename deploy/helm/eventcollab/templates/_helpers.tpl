{{/* Names: <release> when it already contains the chart's name, else <release>-<chart>; 63 chars at most. */}}
{{- define "eventcollab.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "eventcollab.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one module's pods. Argument: (dict "root" $ "module" "billing"). */}}
{{- define "eventcollab.selectorLabels" -}}
app.kubernetes.io/name: {{ include "eventcollab.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .module }}
{{- end }}

{{/* All labels. Argument: (dict "root" $ "module" "billing"); module may be a role such as "migrate". */}}
{{- define "eventcollab.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "eventcollab.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: eventcollab
{{- end }}

{{- define "eventcollab.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "eventcollab.secretName" -}}
{{ include "eventcollab.fullname" . }}-urls
{{- end }}

{{/* Enabled modules, comma-separated, in name order. */}}
{{- define "eventcollab.enabledModules" -}}
{{- $names := list }}
{{- range $name, $module := .Values.modules }}
{{- if $module.enabled }}
{{- $names = append $names $name }}
{{- end }}
{{- end }}
{{- join "," $names }}
{{- end }}

{{/* The env list: .Values.env with a module's own env on top. Argument: (dict "root" $ "extra" map). */}}
{{- define "eventcollab.env" -}}
{{- $env := list }}
{{- range $key, $value := merge (dict) (.extra | default (dict)) .root.Values.env }}
{{- $env = append $env (dict "name" $key "value" ($value | toString)) }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/* URLs with credentials: the chart's Secret, then existingSecret, whose keys win (later envFrom wins). */}}
{{- define "eventcollab.envFrom" -}}
- secretRef:
    name: {{ include "eventcollab.secretName" . }}
{{- with .Values.existingSecret }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end }}

{{/* The volumes every container writes to, the root filesystem being read-only. */}}
{{- define "eventcollab.volumeMounts" -}}
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- end }}

{{- define "eventcollab.volumes" -}}
- name: data
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- end }}

{{/* BUS_URL: bus.url, else the chart's own NATS; empty when neither (then existingSecret must hold it). */}}
{{- define "eventcollab.busUrl" -}}
{{- if .Values.bus.url }}
{{- .Values.bus.url }}
{{- else if .Values.nats.enabled }}
{{- printf "nats://%s-nats:4222" (include "eventcollab.fullname" .) }}
{{- end }}
{{- end }}

{{/* DATABASE_URL: database.url, else the chart's own PostgreSQL; empty when neither. */}}
{{- define "eventcollab.databaseUrl" -}}
{{- if .Values.database.url }}
{{- .Values.database.url }}
{{- else if .Values.postgresql.enabled }}
{{- $pg := .Values.postgresql.auth }}
{{- printf "postgresql+asyncpg://%s:%s@%s-postgresql:5432/%s" $pg.username (urlquery $pg.password) (include "eventcollab.fullname" .) $pg.database }}
{{- end }}
{{- end }}

{{/* The migration runs before the install only when its database exists before it: not the chart's own. */}}
{{- define "eventcollab.migrationHook" -}}
{{- if and .Values.postgresql.enabled (not .Values.database.url) -}}
post-install,pre-upgrade
{{- else -}}
pre-install,pre-upgrade
{{- end }}
{{- end }}
