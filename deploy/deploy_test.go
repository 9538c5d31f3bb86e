package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/profiled/profiled/internal/testenv"
)

// Paths are relative to this package's directory, where go test runs.
const (
	chartDir       = "helm/profiled"
	fullValuesFile = "helm/profiled/ci/full-values.yaml"
	alertsFile     = "helm/profiled/files/profiled-alerts.yaml"
	dashboardFile  = "helm/profiled/files/profiled-dashboard.json"
)

// The secret settings: the chart keeps them out of the ConfigMap. A Redis
// URL can carry a password.
var secretSettings = []string{"PROFILED_REDIS_URL", "PROFILED_REDIS_PASSWORD", "PROFILED_KAFKA_SASL_PASSWORD", "PROFILED_API_TOKEN"}

// looksSecret catches a new secret setting that secretSettings (and so the
// chart's Secret) does not know yet.
var looksSecret = regexp.MustCompile(`PASSWORD|TOKEN|SECRET|CREDENTIAL`)

// missingTool skips a test whose tool is not installed, except under CI,
// where a skipped check would pass silently.
func missingTool(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: required; make deploy-check provides it)", msg)
	}
	t.Skipf("%s; make deploy-check provides it", msg)
}

// helm finds the helm binary: $PROFILED_HELM, the Makefile's bin/tools/helm,
// or the PATH.
func helm(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("PROFILED_HELM"); h != "" {
		return h
	}
	if abs, err := filepath.Abs("../bin/tools/helm"); err == nil {
		if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
			return abs
		}
	}
	if h, err := exec.LookPath("helm"); err == nil {
		return h
	}
	missingTool(t, "helm not found (PROFILED_HELM, bin/tools/helm or PATH)")
	return ""
}

