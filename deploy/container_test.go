package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"gopkg.in/yaml.v3"

	"github.com/profiled/profiled/internal/testenv"
)

// The image settings of these tests beyond testenv's Kafka and Redis: the
// profiled image's tag and bases (the names compose.host.yaml reads) and
// Prometheus's image. The defaults are the official images; deploy/images.sh
// env prints the local stand-ins.
const (
	envProfiledImage   = "PROFILED_IMAGE"
	envGoImage         = "PROFILED_GO_IMAGE"
	envRuntimeImage    = "PROFILED_RUNTIME_IMAGE"
	envPrometheusImage = "PROFILED_TEST_PROMETHEUS_IMAGE"
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// needsDocker skips a container test without a Docker engine, and fails
// it when the containers path was asked for.
func needsDocker(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs containers; not with -short")
	}
	if os.Getenv(testenv.EnvServices) == "scripts" {
		t.Skipf("%s=scripts: no containers", testenv.EnvServices)
	}
	if !testenv.DockerReachable() {
		if os.Getenv(testenv.EnvServices) == "containers" {
			t.Fatalf("%s=containers and no Docker engine answers", testenv.EnvServices)
		}
		t.Skip("needs a Docker engine")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("needs the docker command")
	}
}

var image struct {
	once sync.Once
	tag  string
	err  error
}

// profiledImage builds deploy/Dockerfile once per test binary, with
// deploy/images.sh (the classic builder and a context cut by
// Dockerfile.dockerignore), and returns its tag.
func profiledImage(t *testing.T) string {
	t.Helper()
	image.once.Do(func() {
		image.tag = envOr(envProfiledImage, "profiled:dev")
		cmd := exec.Command("./images.sh", "profiled")
		cmd.Env = append(os.Environ(),
			envProfiledImage+"="+image.tag,
			envGoImage+"="+envOr(envGoImage, "golang:1.26-bookworm"),
			envRuntimeImage+"="+envOr(envRuntimeImage, "gcr.io/distroless/static-debian12:nonroot"))
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			image.err = fmt.Errorf("images.sh profiled: %v\n%s", err, out)
			return
		}
		t.Logf("built %s in %s", image.tag, time.Since(start).Round(time.Second))
	})
	if image.err != nil {
		t.Fatal(image.err)
	}
	return image.tag
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestImage builds the image and runs it: as non-root, --version, and the
// service in a container against Kafka and Redis containers: events
// produced into the Kafka container by the image's profilectl, the
// profile read back from the Redis container.
func TestImage(t *testing.T) {
	needsDocker(t)
	img := profiledImage(t)

	if user := docker(t, "image", "inspect", "-f", "{{.Config.User}}", img); user != "65532:65532" {
		t.Errorf("image user %q, want 65532:65532 (nonroot)", user)
	}
	if out := docker(t, "run", "--rm", "--network", "none", img, "--version"); !strings.HasPrefix(out, "profiled ") || !strings.Contains(out, "revision ") {
		t.Errorf("profiled --version printed %q", out)
	}

	pair := testenv.Containers(t)
	svc := pair.Services(t)
	topic := svc.Topic(t, 3)
	httpAddr := testenv.FreeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	host := testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) { hc.NetworkMode = "host" })
	labels := testcontainers.WithLabels(testenv.Labels(t))
	quiet := testcontainers.WithLogger(tclog.NewNoopLogger())
	p, err := testcontainers.Run(ctx, img, host, labels, quiet,
		testcontainers.WithEnv(map[string]string{
			"PROFILED_KAFKA_BROKERS":        pair.Brokers[0],
			"PROFILED_KAFKA_TOPICS":         topic,
			"PROFILED_KAFKA_GROUP":          testenv.Unique(t, "group"),
			"PROFILED_DLQ_TOPIC":            topic + "-dlq",
			"PROFILED_REDIS_URL":            pair.RedisURL,
			"PROFILED_HTTP_ADDR":            httpAddr,
			"PROFILED_DEFAULT_PHONE_REGION": "IN",
		}))
	if p != nil {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("profiled container logs:\n%s", containerLogs(p))
			}
			if err := testcontainers.TerminateContainer(p); err != nil {
				t.Errorf("terminate profiled: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	// testcontainers' HTTP wait needs a mapped port, which the host
	// network has not: poll /readyz here
	testenv.Eventually(t, 2*time.Minute, "profiled /readyz in the container", func() bool {
		return readyz(httpAddr) == http.StatusOK
	})

	state, err := p.Inspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if uid := procUID(t, state.State.Pid); uid != "65532" {
		t.Errorf("profiled runs as uid %s in its container, want 65532", uid)
	}

	sample, err := filepath.Abs("../testdata")
	if err != nil {
		t.Fatal(err)
	}
	docker(t, "run", "--rm", "--network", "host", "-v", sample+":/sample:ro", "--entrypoint", "/usr/local/bin/profilectl",
		img, "produce", "--brokers", pair.Brokers[0], "--topic", topic, "/sample/sample-events.jsonl")

	var profile map[string]string
	testenv.Eventually(t, time.Minute, "profile:{u-1001} in the Redis container", func() bool {
		profile, err = svc.Redis.HGetAll(context.Background(), "profile:{u-1001}").Result()
		return err == nil && profile["email"] != ""
	})
	if profile["email"] != "Priya.Sharma@example.com" {
		t.Errorf("profile:{u-1001} email %q, want the sample's, normalized", profile["email"])
	}
}

// procUID is the real uid of a process of this machine, as its status says.
func procUID(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			return f[1]
		}
	}
	t.Fatalf("no Uid line in /proc/%d/status", pid)
	return ""
}

