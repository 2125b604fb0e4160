{{/*
Names and labels.
*/}}
{{- define "floe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "floe.fullname" -}}
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

{{/* A name with a suffix, kept within 63 characters. */}}
{{- define "floe.suffixed" -}}
{{- $root := index . 0 }}{{- $suffix := index . 1 }}
{{- printf "%s-%s" (include "floe.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}

{{- define "floe.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "floe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "floe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "floe.labels" -}}
helm.sh/chart: {{ include "floe.chart" . }}
{{ include "floe.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: floe
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "floe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "floe.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "floe.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The database in use: "sqlite" or "postgresql" (anything else fails).
*/}}
{{- define "floe.dbType" -}}
{{- $t := .Values.database.type | default "sqlite" }}
{{- if not (has $t (list "sqlite" "postgresql")) }}
{{- fail (printf "database.type must be \"sqlite\" or \"postgresql\", not %q" $t) }}
{{- end }}
{{- $t }}
{{- end }}

{{- define "floe.isPostgres" -}}
{{- if eq (include "floe.dbType" .) "postgresql" }}true{{ end }}
{{- end }}

{{/* Where things live in the pod. */}}
{{- define "floe.configDir" -}}/etc/floe{{- end }}
{{- define "floe.dataDir" -}}/var/lib/floe{{- end }}
{{- define "floe.natsCredsDir" -}}/var/run/secrets/floe/nats{{- end }}
{{- define "floe.natsCredsFile" -}}/var/run/secrets/floe/nats/nats.creds{{- end }}
{{- define "floe.httpPort" -}}8181{{- end }}
{{- define "floe.s3Port" -}}9000{{- end }}

{{/* The metrics' own port, or nothing when metrics are served on the catalog's listener. */}}
{{- define "floe.metricsPort" -}}
{{- if and .Values.metrics.enabled .Values.metrics.port }}
{{- int64 .Values.metrics.port }}
{{- end }}
{{- end }}

{{/* The Service's port name Prometheus scrapes. */}}
{{- define "floe.metricsPortName" -}}
{{- if include "floe.metricsPort" . }}metrics{{ else }}http{{ end }}
{{- end }}

{{/*
The URL of an Ingress's first host (https when the ingress has TLS), or "".
*/}}
{{- define "floe.ingressUrl" -}}
{{- if and .enabled .hosts }}
{{- $host := (first .hosts).host }}
{{- if $host }}
{{- printf "%s://%s" (ternary "https" "http" (not (empty .tls))) $host }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The chart's Secret holds these keys (only the ones given inline). Every sensitive value has one
entry: [env variable, inline value, existing Secret name, key in it, key in the chart's Secret].
Returns JSON: a list of {env, value, secret, key, chartKey}.
*/}}
{{- define "floe.sensitiveValues" -}}
{{- $v := .Values }}
{{- $out := list }}
{{- $pg := $v.database.postgresql }}
{{- if include "floe.isPostgres" . }}
{{- if and $pg.existingSecret $pg.existingSecretKeys.url }}
{{- $out = append $out (dict "env" "FLOE__DATABASE__URL" "secret" $pg.existingSecret "key" $pg.existingSecretKeys.url) }}
{{- else if $pg.url }}
{{- $out = append $out (dict "env" "FLOE__DATABASE__URL" "value" $pg.url "chartKey" "database-url") }}
{{- else if and $pg.existingSecret $pg.existingSecretKeys.password }}
{{- $out = append $out (dict "env" "PGPASSWORD" "secret" $pg.existingSecret "key" $pg.existingSecretKeys.password) }}
{{- else if $pg.password }}
{{- $out = append $out (dict "env" "PGPASSWORD" "value" $pg.password "chartKey" "database-password") }}
{{- end }}
{{- end }}
{{- $s := $v.secrets }}
{{- if and $s.existingSecret $s.existingSecretKeys.encryption_key }}
{{- $out = append $out (dict "env" "FLOE__SECRETS__ENCRYPTION_KEY" "secret" $s.existingSecret "key" $s.existingSecretKeys.encryption_key) }}
{{- else if $s.encryption_key }}
{{- $out = append $out (dict "env" "FLOE__SECRETS__ENCRYPTION_KEY" "value" $s.encryption_key "chartKey" "encryption-key") }}
{{- end }}
{{- if eq (toString $s.backend) "vault" }}
{{- $vault := $s.vault }}
{{- range $floeKey, $chartKey := dict "token" "vault-token" "role_id" "vault-role-id" "secret_id" "vault-secret-id" }}
{{- $env := printf "FLOE__SECRETS__VAULT__%s" (upper $floeKey) }}
{{- $existingKey := get $vault.existingSecretKeys $floeKey }}
{{- if and $vault.existingSecret $existingKey }}
{{- $out = append $out (dict "env" $env "secret" $vault.existingSecret "key" $existingKey) }}
{{- else if get $vault $floeKey }}
{{- $out = append $out (dict "env" $env "value" (get $vault $floeKey) "chartKey" $chartKey) }}
{{- end }}
{{- end }}
{{- end }}
{{- $fga := $v.authz.openfga }}
{{- if eq (toString $v.authz.backend) "openfga" }}
{{- if and $fga.existingSecret $fga.existingSecretKeys.api_token }}
{{- $out = append $out (dict "env" "FLOE__AUTHZ__OPENFGA__API_TOKEN" "secret" $fga.existingSecret "key" $fga.existingSecretKeys.api_token) }}
{{- else if $fga.api_token }}
{{- $out = append $out (dict "env" "FLOE__AUTHZ__OPENFGA__API_TOKEN" "value" $fga.api_token "chartKey" "openfga-api-token") }}
{{- end }}
{{- end }}
{{- if has "nats" $v.events.backends }}
{{- $nats := $v.events.nats }}
{{- range $floeKey, $chartKey := dict "token" "nats-token" "password" "nats-password" "nkey_seed" "nats-nkey-seed" }}
{{- $env := printf "FLOE__EVENTS__NATS__%s" (upper $floeKey) }}
{{- $existingKey := get $nats.existingSecretKeys $floeKey }}
{{- if and $nats.existingSecret $existingKey }}
{{- $out = append $out (dict "env" $env "secret" $nats.existingSecret "key" $existingKey) }}
{{- else if get $nats $floeKey }}
{{- $out = append $out (dict "env" $env "value" (get $nats $floeKey) "chartKey" $chartKey) }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* The IdP client secret of the test pod, the same shape as above ({} when not used). */}}
{{- define "floe.testClientSecret" -}}
{{- $o := .Values.tests.auth.oidc }}
{{- if and .Values.tests.enabled (eq .Values.tests.auth.type "oidc") }}
{{- if and $o.existingSecret $o.existingSecretKeys.clientSecret }}
{{- toJson (dict "env" "OIDC_CLIENT_SECRET" "secret" $o.existingSecret "key" $o.existingSecretKeys.clientSecret) }}
{{- else if $o.clientSecret }}
{{- toJson (dict "env" "OIDC_CLIENT_SECRET" "value" $o.clientSecret "chartKey" "oidc-client-secret") }}
{{- else }}
{{- fail "tests.auth.type \"oidc\" needs tests.auth.oidc.clientSecret or tests.auth.oidc.existingSecret" }}
{{- end }}
{{- else }}
{{- toJson dict }}
{{- end }}
{{- end }}

{{/* The data of the chart's Secret: JSON {key: value} of every value given inline. */}}
{{- define "floe.secretData" -}}
{{- $data := dict }}
{{- range (include "floe.sensitiveValues" . | fromJsonArray) }}
{{- if .chartKey }}
{{- $_ := set $data .chartKey .value }}
{{- end }}
{{- end }}
{{- $test := include "floe.testClientSecret" . | fromJson }}
{{- if $test.chartKey }}
{{- $_ := set $data $test.chartKey $test.value }}
{{- end }}
{{- toJson $data }}
{{- end }}

{{/*
The `env` entries of the sensitive values, from the chart's Secret named `secretName` or from
the user's. Call with (dict "root" $ "secretName" NAME).
*/}}
{{- define "floe.secretEnv" -}}
{{- $secretName := .secretName }}
{{- range (include "floe.sensitiveValues" .root | fromJsonArray) }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret | default $secretName }}
      key: {{ .key | default .chartKey }}
{{- end }}
{{- end }}

{{/*
Floe's container environment: the configuration file, the secrets, then the user's.
Call with (dict "root" $ "secretName" NAME).
*/}}
{{- define "floe.env" -}}
- name: FLOE_CONFIG
  value: {{ printf "%s/floe.toml" (include "floe.configDir" .root) }}
{{- /* What the pod's layout decides: set here, where it also wins over the image's defaults. */}}
- name: FLOE__SERVER__LISTEN
  value: {{ printf "0.0.0.0:%s" (include "floe.httpPort" .root) | quote }}
{{- if .root.Values.gateway.enabled }}
- name: FLOE__GATEWAY__LISTEN
  value: {{ printf "0.0.0.0:%s" (include "floe.s3Port" .root) | quote }}
{{- end }}
{{- with include "floe.metricsPort" .root }}
- name: FLOE__METRICS__LISTEN
  value: {{ printf "0.0.0.0:%s" . | quote }}
{{- end }}
- name: FLOE__STORAGE__DATA_DIR
  value: {{ include "floe.dataDir" .root | quote }}
{{- include "floe.secretEnv" . }}
{{- with .root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "floe.envFrom" -}}
{{- with .Values.extraEnvFrom }}
envFrom:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Floe's configuration as a dict (JSON): the values' Floe sections without the chart's own keys and
the sensitive ones, plus what the chart derives (public URLs, the database URL without password).
*/}}
{{- define "floe.config" -}}
{{- $v := .Values }}
{{- $c := dict }}
{{- $fullname := include "floe.fullname" . }}
{{- $svcBase := printf "%s.%s.svc" $fullname .Release.Namespace }}

{{- /* server */}}
{{- $server := deepCopy $v.server }}
{{- if not $server.public_url }}
{{- $url := include "floe.ingressUrl" $v.ingress }}
{{- $_ := set $server "public_url" (default (printf "http://%s:%d" $svcBase (int64 $v.service.port)) $url) }}
{{- end }}
{{- $_ := set $c "server" $server }}

{{- /* storage */}}
{{- $storage := omit (deepCopy $v.storage) "dataVolume" }}
{{- $_ := set $c "storage" $storage }}

{{- /* database */}}
{{- $db := omit (deepCopy $v.database) "type" "sqlite" "postgresql" }}
{{- if include "floe.isPostgres" . }}
{{- $pg := $v.database.postgresql }}
{{- $urlFromSecret := or $pg.url (and $pg.existingSecret $pg.existingSecretKeys.url) }}
{{- if not $urlFromSecret }}
{{- if not $pg.host }}
{{- fail "database.type \"postgresql\" needs database.postgresql.host (with user and a password), database.postgresql.url, or database.postgresql.existingSecret with existingSecretKeys.url" }}
{{- end }}
{{- $query := list }}
{{- if $pg.sslMode }}
{{- $query = append $query (printf "sslmode=%s" (urlquery $pg.sslMode)) }}
{{- end }}
{{- range $k, $val := $pg.parameters }}
{{- $query = append $query (printf "%s=%s" (urlquery $k) (urlquery (toString $val))) }}
{{- end }}
{{- $url := printf "postgres://%s@%s:%d/%s" (urlquery $pg.user) $pg.host (int64 $pg.port) (urlquery $pg.database) }}
{{- if $query }}
{{- $url = printf "%s?%s" $url (join "&" $query) }}
{{- end }}
{{- $_ := set $db "url" $url }}
{{- end }}
{{- end }}
{{- if and (include "floe.isPostgres" .) (not $v.migration.enabled) (kindIs "invalid" $db.auto_migrate) }}
{{- /* No migration job: each pod migrates at start (PostgreSQL serializes it with a lock). */}}
{{- $_ := set $db "auto_migrate" true }}
{{- end }}
{{- $_ := set $c "database" $db }}

{{- /* secrets */}}
{{- $secrets := omit (deepCopy $v.secrets) "encryption_key" "existingSecret" "existingSecretKeys" "vault" }}
{{- if eq (toString $v.secrets.backend) "vault" }}
{{- $_ := set $secrets "vault" (omit (deepCopy $v.secrets.vault) "token" "role_id" "secret_id" "existingSecret" "existingSecretKeys") }}
{{- end }}
{{- $_ := set $c "secrets" $secrets }}

{{- $_ := set $c "log" (deepCopy $v.log) }}
{{- $_ := set $c "bootstrap" (deepCopy $v.bootstrap) }}
{{- $_ := set $c "authn" (deepCopy $v.authn) }}

{{- /* authz */}}
{{- $authz := omit (deepCopy $v.authz) "openfga" }}
{{- if eq (toString $v.authz.backend) "openfga" }}
{{- $_ := set $authz "openfga" (omit (deepCopy $v.authz.openfga) "api_token" "existingSecret" "existingSecretKeys") }}
{{- end }}
{{- $_ := set $c "authz" $authz }}

{{- /* events */}}
{{- $events := omit (deepCopy $v.events) "nats" }}
{{- if has "nats" $v.events.backends }}
{{- $nats := omit (deepCopy $v.events.nats) "token" "password" "nkey_seed" "credsSecret" "existingSecret" "existingSecretKeys" }}
{{- if $v.events.nats.credsSecret.name }}
{{- $_ := set $nats "creds_file" (include "floe.natsCredsFile" .) }}
{{- end }}
{{- $_ := set $events "nats" $nats }}
{{- end }}
{{- $_ := set $c "events" $events }}

{{- /* gateway */}}
{{- $gateway := omit (deepCopy $v.gateway) "service" "ingress" }}
{{- if and $v.gateway.enabled (not $gateway.public_url) }}
{{- $url := include "floe.ingressUrl" $v.gateway.ingress }}
{{- $_ := set $gateway "public_url" (default (printf "http://%s:%d" $svcBase (int64 $v.gateway.service.port)) $url) }}
{{- end }}
{{- $_ := set $c "gateway" $gateway }}

{{- /* metrics */}}
{{- $metrics := omit (deepCopy $v.metrics) "port" "serviceMonitor" }}
{{- $_ := set $c "metrics" $metrics }}

{{- $c = mergeOverwrite $c (deepCopy $v.extraConfig) }}
{{- toJson $c }}
{{- end }}

{{/*
TOML from a dict: scalars and arrays of scalars first, then sub-tables ([a.b]) and arrays of
tables ([[a.b]]). Null values and empty tables are left out (Floe's default applies). Whole
numbers are written as integers (Helm reads every number as a float; Floe wants integers).
Call with (dict "data" DICT "path" LIST).
*/}}
{{- define "floe.toml.value" -}}
{{- $v := . }}
{{- if kindIs "string" $v }}{{ toJson $v }}
{{- else if kindIs "bool" $v }}{{ ternary "true" "false" $v }}
{{- else if or (kindIs "float64" $v) (kindIs "float32" $v) }}
{{- if eq (float64 $v) (floor $v) }}{{ printf "%d" (int64 $v) }}{{ else }}{{ $v }}{{ end }}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) (kindIs "int32" $v) (kindIs "uint64" $v) }}{{ printf "%d" $v }}
{{- else if kindIs "slice" $v }}
{{- $items := list }}
{{- range $v }}{{ if not (kindIs "invalid" .) }}{{ $items = append $items (include "floe.toml.value" .) }}{{ end }}{{ end }}
{{- printf "[%s]" (join ", " $items) }}
{{- else }}
{{- fail (printf "floe.toml: cannot write a %s value" (kindOf $v)) }}
{{- end }}
{{- end }}

