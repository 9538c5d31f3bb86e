package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	composeDir  = "compose"
	composeFile = "compose/compose.yaml"
	dockerfile  = "Dockerfile"
)

// composeEnv reads a service's environment, in map or list form.
func composeEnv(t *testing.T, svc map[string]any) map[string]string {
	t.Helper()
	env := map[string]string{}
	switch e := svc["environment"].(type) {
	case nil:
	case map[string]any:
		for k, v := range e {
			env[k] = fmt.Sprint(v)
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(fmt.Sprint(kv), "=")
			env[k] = v
		}
	default:
		t.Fatalf("environment of unexpected form %T", e)
	}
	return env
}

// TestComposeFile parses the quick start and checks what makes it work:
// a single-node KRaft broker, Redis 7, health checks that gate profiled's
// start, the topics it needs, every mounted file present, and a Prometheus
// that scrapes profiled under the job name the rules use.
func TestComposeFile(t *testing.T) {
	c := readYAML(t, composeFile)
	services, _ := c["services"].(map[string]any)
	svc := func(name string) map[string]any {
		t.Helper()
		s, ok := services[name].(map[string]any)
		if !ok {
			t.Fatalf("compose has no service %q (has %v)", name, keys(services))
		}
		return s
	}

	kafka := svc("kafka")
	if img := fmt.Sprint(kafka["image"]); !strings.HasPrefix(img, "apache/kafka:") {
		t.Errorf("kafka image %s, want the official apache/kafka", img)
	}
	kenv := composeEnv(t, kafka)
	for k, want := range map[string]string{
		"KAFKA_PROCESS_ROLES":                            "broker,controller",
		"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":         "0",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
		"KAFKA_DEFAULT_REPLICATION_FACTOR":               "1",
	} {
		if kenv[k] != want {
			t.Errorf("kafka %s = %q, want %q", k, kenv[k], want)
		}
	}
	if !strings.HasPrefix(kenv["KAFKA_CONTROLLER_QUORUM_VOTERS"], "1@") || strings.Contains(kenv["KAFKA_CONTROLLER_QUORUM_VOTERS"], ",") {
		t.Errorf("kafka KAFKA_CONTROLLER_QUORUM_VOTERS %q: want one node", kenv["KAFKA_CONTROLLER_QUORUM_VOTERS"])
	}
	if img := fmt.Sprint(svc("redis")["image"]); !strings.HasPrefix(img, "redis:7") {
		t.Errorf("redis image %s, want Redis 7", img)
	}
	for _, name := range []string{"kafka", "redis", "prometheus", "grafana"} {
		if _, ok := dig(svc(name), "healthcheck", "test"); !ok {
			t.Errorf("%s has no health check", name)
		}
	}

	p := svc("profiled")
	penv := composeEnv(t, p)
	if v, ok := penv["PROFILED_EMBEDDED"]; ok && v != "false" {
		t.Errorf("profiled PROFILED_EMBEDDED=%s: the quick start runs on the real Kafka and Redis", v)
	}
	if penv["PROFILED_KAFKA_BROKERS"] != "kafka:9092" || !strings.Contains(penv["PROFILED_REDIS_URL"], "//redis:") {
		t.Errorf("profiled does not point at the compose Kafka and Redis: %v", penv)
	}
	deps, _ := p["depends_on"].(map[string]any)
	for dep, cond := range map[string]string{"kafka-init": "service_completed_successfully", "redis": "service_healthy"} {
		if got, _ := dig(deps, dep, "condition"); got != cond {
			t.Errorf("profiled depends_on %s: %v, want %s", dep, got, cond)
		}
	}
	if got, _ := dig(svc("kafka-init"), "depends_on", "kafka", "condition"); got != "service_healthy" {
		t.Errorf("kafka-init waits for kafka with %v, want service_healthy", got)
	}
	if ctx, df := fmt.Sprint(dig1(t, p, "build", "context")), fmt.Sprint(dig1(t, p, "build", "dockerfile")); !fileExists(filepath.Join(composeDir, ctx, df)) {
		t.Errorf("profiled builds %s from %s: no such file", df, ctx)
	}
	shutdown, err := time.ParseDuration(penv["PROFILED_SHUTDOWN_TIMEOUT"])
	if err != nil {
		shutdown = 25 * time.Second // profiled's default
	}
	if grace, err := time.ParseDuration(fmt.Sprint(p["stop_grace_period"])); err != nil || grace <= shutdown {
		t.Errorf("profiled stop_grace_period %v is not above its shutdown timeout %s", p["stop_grace_period"], shutdown)
	}

	// kafka-init creates the input and dead-letter topics profiled uses.
	initCmd := fmt.Sprint(svc("kafka-init")["command"])
	topics := strings.Split(penv["PROFILED_KAFKA_TOPICS"], ",")
	for _, topic := range append(topics, penv["PROFILED_DLQ_TOPIC"]) {
		if !regexp.MustCompile(`--topic\s+` + regexp.QuoteMeta(topic) + `\s`).MatchString(initCmd) {
			t.Errorf("kafka-init does not create topic %q", topic)
		}
	}

	// The sample producer: profilectl, a mounted sample file.
	prod := svc("produce")
	if ep := fmt.Sprint(prod["entrypoint"]); !strings.Contains(ep, "profilectl") {
		t.Errorf("produce entrypoint %s, want profilectl", ep)
	}
	if !strings.Contains(fmt.Sprint(prod["command"]), "sample-events.jsonl") {
		t.Errorf("produce command %v does not produce the sample events", prod["command"])
	}

	// Every bind mount names a file or directory of this repository.
	mounts := map[string]string{} // container path -> host path
	for name, s := range services {
		vols, _ := s.(map[string]any)["volumes"].([]any)
		for _, v := range vols {
			parts := strings.Split(fmt.Sprint(v), ":")
			if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
				continue // a named volume
			}
			host := filepath.Join(composeDir, parts[0])
			if !fileExists(host) {
				t.Errorf("%s mounts %s: no such file", name, parts[0])
			}
			mounts[parts[1]] = host
		}
	}
	if got, want := mounts["/sample"], filepath.Join("..", "testdata"); filepath.Clean(got) != want || !fileExists(filepath.Join(got, "sample-events.jsonl")) {
		t.Errorf("produce mounts %q at /sample, want %s with sample-events.jsonl", got, want)
	}

	// Prometheus: job "profiled" scrapes profiled's HTTP port, and the rule
	// file it loads is the chart's, mounted.
	promArgs := fmt.Sprint(svc("prometheus")["command"])
	m := regexp.MustCompile(`--config\.file=(\S+?)[\]\s]`).FindStringSubmatch(promArgs + " ")
	if m == nil || mounts[m[1]] == "" {
		t.Fatalf("prometheus config file not mounted (command %s)", promArgs)
	}
	prom := readYAML(t, mounts[m[1]])
	job := map[string]any{}
	for _, sc := range dig1(t, prom, "scrape_configs").([]any) {
		if sc.(map[string]any)["job_name"] == "profiled" {
			job = sc.(map[string]any)
		}
	}
	_, port, _ := strings.Cut(penv["PROFILED_HTTP_ADDR"], ":")
	if target, _ := dig(job, "static_configs", "0", "targets", "0"); target != "profiled:"+port {
		t.Errorf("prometheus job profiled scrapes %v, profiled listens on %s", target, penv["PROFILED_HTTP_ADDR"])
	}
	for _, rf := range dig1(t, prom, "rule_files").([]any) {
		if host := mounts[fmt.Sprint(rf)]; filepath.Clean(host) != filepath.Clean(alertsFile) {
			t.Errorf("prometheus rule file %v is %q, want the chart's %s", rf, host, alertsFile)
		}
	}

	// Grafana: the dashboard provider reads the directory the dashboard is
	// mounted in.
	prov := readYAML(t, filepath.Join(composeDir, "grafana/provisioning/dashboards/profiled.yaml"))
	dir := fmt.Sprint(dig1(t, prov, "providers", "0", "options", "path"))
	if host := mounts[dir+"/profiled-dashboard.json"]; filepath.Clean(host) != filepath.Clean(dashboardFile) {
		t.Errorf("grafana reads dashboards from %s, where %q is mounted; want %s", dir, host, dashboardFile)
	}
}

