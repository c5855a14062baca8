{{/* The chart name, `app.kubernetes.io/name`. */}}
{{- define "jobify.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The objects' base name: the release name when it contains the chart name (`jobify`). */}}
{{- define "jobify.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object. The kustomize base has the same but for the Helm ones
     (helm.sh/chart, managed-by, instance, version). */}}
{{- define "jobify.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "jobify.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ (default .Chart.AppVersion .Values.image.tag) | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: jobify
{{- end -}}

{{/* The controller pods' selector. */}}
{{- define "jobify.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jobify.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "jobify.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "jobify.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "jobify.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The config file as mounted: `config` rendered with tpl. */}}
{{- define "jobify.config" -}}
{{- tpl .Values.config . -}}
{{- end -}}

{{/* Fails the render when the config contradicts the chart: it cannot be parsed, more than
     one replica without leader election, Jobs in a namespace the Role does not cover, a
     listen port that is not the container's. jobify itself checks the rest at start-up
     (`jobify check`). */}}
{{- define "jobify.checkConfig" -}}
{{- $config := fromToml (include "jobify.config" .) -}}
{{- if hasKey $config "Error" -}}
{{- fail (printf "config is not valid TOML: %s" (get $config "Error")) -}}
{{- end -}}
{{- $election := default dict (get $config "leader_election") -}}
{{- if and (gt (int .Values.replicaCount) 1) (not (get $election "enabled")) -}}
{{- fail (printf "replicaCount is %d but the config does not set [leader_election] enabled = true: replicas would launch every job more than once (set replicaCount: 1, or enable leader election)" (int .Values.replicaCount)) -}}
{{- end -}}
{{- $kubernetes := default dict (get $config "kubernetes") -}}
{{- $namespace := default "buildkite" (get $kubernetes "namespace") -}}
{{- if and .Values.rbac.create (ne $namespace .Release.Namespace) -}}
{{- fail (printf "the config's kubernetes.namespace is %q but the release namespace is %q: the Role grants access only in the release namespace (write namespace = \"{{ .Release.Namespace }}\")" $namespace .Release.Namespace) -}}
{{- end -}}
{{- $server := default dict (get $config "server") -}}
{{- $listen := default "0.0.0.0:8080" (get $server "listen") -}}
{{- if not (hasSuffix (printf ":%d" (int .Values.containerPort)) $listen) -}}
{{- fail (printf "the config's server.listen is %q but containerPort is %d: the probes and the metrics would miss it" $listen (int .Values.containerPort)) -}}
{{- end -}}
{{- end -}}
