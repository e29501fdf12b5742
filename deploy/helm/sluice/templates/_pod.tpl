{{/* The pod template both workloads share; the mode decides the few differences. */}}
{{- define "sluice.podTemplate" -}}
{{- $mode := include "sluice.mode" . -}}
metadata:
  labels:
    {{- include "sluice.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if or .Values.podAnnotations .Values.restartOnConfigChange }}
  annotations:
    {{- if .Values.restartOnConfigChange }}
    checksum/config: {{ include "sluice.config" . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
spec:
  serviceAccountName: {{ include "sluice.serviceAccountName" . }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    seccompProfile:
      type: RuntimeDefault
  {{- if eq $mode "node-local" }}
  initContainers:
    # kubelet creates the hostPath directory root-owned 0755; sluice (UID 65532)
    # must create its socket there. Only this container is root, with CAP_CHOWN alone.
    - name: socket-dir
      image: "{{ .Values.nodeLocal.initImage.repository }}:{{ .Values.nodeLocal.initImage.tag }}"
      imagePullPolicy: {{ .Values.nodeLocal.initImage.pullPolicy }}
      command: ["chown", "65532:65532", {{ .Values.nodeLocal.hostDir | quote }}]
      securityContext:
        runAsNonRoot: false
        runAsUser: 0
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: [ALL]
          add: [CHOWN]
      volumeMounts:
        - name: socket-dir
          mountPath: {{ .Values.nodeLocal.hostDir }}
  {{- end }}
  containers:
    - name: sluice
      image: {{ include "sluice.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["run", "--config", "/etc/sluice/sluice.yaml"]
      env:
        # The status Lease's holder identity and namespace (the Role for Leases is
        # in the release namespace).
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
      ports:
        {{- if eq $mode "gateway" }}
        - name: http
          containerPort: {{ .Values.gateway.port }}
          protocol: TCP
        {{- if .Values.gateway.https.enabled }}
        - name: https
          containerPort: {{ .Values.gateway.https.port }}
          protocol: TCP
        {{- end }}
        {{- end }}
        - name: admin
          containerPort: {{ .Values.admin.port }}
          protocol: TCP
      livenessProbe:
        httpGet:
          path: /healthz
          port: admin
        periodSeconds: 10
        failureThreshold: 3
      readinessProbe:
        # Ready after the first Kubernetes sync: no traffic (gateway) or no next
        # node in the rollout (node-local) before sluice knows its routes.
        httpGet:
          path: /readyz
          port: admin
        periodSeconds: 5
        failureThreshold: 2
      {{- if and (eq $mode "gateway") (gt (int .Values.gateway.preStopSleepSeconds) 0) }}
      lifecycle:
        # The image has no shell: the kubelet's own sleep action, not `sh -c sleep`.
        preStop:
          sleep:
            seconds: {{ .Values.gateway.preStopSleepSeconds }}
      {{- end }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: [ALL]
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: config
          mountPath: /etc/sluice
          readOnly: true
        - name: secrets
          mountPath: /run/sluice/kubernetes
        {{- if eq $mode "node-local" }}
        - name: socket-dir
          mountPath: {{ .Values.nodeLocal.hostDir }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "sluice.fullname" . }}
    - name: secrets
      emptyDir:
        medium: Memory
        sizeLimit: {{ .Values.secretsDir.sizeLimit }}
    {{- if eq $mode "node-local" }}
    - name: socket-dir
      hostPath:
        path: {{ .Values.nodeLocal.hostDir }}
        type: DirectoryOrCreate
    {{- end }}
  {{- if eq $mode "gateway" }}
  topologySpreadConstraints:
    # One replica per node where possible, so a node loss takes out one replica.
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "sluice.selectorLabels" . | nindent 10 }}
      # Spread each rollout's new pods by themselves, not against the old ones.
      matchLabelKeys: [pod-template-hash]
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