{{- define "floe.toml.key" -}}
{{- if not (regexMatch "^[A-Za-z0-9_-]+$" .) }}
{{- fail (printf "floe.toml: %q is not a setting name" .) }}
{{- end }}
{{- . }}
{{- end }}

{{- define "floe.toml.isTableArray" -}}
{{- if and (kindIs "slice" .) (gt (len .) 0) }}
{{- $all := true }}
{{- range . }}{{ if not (kindIs "map" .) }}{{ $all = false }}{{ end }}{{ end }}
{{- if $all }}true{{ end }}
{{- end }}
{{- end }}

{{- define "floe.toml.table" -}}
{{- $data := .data }}{{- $path := .path }}
{{- range $k, $val := $data }}
{{- if not (or (kindIs "invalid" $val) (kindIs "map" $val) (include "floe.toml.isTableArray" $val)) }}
{{ include "floe.toml.key" $k }} = {{ include "floe.toml.value" $val }}
{{- end }}
{{- end }}
{{- range $k, $val := $data }}
{{- $sub := append $path (include "floe.toml.key" $k) }}
{{- if and (kindIs "map" $val) (include "floe.toml.hasContent" $val) }}
{{ printf "\n[%s]" (join "." $sub) }}
{{- include "floe.toml.table" (dict "data" $val "path" $sub) }}
{{- else if include "floe.toml.isTableArray" $val }}
{{- range $val }}
{{ printf "\n[[%s]]" (join "." $sub) }}
{{- include "floe.toml.table" (dict "data" . "path" $sub) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* "true" when a table holds anything that would be written. */}}
{{- define "floe.toml.hasContent" -}}
{{- range $k, $val := . }}
{{- if kindIs "map" $val }}{{ include "floe.toml.hasContent" $val }}
{{- else if not (kindIs "invalid" $val) }}true
{{- end }}
{{- end }}
{{- end }}

