{{/* Names ------------------------------------------------------------------ */}}

{{- define "aurum.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The object-name prefix: the release name, plus the chart name unless the
release name already contains it. At most 38 characters, so that the longest
StatefulSet name (`-hdfs-namenode`) stays within the 52 that its pods'
controller-revision-hash label allows. */}}
{{- define "aurum.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 38 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 38 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 38 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "aurum.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels: the common set, then one component's (call with dict "ctx" . "component" NAME). */}}
{{- define "aurum.labels" -}}
helm.sh/chart: {{ include "aurum.chart" . }}
app.kubernetes.io/name: {{ include "aurum.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: aurum
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "aurum.componentLabels" -}}
{{ include "aurum.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "aurum.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aurum.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Images: registry/repository:tag with the shared defaults (call with dict "ctx" . "image" .Values.X.image). */}}
{{- define "aurum.image" -}}
{{- $reg := .ctx.Values.image.registry | trimSuffix "/" -}}
{{- $tag := .image.tag | default .ctx.Values.image.tag | default .ctx.Chart.AppVersion -}}
{{- if $reg -}}
{{- printf "%s/%s:%s" $reg .image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end }}

{{- define "aurum.pullPolicy" -}}
{{- .image.pullPolicy | default .ctx.Values.image.pullPolicy -}}
{{- end }}

{{/* A third-party image (postgresql, hdfs): repository:tag as given. */}}
{{- define "aurum.externalImage" -}}
{{- printf "%s:%s" .repository (toString .tag) -}}
{{- end }}

{{/* Security contexts: the component's own, else the top-level default. */}}
{{- define "aurum.podSecurityContext" -}}
{{- toYaml (.component.podSecurityContext | default .ctx.Values.podSecurityContext) }}
{{- end }}

{{- define "aurum.securityContext" -}}
{{- toYaml (.component.securityContext | default .ctx.Values.securityContext) }}
{{- end }}

{{- define "aurum.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The pod template the operator merges into every run's pod before the
resource's own spec.podOverrides (AURUM_JOB_POD_DEFAULTS), as JSON; empty when
there is nothing to add. jobRunner.podDefaults wins over the shorthands.
*/}}
{{- define "aurum.operator.jobPodDefaults" -}}
{{- $r := .Values.jobRunner -}}
{{- $meta := dict -}}
{{- with $r.podLabels }}{{ $_ := set $meta "labels" . }}{{ end -}}
{{- with $r.podAnnotations }}{{ $_ := set $meta "annotations" . }}{{ end -}}
{{- $spec := dict -}}
{{- with .Values.imagePullSecrets -}}
{{- $secrets := list -}}
{{- range . }}{{ $secrets = append $secrets (dict "name" .) }}{{ end -}}
{{- $_ := set $spec "imagePullSecrets" $secrets -}}
{{- end -}}
{{- with $r.nodeSelector }}{{ $_ := set $spec "nodeSelector" . }}{{ end -}}
{{- with $r.tolerations }}{{ $_ := set $spec "tolerations" . }}{{ end -}}
{{- with $r.affinity }}{{ $_ := set $spec "affinity" . }}{{ end -}}
{{- with $r.env -}}
{{- $_ := set $spec "initContainers" (list (dict "name" "feed" "env" .)) -}}
{{- $_ := set $spec "containers" (list (dict "name" "job-runner" "env" .)) -}}
{{- end -}}
{{- $pod := dict -}}
{{- with $meta }}{{ $_ := set $pod "metadata" . }}{{ end -}}
{{- with $spec }}{{ $_ := set $pod "spec" . }}{{ end -}}
{{- $pod = mergeOverwrite $pod (deepCopy ($r.podDefaults | default dict)) -}}
{{- with $pod }}{{ toJson . }}{{ end -}}
{{- end }}

{{/* Shared environment of the Aurum binaries. */}}
{{- define "aurum.logEnv" -}}
- name: RUST_LOG
  value: {{ .Values.logging.level | quote }}
{{- if eq .Values.logging.format "json" }}
- name: AURUM_LOG_FORMAT
  value: json
{{- end }}
{{- end }}

{{/* Service accounts --------------------------------------------------------- */}}

{{- define "aurum.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- .Values.operator.serviceAccount.name | default (printf "%s-operator" (include "aurum.fullname" .)) }}
{{- else }}
{{- .Values.operator.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{- define "aurum.jobRunner.serviceAccountName" -}}
{{- if .Values.jobRunner.serviceAccount.create }}
{{- .Values.jobRunner.serviceAccount.name | default (printf "%s-job-runner" (include "aurum.fullname" .)) }}
{{- else }}
{{- .Values.jobRunner.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{/* The namespace the operator watches with scope: namespace. */}}
{{- define "aurum.operator.watchNamespace" -}}
{{- .Values.operator.watchNamespace | default .Release.Namespace }}
{{- end }}

{{/* Secrets ------------------------------------------------------------------ */}}

{{/* The Secret and key holding the PostgreSQL URL: existingSecret, else the
chart's `<fullname>-database` (rendered from postgresql or url, or left for the
user to create when neither is set). */}}
{{- define "aurum.database.secretName" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else }}
{{- printf "%s-database" (include "aurum.fullname" .) }}
{{- end }}
{{- end }}

{{/* True when the chart renders the database Secret itself. */}}
{{- define "aurum.database.rendered" -}}
{{- if and (not .Values.database.existingSecret) (or .Values.postgresql.enabled .Values.database.url) }}true{{ end }}
{{- end }}

{{- define "aurum.database.secretKey" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecretKey }}
{{- else }}
{{- "url" }}
{{- end }}
{{- end }}

{{/* The key of the API's URL: the quickstart PostgreSQL's read-only role, else
the one URL of the database Secret. */}}
{{- define "aurum.database.apiSecretKey" -}}
{{- if and (not .Values.database.existingSecret) .Values.postgresql.enabled }}
{{- "reader-url" }}
{{- else }}
{{- include "aurum.database.secretKey" . }}
{{- end }}
{{- end }}

{{- define "aurum.jwt.secretName" -}}
{{- .Values.api.jwt.existingSecret | default (printf "%s-jwt" (include "aurum.fullname" .)) }}
{{- end }}

{{- define "aurum.jwt.secretKey" -}}
{{- if .Values.api.jwt.existingSecret }}
{{- .Values.api.jwt.existingSecretKey }}
{{- else }}
{{- "jwt-secret" }}
{{- end }}
{{- end }}

{{- define "aurum.adminSecretName" -}}
{{- printf "%s-api-admin" (include "aurum.fullname" .) }}
{{- end }}

{{- define "aurum.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "aurum.fullname" .) }}
{{- end }}

{{/* The value of a key of a Secret that exists in the cluster, or a new random
string: generated once, kept across upgrades (lookup sees the live Secret).
Call with (list $ SECRET-NAME KEY LENGTH). `helm template` has no cluster, so it
always generates. */}}
{{- define "aurum.secretValue" -}}
{{- $ctx := index . 0 -}}
{{- $name := index . 1 -}}
{{- $key := index . 2 -}}
{{- $len := index . 3 -}}
{{- $existing := lookup "v1" "Secret" $ctx.Release.Namespace $name -}}
{{- if and $existing (hasKey ($existing.data | default dict) $key) -}}
{{- index $existing.data $key | b64dec -}}
{{- else -}}
{{- randAlphaNum $len -}}
{{- end -}}
{{- end }}

{{/* HDFS --------------------------------------------------------------------- */}}

{{- define "aurum.hdfs.namenode" -}}
{{- printf "%s-hdfs-namenode" (include "aurum.fullname" .) }}
{{- end }}

{{- define "aurum.hdfs.datanode" -}}
{{- printf "%s-hdfs-datanode" (include "aurum.fullname" .) }}
{{- end }}

{{- define "aurum.hdfs.configMap" -}}
{{- printf "%s-hadoop-conf" (include "aurum.fullname" .) }}
{{- end }}

{{- define "aurum.hdfs.uri" -}}
{{- printf "hdfs://%s:%d" (include "aurum.hdfs.namenode" .) (int .Values.hdfs.namenodePort) }}
{{- end }}

{{/* Ballista ----------------------------------------------------------------- */}}

{{- define "aurum.ballista.scheduler" -}}
{{- printf "%s-ballista-scheduler" (include "aurum.fullname" .) }}
{{- end }}

{{- define "aurum.ballista.executor" -}}
{{- printf "%s-ballista-executor" (include "aurum.fullname" .) }}
{{- end }}

{{/* The `spec.engine` that sends runs to this release's scheduler. */}}
{{- define "aurum.ballista.engine" -}}
{{- printf "ballista://%s:%d" (include "aurum.ballista.scheduler" .) (int .Values.ballista.scheduler.port) }}
{{- end }}

{{/* The Hadoop client ConfigMap of the scheduler and executors: ballista.lake's,
else the chart's own with hdfs.enabled, else none. */}}
{{- define "aurum.ballista.hadoopConfigMap" -}}
{{- if .Values.ballista.lake.hadoopConfigMap }}
{{- .Values.ballista.lake.hadoopConfigMap }}
{{- else if .Values.hdfs.enabled }}
{{- include "aurum.hdfs.configMap" . }}
{{- end }}
{{- end }}

{{/* What the scheduler and executors share with the Jobs to reach the lake:
environment (call with the root context), then volume mounts and volumes. */}}
{{- define "aurum.ballista.lakeEnv" -}}
{{- if include "aurum.ballista.hadoopConfigMap" . }}
- name: HADOOP_CONF_DIR
  value: /etc/hadoop/conf
{{- end }}
{{- with .Values.jobRunner.env }}
{{ toYaml . }}
{{- end }}
{{- with .Values.ballista.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "aurum.ballista.lakeMounts" -}}
{{- if include "aurum.ballista.hadoopConfigMap" . }}
- name: hadoop-conf
  mountPath: /etc/hadoop/conf
  readOnly: true
{{- end }}
{{- if .Values.ballista.lake.persistentVolumeClaim }}
- name: lake
  mountPath: {{ .Values.ballista.lake.mountPath }}
{{- end }}
{{- end }}

{{- define "aurum.ballista.lakeVolumes" -}}
{{- with include "aurum.ballista.hadoopConfigMap" . }}
- name: hadoop-conf
  configMap:
    name: {{ . }}
{{- end }}
{{- with .Values.ballista.lake.persistentVolumeClaim }}
- name: lake
  persistentVolumeClaim:
    claimName: {{ . }}
{{- end }}
{{- end }}

{{/* The pod-level fields of the scheduler's and the executors' pods (call with
dict "ctx" . "component" .Values.ballista.scheduler|executors "sa" NAME). They run
as the job-runner's ServiceAccount, as the Jobs do, without an API token. */}}
{{- define "aurum.ballista.podSpec" -}}
serviceAccountName: {{ .sa }}
automountServiceAccountToken: false
{{- with include "aurum.imagePullSecrets" .ctx }}
{{ . }}
{{- end }}
securityContext:
  {{- include "aurum.podSecurityContext" (dict "ctx" .ctx "component" .ctx.Values.ballista) | nindent 2 }}
{{- with .component.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .component.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Checks that need more than the schema -------------------------------------- */}}
{{- define "aurum.validate" -}}
{{- if and .Values.sourceLoader.enabled (not .Values.hdfs.enabled) }}
{{- fail "aurum: sourceLoader.enabled needs hdfs.enabled (it loads the sample CSVs into the in-cluster HDFS)" }}
{{- end }}
{{- if and .Values.examples.enabled (not .Values.hdfs.enabled) (or (not .Values.examples.dataLake.lakeUri) (not .Values.examples.dataLake.sourcePath)) }}
{{- fail "aurum: examples.enabled without hdfs.enabled needs examples.dataLake.lakeUri and examples.dataLake.sourcePath" }}
{{- end }}
{{- if and .Values.ballista.enabled (eq (int .Values.ballista.executors.flightPort) (int .Values.ballista.executors.grpcPort)) }}
{{- fail "aurum: ballista.executors.flightPort and grpcPort must differ (an executor binds both)" }}
{{- end }}
{{- if gt (int .Values.hdfs.replication) (int .Values.hdfs.datanode.replicas) }}
{{- fail "aurum: hdfs.replication must not exceed hdfs.datanode.replicas" }}
{{- end }}
{{- end }}

{{/* The operator's leader Lease, one per release. */}}
{{- define "aurum.operator.leaseName" -}}
{{- printf "%s-operator" (include "aurum.fullname" .) }}
{{- end }}

{{/*
An HTTP probe of the API: given as in values, with `scheme: HTTPS` added when the
API serves TLS (api.tls.existingSecret) and the probe names no scheme.
*/}}
{{- define "aurum.api.probe" -}}
{{- $probe := deepCopy .probe -}}
{{- if and .ctx.Values.api.tls.existingSecret $probe.httpGet (not $probe.httpGet.scheme) -}}
{{- $_ := set $probe.httpGet "scheme" "HTTPS" -}}
{{- end -}}
{{- toYaml $probe -}}
{{- end }}

{{/*
The API URL the dashboard uses: dashboard.apiUrl, else the API Service of this
release (https when the API serves TLS).
*/}}
{{- define "aurum.dashboard.apiUrl" -}}
{{- $scheme := ternary "https" "http" (not (empty .Values.api.tls.existingSecret)) -}}
{{- .Values.dashboard.apiUrl | default (printf "%s://%s-api:%d" $scheme (include "aurum.fullname" .) (int .Values.api.service.port)) -}}
{{- end }}

{{/*
True (non-empty) when the dashboard reaches this release's API Service over TLS
and so mounts the CA of api.tls.existingSecret: a dashboard.apiUrl of its own
brings its own trust (dashboard.extraEnv AURUM_API_CA_FILE).
*/}}
{{- define "aurum.dashboard.trustsApiCa" -}}
{{- if and .Values.api.tls.existingSecret (not .Values.dashboard.apiUrl) }}true{{ end }}
{{- end }}