func containerLogs(c *testcontainers.DockerContainer) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Logs(ctx)
	if err != nil {
		return err.Error()
	}
	defer r.Close()
	var b strings.Builder
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return testenv.Tail(b.String(), 60)
}

// readyz returns the status of GET http://addr/readyz, 0 when it fails.
func readyz(addr string) int {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// composeCommand is docker-compose (1.29 on Debian) or the compose plugin,
// whichever is there.
func composeCommand(t *testing.T) []string {
	t.Helper()
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if os.Getenv(testenv.EnvServices) == "containers" {
		t.Fatal("neither docker-compose nor docker compose is installed")
	}
	t.Skip("needs docker-compose or the compose plugin")
	return nil
}

// TestComposeQuickStart validates the quick start, alone and with the
// host-network override, and brings it up on the host network on ports of
// its own: Kafka, Redis, profiled and Prometheus (Grafana too needs an
// image, which only a registry has). The sample events go in through the
// produce service, the profile comes out of Redis, and Prometheus scrapes
// profiled's metrics.
func TestComposeQuickStart(t *testing.T) {
	needsDocker(t)
	compose := composeCommand(t)
	img := profiledImage(t)
	ports := make([]int, 5)
	for i := range ports {
		_, p, _ := strings.Cut(testenv.FreeAddr(t), ":")
		ports[i], _ = strconv.Atoi(p)
	}
	kafkaPort, controllerPort, redisPort, httpPort, promPort := ports[0], ports[1], ports[2], ports[3], ports[4]
	promConfig := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(promConfig, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 5s
rule_files:
  - /etc/prometheus/rules/profiled-alerts.yaml
scrape_configs:
  - job_name: profiled
    static_configs:
      - targets: ["127.0.0.1:%d"]
`, httpPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	kafkaImage, redisImage := testenv.Images()
	project := fmt.Sprintf("profiledtest%d", os.Getpid())
	env := append(os.Environ(),
		"PROFILED_KAFKA_IMAGE="+kafkaImage,
		"PROFILED_REDIS_IMAGE="+redisImage,
		"PROFILED_PROMETHEUS_IMAGE="+envOr(envPrometheusImage, "prom/prometheus:v3.5.0"),
		envGoImage+"="+envOr(envGoImage, "golang:1.26-bookworm"),
		envRuntimeImage+"="+envOr(envRuntimeImage, "gcr.io/distroless/static-debian12:nonroot"),
		fmt.Sprintf("PROFILED_KAFKA_PORT=%d", kafkaPort),
		fmt.Sprintf("PROFILED_KAFKA_CONTROLLER_PORT=%d", controllerPort),
		fmt.Sprintf("PROFILED_REDIS_PORT=%d", redisPort),
		fmt.Sprintf("PROFILED_HTTP_PORT=%d", httpPort),
		fmt.Sprintf("PROFILED_PROMETHEUS_PORT=%d", promPort),
		"PROFILED_PROMETHEUS_CONFIG="+promConfig,
	)
	run := func(files []string, args ...string) (string, error) {
		full := append(append([]string{}, compose[1:]...), "-p", project)
		for _, f := range files {
			full = append(full, "-f", f)
		}
		cmd := exec.Command(compose[0], append(full, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	base := []string{"compose/compose.yaml"}
	hostNet := []string{"compose/compose.yaml", "compose/compose.host.yaml"}
	for _, files := range [][]string{base, hostNet} {
		if out, err := run(files, "config", "-q"); err != nil {
			t.Fatalf("compose config %v: %v\n%s", files, err, out)
		}
	}
	// The override keeps the profiled image's name, which the produce
	// service uses too.
	if out, err := run(hostNet, "config"); err != nil || !strings.Contains(out, "image: "+img) {
		t.Fatalf("compose config: profiled image is not %s (%v):\n%s", img, err, out)
	}

	// docker-compose 1.29 refuses published ports on the host network
	// (the engine itself ignores them), and an override cannot remove
	// what compose.yaml publishes: bring up the merged configuration
	// without them.
	merged, err := run(hostNet, "config")
	if err != nil {
		t.Fatalf("compose config: %v\n%s", err, merged)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(merged), &cfg); err != nil {
		t.Fatal(err)
	}
	labels := map[string]any{}
	for k, v := range testenv.Labels(t) {
		labels[k] = v
	}
	for _, s := range cfg["services"].(map[string]any) {
		delete(s.(map[string]any), "ports")
		// removed by testenv's reaper should this test binary die
		s.(map[string]any)["labels"] = labels
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hostNet = []string{filepath.Join(t.TempDir(), "compose.yaml")}
	if err := os.WriteFile(hostNet[0], b, 0o644); err != nil {
		t.Fatal(err)
	}

	t.Cleanup(func() {
		if t.Failed() {
			out, _ := run(hostNet, "logs", "--no-color", "--tail", "40")
			t.Logf("compose logs:\n%s", out)
		}
		if out, err := run(hostNet, "down", "-v", "--remove-orphans", "-t", "30"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	start := time.Now()
	if out, err := run(hostNet, "up", "-d", "--no-build", "kafka", "redis", "profiled", "prometheus"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	owned := docker(t, "ps", "-q", "--filter", "label=com.docker.compose.project="+project,
		"--filter", fmt.Sprintf("label=%s=%d", testenv.LabelOwner, os.Getpid()))
	if n := len(strings.Fields(owned)); n < 4 {
		t.Errorf("%d of the stack's containers carry this test binary's labels, want kafka, redis, profiled and prometheus", n)
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", httpPort)
	testenv.Eventually(t, 3*time.Minute, "profiled /readyz", func() bool { return readyz(httpAddr) == http.StatusOK })
	t.Logf("compose stack up and profiled ready in %s", time.Since(start).Round(time.Second))

	if out, err := run(hostNet, "run", "--rm", "produce"); err != nil {
		t.Fatalf("compose run produce: %v\n%s", err, out)
	}
	svc := (&testenv.ContainerPair{Brokers: []string{fmt.Sprintf("127.0.0.1:%d", kafkaPort)}, RedisURL: fmt.Sprintf("redis://127.0.0.1:%d/0", redisPort)}).Services(t)
	var profile map[string]string
	testenv.Eventually(t, time.Minute, "profile:{u-1001} in the compose Redis", func() bool {
		var err error
		profile, err = svc.Redis.HGetAll(context.Background(), "profile:{u-1001}").Result()
		return err == nil && profile["email"] != ""
	})
	if profile["email"] != "Priya.Sharma@example.com" {
		t.Errorf("profile:{u-1001} email %q, want the sample's, normalized", profile["email"])
	}

	// Prometheus: the profiled target is up and its profiled_ series are stored.
	promAddr := fmt.Sprintf("127.0.0.1:%d", promPort)
	var last string
	testenv.Eventually(t, 2*time.Minute, "Prometheus to scrape profiled_ metrics", func() bool {
		n, body := promQuery(promAddr, `count({job="profiled",__name__=~"profiled_.+"})`)
		up, _ := promQuery(promAddr, `up{job="profiled"}`)
		last = body
		return n > 10 && up == 1
	})
	t.Logf("Prometheus query result: %s", last)
	// the rules of the chart are loaded
	if _, body := promGet(promAddr, "/api/v1/rules"); !strings.Contains(body, `"name":"profiled`) {
		t.Errorf("Prometheus has not loaded the chart's rules: %s", testenv.Tail(body, 5))
	}
}

// promQuery runs an instant query and returns its first sample's value
// (-1 when there is none) and the raw answer.
func promQuery(addr, q string) (float64, string) {
	_, body := promGet(addr, "/api/v1/query?query="+url.QueryEscape(q))
	var r struct {
		Data struct {
			Result []struct {
				Value []any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.Unmarshal([]byte(body), &r) != nil || len(r.Data.Result) == 0 || len(r.Data.Result[0].Value) != 2 {
		return -1, body
	}
	v, err := strconv.ParseFloat(fmt.Sprint(r.Data.Result[0].Value[1]), 64)
	if err != nil {
		return -1, body
	}
	return v, body
}

func promGet(addr, path string) (int, string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

// TestComposeHostOverride checks, without an engine, what the host-network
// override must do for the stack to work there: every service of the quick
// start on the host network, no address by service name left (names do not
// resolve there), kafka-init creating the topics compose.yaml creates, and
// every variable given a default.
func TestComposeHostOverride(t *testing.T) {
	base := readYAML(t, composeFile)
	over := readYAML(t, filepath.Join(composeDir, "compose.host.yaml"))
	bs, _ := base["services"].(map[string]any)
	ov, _ := over["services"].(map[string]any)
	for name := range bs {
		s, _ := ov[name].(map[string]any)
		if s["network_mode"] != "host" {
			t.Errorf("service %s is not on the host network in the override", name)
		}
	}
	b, err := os.ReadFile(filepath.Join(composeDir, "compose.host.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var body []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			body = append(body, l)
		}
	}
	text := strings.Join(body, "\n")
	for _, name := range []string{"kafka:", "redis:", "profiled:", "prometheus:"} {
		for _, scheme := range []string{"//", " ", "\""} {
			if strings.Contains(text, scheme+name+"9") || strings.Contains(text, scheme+name+"6") || strings.Contains(text, scheme+name+"8") {
				t.Errorf("the override addresses a service by name (%s...)", name)
			}
		}
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Z_]+)(:-)?`).FindAllStringSubmatch(text, -1) {
		if m[2] == "" {
			t.Errorf("${%s} has no default", m[1])
		}
	}
	topics := func(svc map[string]any) []string {
		var out []string
		for _, m := range regexp.MustCompile(`--topic\s+(\S+)`).FindAllStringSubmatch(fmt.Sprint(svc["command"]), -1) {
			out = append(out, m[1])
		}
		return out
	}
	if b, o := topics(bs["kafka-init"].(map[string]any)), topics(ov["kafka-init"].(map[string]any)); fmt.Sprint(b) != fmt.Sprint(o) {
		t.Errorf("kafka-init creates %v in the override, %v in compose.yaml", o, b)
	}
	prom := readYAML(t, filepath.Join(composeDir, "prometheus.host.yml"))
	if target, _ := dig(prom, "scrape_configs", "0", "static_configs", "0", "targets", "0"); target != "127.0.0.1:8080" {
		t.Errorf("prometheus.host.yml scrapes %v, want profiled's default 127.0.0.1:8080", target)
	}
}