{{/* floe.toml. */}}
{{- define "floe.toml" -}}
# floe.toml, written by the Helm chart from its values (Floe's README lists every setting).
# Not here: secrets, the listen addresses and the data directory; they come as FLOE__SECTION__KEY
# environment variables of the container (which win over this file).
{{- include "floe.toml.table" (dict "data" (include "floe.config" . | fromJson) "path" list) }}
{{- end }}

{{/*
Checks of combinations Floe or Kubernetes would refuse later, made while rendering so that the
message names the value to change.
*/}}
{{- define "floe.validate" -}}
{{- $v := .Values }}
{{- $pg := include "floe.isPostgres" . }}
{{- if not $pg }}
{{- if gt (int64 $v.replicaCount) 1 }}
{{- fail (printf "database.type \"sqlite\" (embedded) serves from one pod only, but replicaCount is %d: set replicaCount to 1, or use database.type \"postgresql\" for more replicas" (int64 $v.replicaCount)) }}
{{- end }}
{{- if $v.autoscaling.enabled }}
{{- fail "database.type \"sqlite\" (embedded) serves from one pod only, so autoscaling.enabled cannot be true: use database.type \"postgresql\" to scale" }}
{{- end }}
{{- else }}
{{- if not (or $v.secrets.encryption_key (and $v.secrets.existingSecret $v.secrets.existingSecretKeys.encryption_key)) }}
{{- fail "database.type \"postgresql\" needs secrets.encryption_key (openssl rand -base64 32) or secrets.existingSecret: every replica must share the key that encrypts stored credentials" }}
{{- end }}
{{- $pgv := $v.database.postgresql }}
{{- if and (not $pgv.url) (not (and $pgv.existingSecret $pgv.existingSecretKeys.url)) (not $pgv.password) (not (and $pgv.existingSecret $pgv.existingSecretKeys.password)) }}
{{- fail "database.type \"postgresql\" needs a password: database.postgresql.password, database.postgresql.existingSecret, or a whole database.postgresql.url" }}
{{- end }}
{{- end }}
{{- if not (has (toString $v.secrets.backend) (list "database" "vault")) }}
{{- fail (printf "secrets.backend must be \"database\" or \"vault\", not %q" (toString $v.secrets.backend)) }}
{{- end }}
{{- if eq (toString $v.secrets.backend) "vault" }}
{{- $vault := $v.secrets.vault }}
{{- $hasExisting := and $vault.existingSecret (or $vault.existingSecretKeys.token $vault.existingSecretKeys.secret_id) }}
{{- if not (or $vault.token $vault.secret_id $vault.token_file $vault.secret_id_file $hasExisting) }}
{{- fail "secrets.backend \"vault\" needs secrets.vault.token, or secrets.vault.role_id with secret_id (inline, from secrets.vault.existingSecret, or a *_file you mount)" }}
{{- end }}
{{- end }}
{{- $backend := toString $v.authz.backend }}
{{- if and (has $backend (list "builtin" "openfga")) (empty $v.authn.providers) }}
{{- fail (printf "authz.backend %q checks users' permissions, so it needs authn.providers" $backend) }}
{{- end }}
{{- if and (eq $backend "openfga") (not $v.authz.openfga.endpoint) }}
{{- fail "authz.backend \"openfga\" needs authz.openfga.endpoint (OpenFGA's gRPC address, e.g. http://openfga:8081)" }}
{{- end }}
{{- with include "floe.metricsPort" . }}
{{- if has (int64 .) (list (int64 (include "floe.httpPort" $)) (int64 (include "floe.s3Port" $))) }}
{{- fail (printf "metrics.port %s is taken by the catalog (8181) or the gateway (9000): pick another" .) }}
{{- end }}
{{- end }}
{{- if and $v.podDisruptionBudget.enabled (not (kindIs "invalid" $v.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" $v.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: give minAvailable or maxUnavailable, not both (set the other to null)" }}
{{- end }}
{{- if and $v.gateway.ingress.enabled (not $v.gateway.enabled) }}
{{- fail "gateway.ingress.enabled needs gateway.enabled" }}
{{- end }}
{{- if and $v.metrics.serviceMonitor.enabled (not $v.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled" }}
{{- end }}
{{- if not (has $v.tests.auth.type (list "none" "kubernetes" "oidc")) }}
{{- fail (printf "tests.auth.type must be none, kubernetes or oidc, not %q" $v.tests.auth.type) }}
{{- end }}
{{- end }}

{{/* Whether Floe's pods mount the service-account token. */}}
{{- define "floe.automountToken" -}}
{{- if kindIs "bool" .Values.serviceAccount.automountToken }}
{{- .Values.serviceAccount.automountToken }}
{{- else }}
{{- $k8s := false }}
{{- range .Values.authn.providers }}{{ if eq (toString .kind) "kubernetes" }}{{ $k8s = true }}{{ end }}{{ end }}
{{- $k8s }}
{{- end }}
{{- end }}

{{/* The audience of the test pod's projected token. */}}
{{- define "floe.testAudience" -}}
{{- $aud := .Values.tests.auth.kubernetes.audience }}
{{- if not $aud }}
{{- range .Values.authn.providers }}
{{- if and (not $aud) (eq (toString .kind) "kubernetes") .audiences }}{{ $aud = first .audiences }}{{ end }}
{{- end }}
{{- end }}
{{- if not $aud }}
{{- fail "tests.auth.type \"kubernetes\" needs tests.auth.kubernetes.audience or a kubernetes provider in authn.providers" }}
{{- end }}
{{- $aud }}
{{- end }}

{{/*
Volumes and mounts shared by Floe's pods and the migration job. Call with
(dict "root" $ "configMap" NAME "data" BOOL) — data: mount the data volume.
*/}}
{{- define "floe.volumeMounts" -}}
- name: config
  mountPath: {{ include "floe.configDir" .root }}
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .data }}
- name: data
  mountPath: {{ include "floe.dataDir" .root }}
{{- end }}
{{- if and (has "nats" .root.Values.events.backends) .root.Values.events.nats.credsSecret.name }}
- name: nats-creds
  mountPath: {{ include "floe.natsCredsDir" .root }}
  readOnly: true
{{- end }}
{{- with .root.Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "floe.volumes" -}}
{{- $v := .root.Values -}}
- name: config
  configMap:
    name: {{ .configMap }}
- name: tmp
  emptyDir: {}
{{- if .data }}
{{- if not (include "floe.isPostgres" .root) }}
{{- if $v.database.sqlite.persistence.enabled }}
- name: data
  persistentVolumeClaim:
    claimName: {{ $v.database.sqlite.persistence.existingClaim | default (include "floe.suffixed" (list .root "data")) }}
{{- else }}
- name: data
  emptyDir: {}
{{- end }}
{{- else if $v.storage.dataVolume }}
- name: data
  {{- toYaml $v.storage.dataVolume | nindent 2 }}
{{- else }}
- name: data
  emptyDir: {}
{{- end }}
{{- end }}
{{- if and (has "nats" $v.events.backends) $v.events.nats.credsSecret.name }}
- name: nats-creds
  secret:
    secretName: {{ $v.events.nats.credsSecret.name }}
    defaultMode: 0440
    items:
      - key: {{ $v.events.nats.credsSecret.key }}
        path: nats.creds
{{- end }}
{{- with $v.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Scheduling shared by Floe's pods and the migration job. */}}
{{- define "floe.scheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* An IntOrString value: "50%" stays a string, numbers become integers. */}}
{{- define "floe.intOrString" -}}
{{- if kindIs "string" . }}{{ . | quote }}{{ else }}{{ int64 . }}{{ end }}
{{- end }}

{{/* Annotations of the migration job's hook objects. Call with (list $ WEIGHT). */}}
{{- define "floe.migrationHook" -}}
{{- $root := index . 0 -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ index . 1 | quote }}
helm.sh/hook-delete-policy: {{ $root.Values.migration.hookDeletePolicy }}
{{- end }}

{{- define "floe.migrationEnabled" -}}
{{- if and .Values.migration.enabled (include "floe.isPostgres" .) }}true{{ end }}
{{- end }}

{{/* The migration job's service account: a hook copy of Floe's, or the existing one. */}}
{{- define "floe.migrationServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- include "floe.suffixed" (list . "migrate") }}
{{- else }}
{{- include "floe.serviceAccountName" . }}
{{- end }}
{{- end }}