// TestDockerfile checks the conventions the image promises (TestImage
// builds and runs it where a Docker engine answers): the classic builder
// suffices, the base images default to the official ones, multi-stage, a static trimmed build with the
// version by -ldflags, both binaries, distroless static as non-root, and a
// default command that never turns the embedded quick start on.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	// join continuation lines, drop comments
	var lines []string
	cur := ""
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if s, ok := strings.CutSuffix(strings.TrimRight(l, " \t"), "\\"); ok {
			cur += s + " "
			continue
		}
		if line := strings.TrimSpace(cur + l); line != "" {
			lines = append(lines, line)
		}
		cur = ""
	}
	// The classic builder builds it: no syntax directive (it pulls a
	// frontend image), no BuildKit-only instructions.
	if strings.Contains(string(b), "# syntax=") {
		t.Error("the Dockerfile has a syntax directive, which only BuildKit knows")
	}
	for _, bk := range []string{"--mount", "$BUILDPLATFORM", "${BUILDPLATFORM}"} {
		if strings.Contains(strings.Join(lines, "\n"), bk) {
			t.Errorf("the Dockerfile uses %s, which only BuildKit knows", bk)
		}
	}
	var froms, runs, users []string
	var final []string          // instructions of the last stage
	args := map[string]string{} // ARG defaults before the first FROM
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		switch strings.ToUpper(instr) {
		case "ARG":
			if k, v, ok := strings.Cut(rest, "="); ok && len(froms) == 0 {
				args[k] = v
			}
		case "FROM":
			froms = append(froms, os.Expand(rest, func(k string) string { return args[k] }))
			final = nil
		case "RUN":
			runs = append(runs, rest)
		case "USER":
			users = append(users, rest)
		}
		final = append(final, l)
	}
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, got FROM %v", froms)
	}
	if last := froms[len(froms)-1]; !strings.Contains(last, "distroless/static") || !strings.Contains(last, "nonroot") {
		t.Errorf("runtime image %s, want distroless static nonroot", last)
	}
	build := strings.Join(runs, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-ldflags", "-X main.version=", "-X main.revision=", "./cmd/profiled", "./cmd/profilectl"} {
		if !strings.Contains(build, want) {
			t.Errorf("the build does not use %s", want)
		}
	}
	if len(users) == 0 || users[len(users)-1] == "root" || strings.HasPrefix(users[len(users)-1], "0") {
		t.Errorf("USER %v: the image must run as non-root", users)
	}
	sawEntrypoint := false
	for _, l := range final {
		instr, rest, _ := strings.Cut(l, " ")
		switch strings.ToUpper(instr) {
		case "ENTRYPOINT", "CMD", "ENV":
			if strings.Contains(strings.ToUpper(rest), "EMBEDDED") {
				t.Errorf("%s: the image must not turn the embedded quick start on", l)
			}
			if strings.ToUpper(instr) == "ENTRYPOINT" {
				sawEntrypoint = strings.Contains(rest, "profiled") && !strings.Contains(rest, "profilectl")
			}
		}
	}
	if !sawEntrypoint {
		t.Error("the image's entrypoint is not profiled")
	}
	if !fileExists(dockerfile + ".dockerignore") {
		t.Error("no Dockerfile.dockerignore: the build context would carry .git and bin/")
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