// renderHelm runs helm template with the given extra arguments.
func renderHelm(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(helm(t), append([]string{"template", "profiled", chartDir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// fullRender is the chart rendered with ci/full-values.yaml (every optional
// piece on): $PROFILED_DEPLOY_RENDERED when make deploy-check rendered it,
// else rendered here.
func fullRender(t *testing.T) manifests {
	t.Helper()
	if p := os.Getenv("PROFILED_DEPLOY_RENDERED"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("PROFILED_DEPLOY_RENDERED: %v", err)
		}
		return parseManifests(t, b)
	}
	return parseManifests(t, renderHelm(t, "-f", fullValuesFile))
}

// manifests are rendered Kubernetes objects, by kind.
type manifests map[string][]map[string]any

func parseManifests(t *testing.T, b []byte) manifests {
	t.Helper()
	m := manifests{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("rendered manifests: %v", err)
		}
		if doc == nil {
			continue
		}
		kind, _ := doc["kind"].(string)
		if kind == "" {
			t.Fatalf("rendered object without kind: %v", doc)
		}
		m[kind] = append(m[kind], doc)
	}
	return m
}

// one returns the single object of a kind.
func (m manifests) one(t *testing.T, kind string) map[string]any {
	t.Helper()
	if n := len(m[kind]); n != 1 {
		t.Fatalf("want one %s, rendered %d", kind, n)
	}
	return m[kind][0]
}

// configMap returns the ConfigMap that holds the PROFILED_* settings.
func (m manifests) configMap(t *testing.T) map[string]any {
	t.Helper()
	for _, cm := range m["ConfigMap"] {
		if _, ok := dig(cm, "data", "PROFILED_KAFKA_BROKERS"); ok {
			return dig1(t, cm, "data").(map[string]any)
		}
	}
	t.Fatal("no ConfigMap with PROFILED_KAFKA_BROKERS")
	return nil
}

func (m manifests) container(t *testing.T) map[string]any {
	t.Helper()
	cs := dig1(t, m.one(t, "Deployment"), "spec", "template", "spec", "containers").([]any)
	if len(cs) != 1 {
		t.Fatalf("want one container, got %d", len(cs))
	}
	return cs[0].(map[string]any)
}

// dig walks maps by key and lists by index.
func dig(v any, path ...string) (any, bool) {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[p]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

func dig1(t *testing.T, v any, path ...string) any {
	t.Helper()
	x, ok := dig(v, path...)
	if !ok {
		t.Fatalf("missing %s", strings.Join(path, "."))
	}
	return x
}

// values are the chart's values.yaml with ci/full-values.yaml over it.
func values(t *testing.T) map[string]any {
	t.Helper()
	base := readYAML(t, filepath.Join(chartDir, "values.yaml"))
	merge(base, readYAML(t, fullValuesFile))
	return base
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// merge overlays src on dst the way helm merges values files.
func merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// TestMain removes the profiled binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBuilds()
	os.Exit(code)
}

// settingNames are the PROFILED_* variables `profiled --help` lists.
func settingNames(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command(testenv.Profiled(t), "--help")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("profiled --help: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	var names []string
	for _, n := range regexp.MustCompile(`\bPROFILED_[A-Z0-9_]+\b`).FindAllString(string(out), -1) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	// The contract's required names; fewer means --help changed shape.
	if len(names) < 20 || !seen["PROFILED_KAFKA_BROKERS"] || !seen["PROFILED_SHUTDOWN_TIMEOUT"] {
		t.Fatalf("profiled --help listed only %v", names)
	}
	return names
}

func TestChartCoversEverySetting(t *testing.T) {
	m := fullRender(t)
	data := m.configMap(t)
	env := map[string]map[string]any{}
	for _, e := range dig1(t, m.container(t), "env").([]any) {
		e := e.(map[string]any)
		env[e["name"].(string)] = e
	}
	isSecret := map[string]bool{}
	for _, name := range secretSettings {
		isSecret[name] = true
	}
	for _, name := range settingNames(t) {
		if looksSecret.MatchString(name) && !isSecret[name] {
			t.Errorf("%s looks secret: add it to the chart's Secret and to secretSettings", name)
		}
		_, inConfigMap := data[name]
		_, inEnv := env[name]
		if !inConfigMap && !inEnv {
			t.Errorf("%s (from profiled --help) is set by neither the ConfigMap nor the container's env", name)
		}
	}
	secretName := ""
	for _, name := range secretSettings {
		if _, ok := data[name]; ok {
			t.Errorf("%s is secret but in the ConfigMap", name)
		}
		ref, ok := dig(env[name], "valueFrom", "secretKeyRef")
		if !ok {
			t.Errorf("%s is not read from a Secret", name)
			continue
		}
		secretName, _ = ref.(map[string]any)["name"].(string)
	}
	secret := m.one(t, "Secret")
	if dig1(t, secret, "metadata", "name") != secretName {
		t.Errorf("the env reads Secret %q, the chart renders %q", secretName, dig1(t, secret, "metadata", "name"))
	}
	for _, name := range secretSettings {
		if _, ok := dig(secret, "stringData", name); !ok {
			t.Errorf("the chart's Secret has no %s", name)
		}
	}
	if v := data["PROFILED_EMBEDDED"]; v != "false" {
		t.Errorf("PROFILED_EMBEDDED = %v; a pod must never run the embedded broker", v)
	}
	if v, ok := data["PROFILED_EMBEDDED_SAMPLE"]; ok && v != "" {
		t.Errorf("PROFILED_EMBEDDED_SAMPLE = %v", v)
	}
	envFrom := dig1(t, m.container(t), "envFrom", "0", "configMapRef", "name")
	var cmName any
	for _, cm := range m["ConfigMap"] {
		if _, ok := dig(cm, "data", "PROFILED_KAFKA_BROKERS"); ok {
			cmName = dig1(t, cm, "metadata", "name")
		}
	}
	if envFrom != cmName {
		t.Errorf("container envFrom %v, settings ConfigMap %v", envFrom, cmName)
	}
}

// checkDeployment asserts what every rendering must hold: probes, resources,
// a locked-down security context and a grace period above the shutdown
// timeout.
func checkDeployment(t *testing.T, m manifests) {
	t.Helper()
	dep := m.one(t, "Deployment")
	pod := dig1(t, dep, "spec", "template", "spec").(map[string]any)
	c := m.container(t)
	data := m.configMap(t)

	ports := map[string]int{}
	for _, p := range dig1(t, c, "ports").([]any) {
		ports[p.(map[string]any)["name"].(string)] = p.(map[string]any)["containerPort"].(int)
	}
	httpPort, ok := ports["http"]
	if !ok {
		t.Fatal("no container port named http")
	}
	if want := fmt.Sprintf(":%d", httpPort); data["PROFILED_HTTP_ADDR"] != want {
		t.Errorf("PROFILED_HTTP_ADDR %v, container port http %d", data["PROFILED_HTTP_ADDR"], httpPort)
	}
	if addr := data["PROFILED_API_ADDR"]; addr != "" {
		if api, ok := ports["api"]; !ok || addr != fmt.Sprintf(":%d", api) {
			t.Errorf("PROFILED_API_ADDR %v, container ports %v", addr, ports)
		}
	} else if _, ok := ports["api"]; ok {
		t.Error("container port api open while the read API is off")
	}
	for probe, path := range map[string]string{"startupProbe": "/livez", "livenessProbe": "/livez", "readinessProbe": "/readyz"} {
		if got, _ := dig(c, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path %v, want %s", probe, got, path)
		}
		if got, _ := dig(c, probe, "httpGet", "port"); got != "http" && got != httpPort {
			t.Errorf("%s port %v, want the http port", probe, got)
		}
	}
	for _, r := range []string{"requests.cpu", "requests.memory", "limits.memory"} {
		if _, ok := dig(c, append([]string{"resources"}, strings.Split(r, ".")...)...); !ok {
			t.Errorf("resources.%s not set", r)
		}
	}

	sc := dig1(t, c, "securityContext").(map[string]any)
	if sc["readOnlyRootFilesystem"] != true {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc["allowPrivilegeEscalation"] != false {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if drop, _ := dig(sc, "capabilities", "drop", "0"); drop != "ALL" {
		t.Errorf("capabilities.drop %v, want [ALL]", drop)
	}
	nonRoot, _ := dig(pod, "securityContext", "runAsNonRoot")
	if v, ok := sc["runAsNonRoot"]; ok {
		nonRoot = v
	}
	if nonRoot != true {
		t.Error("runAsNonRoot is not true")
	}
	uid, _ := dig(pod, "securityContext", "runAsUser")
	if v, ok := sc["runAsUser"]; ok {
		uid = v
	}
	if u, ok := uid.(int); ok && u == 0 {
		t.Error("runAsUser is 0")
	}

	shutdown, err := time.ParseDuration(fmt.Sprint(data["PROFILED_SHUTDOWN_TIMEOUT"]))
	if err != nil {
		t.Fatalf("PROFILED_SHUTDOWN_TIMEOUT: %v", err)
	}
	grace, ok := pod["terminationGracePeriodSeconds"].(int)
	if !ok {
		t.Fatalf("terminationGracePeriodSeconds = %v", pod["terminationGracePeriodSeconds"])
	}
	if time.Duration(grace)*time.Second <= shutdown {
		t.Errorf("terminationGracePeriodSeconds %d is not above PROFILED_SHUTDOWN_TIMEOUT %s", grace, shutdown)
	}

	// Nothing in the pod may turn the quick start on.
	for _, k := range []string{"command", "args"} {
		if v, ok := c[k]; ok && strings.Contains(strings.ToLower(fmt.Sprint(v)), "embedded") {
			t.Errorf("container %s %v mentions embedded", k, v)
		}
	}

	sel := dig1(t, dep, "spec", "selector", "matchLabels").(map[string]any)
	labels := dig1(t, dep, "spec", "template", "metadata", "labels").(map[string]any)
	for k, v := range sel {
		if labels[k] != v {
			t.Errorf("pod label %s=%v does not match the selector's %v", k, labels[k], v)
		}
	}
	if pdb := m["PodDisruptionBudget"]; len(pdb) != 1 {
		t.Errorf("want one PodDisruptionBudget, got %d", len(pdb))
	} else if got := dig1(t, pdb[0], "spec", "selector", "matchLabels"); fmt.Sprint(got) != fmt.Sprint(sel) {
		t.Errorf("PodDisruptionBudget selects %v, Deployment %v", got, sel)
	}
	svc := m.one(t, "Service")
	if got := dig1(t, svc, "spec", "selector"); fmt.Sprint(got) != fmt.Sprint(sel) {
		t.Errorf("Service selects %v, Deployment %v", got, sel)
	}
	if got, _ := dig(svc, "spec", "ports", "0", "targetPort"); got != "http" && got != httpPort {
		t.Errorf("Service targetPort %v", got)
	}
}

func TestChartDeployment(t *testing.T) {
	m := fullRender(t)
	checkDeployment(t, m)
	if r, ok := dig(m.one(t, "Deployment"), "spec", "replicas"); ok {
		t.Errorf("Deployment sets replicas (%v) although KEDA owns the count", r)
	}
}

// TestChartDefaults renders the chart as a first install would (only the
// brokers and a Redis URL given): no KEDA, a fixed replica count, the same
// probes and security.
func TestChartDefaults(t *testing.T) {
	m := parseManifests(t, renderHelm(t, "--set", "kafka.brokers={kafka:9092}", "--set", "redis.url=redis://redis:6379/0"))
	checkDeployment(t, m)
	if _, ok := dig(m.one(t, "Deployment"), "spec", "replicas"); !ok {
		t.Error("without KEDA the Deployment needs replicas")
	}
	for _, kind := range []string{"ScaledObject", "ServiceMonitor", "PrometheusRule"} {
		if len(m[kind]) > 0 {
			t.Errorf("%s rendered by default; it needs a CRD that may not exist", kind)
		}
	}
}

// TestChartRefusesShortGracePeriod: a grace period at or below the shutdown
// timeout would let the kubelet kill a clean shutdown.
func TestChartRefusesShortGracePeriod(t *testing.T) {
	cmd := exec.Command(helm(t), "template", "profiled", chartDir, "--set", "kafka.brokers={kafka:9092}",
		"--set", "shutdownTimeoutSeconds=30", "--set", "terminationGracePeriodSeconds=30")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "must exceed shutdownTimeoutSeconds") {
		t.Fatalf("helm template accepted a grace period equal to the shutdown timeout: %v\n%s", err, out)
	}
}

func TestChartScaledObject(t *testing.T) {
	m := fullRender(t)
	so := m.one(t, "ScaledObject")
	data := m.configMap(t)
	partitions, ok := dig1(t, values(t), "kafka", "partitions").(int)
	if !ok || partitions < 1 {
		t.Fatalf("values kafka.partitions = %v", partitions)
	}
	if got := dig1(t, so, "spec", "maxReplicaCount"); got != partitions {
		t.Errorf("maxReplicaCount %v, want the partition count %d", got, partitions)
	}
	if got := dig1(t, so, "spec", "scaleTargetRef", "name"); got != dig1(t, m.one(t, "Deployment"), "metadata", "name") {
		t.Errorf("scaleTargetRef %v is not the Deployment", got)
	}
	triggers := dig1(t, so, "spec", "triggers").([]any)
	if len(triggers) != 1 {
		t.Fatalf("want one trigger, got %d", len(triggers))
	}
	tr := triggers[0].(map[string]any)
	if tr["type"] != "kafka" {
		t.Fatalf("trigger type %v", tr["type"])
	}
	md := dig1(t, tr, "metadata").(map[string]any)
	if md["allowIdleConsumers"] != "false" {
		t.Errorf(`allowIdleConsumers %v, want "false" (caps replicas at the partition count)`, md["allowIdleConsumers"])
	}
	if n, err := strconv.Atoi(fmt.Sprint(md["lagThreshold"])); err != nil || n < 1 {
		t.Errorf("lagThreshold %v", md["lagThreshold"])
	}
	for key, setting := range map[string]string{"bootstrapServers": "PROFILED_KAFKA_BROKERS", "consumerGroup": "PROFILED_KAFKA_GROUP", "offsetResetPolicy": "PROFILED_KAFKA_START_OFFSET"} {
		if md[key] != data[setting] {
			t.Errorf("trigger %s %v, profiled's %s %v", key, md[key], setting, data[setting])
		}
	}
	if topics := strings.Split(fmt.Sprint(data["PROFILED_KAFKA_TOPICS"]), ","); len(topics) == 1 && md["topic"] != topics[0] {
		t.Errorf("trigger topic %v, profiled consumes %v", md["topic"], topics)
	}
	// ci/full-values.yaml turns on SASL and TLS: KEDA must authenticate too.
	if data["PROFILED_KAFKA_SASL_MECHANISM"] != "" {
		if md["sasl"] == nil {
			t.Error("profiled uses SASL, the trigger does not")
		}
		ref := dig1(t, tr, "authenticationRef", "name")
		ta := m.one(t, "TriggerAuthentication")
		if dig1(t, ta, "metadata", "name") != ref {
			t.Errorf("authenticationRef %v has no TriggerAuthentication", ref)
		}
		params := map[string]bool{}
		for _, r := range dig1(t, ta, "spec", "secretTargetRef").([]any) {
			params[r.(map[string]any)["parameter"].(string)] = true
		}
		if !params["username"] || !params["password"] {
			t.Errorf("TriggerAuthentication parameters %v lack username or password", params)
		}
	}
}

func TestChartMonitoring(t *testing.T) {
	m := fullRender(t)
	sm := m.one(t, "ServiceMonitor")
	if got := dig1(t, sm, "spec", "endpoints", "0", "path"); got != "/metrics" {
		t.Errorf("ServiceMonitor path %v", got)
	}
	if got := dig1(t, sm, "spec", "endpoints", "0", "port"); got != dig1(t, m.one(t, "Service"), "spec", "ports", "0", "name") {
		t.Errorf("ServiceMonitor port %v is not the Service's port name", got)
	}
	// The alerts and the dashboard select job="profiled": the job label must
	// come from a label whose value is "profiled" whatever the release name.
	jobLabel := dig1(t, sm, "spec", "jobLabel").(string)
	if got, _ := dig(m.one(t, "Service"), "metadata", "labels", jobLabel); got != "profiled" {
		t.Errorf("ServiceMonitor jobLabel %s gives job=%v, the rules select job=\"profiled\"", jobLabel, got)
	}

	// The PrometheusRule carries the promtool-tested file, unchanged.
	want := readYAML(t, alertsFile)["groups"]
	if got := dig1(t, m.one(t, "PrometheusRule"), "spec", "groups"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Error("PrometheusRule groups differ from " + alertsFile)
	}
	dash, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, cm := range m["ConfigMap"] {
		if v, ok := dig(cm, "data", "profiled-dashboard.json"); ok {
			found = true
			if strings.TrimSpace(v.(string)) != strings.TrimSpace(string(dash)) {
				t.Error("dashboard ConfigMap differs from " + dashboardFile)
			}
		}
	}
	if !found {
		t.Error("no dashboard ConfigMap rendered")
	}
}

// keys returns a map's keys, sorted.
func keys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// TestChartUpgradeStrategy: Recreate stops every old pod before a new one
// starts, for the upgrade to identity stitching (README, "Upgrading");
// the default rolls one pod at a time.
func TestChartUpgradeStrategy(t *testing.T) {
	for _, c := range []struct{ value, want string }{{"", "RollingUpdate"}, {"Recreate", "Recreate"}} {
		args := []string{"--set", "kafka.brokers={kafka:9092}", "--set", "redis.url=redis://redis:6379/0"}
		if c.value != "" {
			args = append(args, "--set", "upgradeStrategy="+c.value)
		}
		d := parseManifests(t, renderHelm(t, args...)).one(t, "Deployment")
		if got, _ := dig(d, "spec", "strategy", "type"); got != c.want {
			t.Errorf("upgradeStrategy=%q: strategy %v, want %s", c.value, got, c.want)
		}
		if _, ok := dig(d, "spec", "strategy", "rollingUpdate"); ok != (c.want == "RollingUpdate") {
			t.Errorf("upgradeStrategy=%q: rollingUpdate present %v", c.value, ok)
		}
	}
}
