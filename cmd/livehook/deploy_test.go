package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/store/postgres"
)

// manifestDir holds the Kubernetes manifests deploy/README.md describes.
const manifestDir = "../../deploy/kubernetes"

// The parts of the Kubernetes objects the checks read.
type (
	objectMeta struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	}
	k8sObject struct {
		Kind       string            `yaml:"kind"`
		Metadata   objectMeta        `yaml:"metadata"`
		Data       map[string]string `yaml:"data"`       // ConfigMap; Secret, base64
		StringData map[string]string `yaml:"stringData"` // Secret
		Spec       yaml.Node         `yaml:"spec"`
	}
	deploymentSpec struct {
		Replicas int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     struct {
				TerminationGracePeriodSeconds int         `yaml:"terminationGracePeriodSeconds"`
				Containers                    []container `yaml:"containers"`
				Volumes                       []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	}
	container struct {
		Name    string      `yaml:"name"`
		Command []string    `yaml:"command"`
		Args    []string    `yaml:"args"`
		Env     []envVar    `yaml:"env"`
		EnvFrom []yaml.Node `yaml:"envFrom"`
		Ports   []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		StartupProbe   *probe `yaml:"startupProbe"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
		ReadinessProbe *probe `yaml:"readinessProbe"`
		Lifecycle      struct {
			PreStop *struct {
				Sleep *struct {
					Seconds int `yaml:"seconds"`
				} `yaml:"sleep"`
			} `yaml:"preStop"`
		} `yaml:"lifecycle"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
	}
	envVar struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	probe struct {
		HTTPGet *struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"` // a number or a container port's name
		} `yaml:"httpGet"`
	}
	serviceSpec struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	}
	selectorSpec struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	}
)

// manifests are the objects `kubectl apply -k deploy/kubernetes` applies.
type manifests struct {
	deploymentText []byte
	deployment     deploymentSpec
	configMaps     map[string]map[string]string
	secrets        map[string]map[string]string
	service        serviceSpec
	selectors      map[string]map[string]string // of the other objects that select pods, by kind
}

// loadManifests reads the files kustomization.yaml lists, and fails on a
// manifest in the folder that it leaves out: it would never be applied.
func loadManifests(t *testing.T, dir string) manifests {
	t.Helper()
	var kust struct {
		Resources []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join(dir, "kustomization.yaml")), &kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	must(t, err)
	for _, f := range files {
		if name := filepath.Base(f); name != "kustomization.yaml" && !slices.Contains(kust.Resources, name) {
			t.Errorf("%s is not in kustomization.yaml's resources: `kubectl apply -k` would leave it out", name)
		}
	}
	m := manifests{configMaps: map[string]map[string]string{}, secrets: map[string]map[string]string{},
		selectors: map[string]map[string]string{}}
	kinds := map[string]int{}
	for _, name := range kust.Resources {
		text := readFile(t, filepath.Join(dir, name))
		dec := yaml.NewDecoder(bytes.NewReader(text))
		for {
			var o k8sObject
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			kinds[o.Kind]++
			var err error
			switch o.Kind {
			case "Deployment":
				m.deploymentText = text
				err = o.Spec.Decode(&m.deployment)
			case "Service":
				err = o.Spec.Decode(&m.service)
			case "ConfigMap":
				m.configMaps[o.Metadata.Name] = o.Data
			case "Secret":
				values := map[string]string{}
				maps.Copy(values, o.StringData)
				for k, v := range o.Data {
					b, err := base64.StdEncoding.DecodeString(v)
					if err != nil {
						t.Fatalf("%s: Secret %s: data.%s is not base64", name, o.Metadata.Name, k)
					}
					values[k] = string(b)
				}
				m.secrets[o.Metadata.Name] = values
			default:
				var s selectorSpec
				err = o.Spec.Decode(&s)
				m.selectors[o.Kind] = s.Selector.MatchLabels
			}
			if err != nil {
				t.Fatalf("%s: %s: %v", name, o.Kind, err)
			}
		}
	}
	if kinds["Deployment"] != 1 || kinds["Service"] != 1 {
		t.Fatalf("want one Deployment and one Service, have %v", kinds)
	}
	return m
}

// TestKubernetesManifests checks deploy/kubernetes against the daemon
// itself: the container's arguments and environment (secrets resolved from
// the Secret) go through serve's own flag parsing; the rules file of the
// ConfigMap loads as `livehook check` loads it, with the pod's environment;
// and a daemon started from that configuration answers the probes' paths
// on the port they name, without the admin token.
func TestKubernetesManifests(t *testing.T) {
	for _, p := range manifestProblems(t, loadManifests(t, manifestDir)) {
		t.Error(p)
	}
}

// manifestProblems is what is wrong with m, each problem a sentence.
func manifestProblems(t *testing.T, m manifests) []string {
	t.Helper()
	var problems []string
	problem := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	dep := m.deployment
	if dep.Replicas < 2 {
		problem("the Deployment runs %d replica(s); several are the point of a shared store", dep.Replicas)
	}
	pod := dep.Template.Spec
	if len(pod.Containers) != 1 {
		problem("want one container, have %d", len(pod.Containers))
		return problems
	}
	c := pod.Containers[0]
	podLabels := dep.Template.Metadata.Labels
	selects := func(what string, sel map[string]string) {
		if len(sel) == 0 {
			problem("%s selects no labels", what)
		}
		for k, v := range sel {
			if podLabels[k] != v {
				problem("%s selects %s=%s, which the pods do not carry (%v)", what, k, v, podLabels)
			}
		}
	}
	selects("the Deployment", dep.Selector.MatchLabels)
	selects("the Service", m.service.Selector)
	for kind, sel := range m.selectors {
		selects("the "+kind, sel)
	}

	// The pod's environment, secrets resolved; none may be inline.
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			v, ok := m.secrets[ref.Name][ref.Key]
			if !ok {
				problem("env %s refers to key %s of Secret %q, which the manifests do not hold", e.Name, ref.Key, ref.Name)
			}
			env[e.Name] = v
		case e.ValueFrom != nil:
			problem("env %s: only values and secretKeyRef are understood here", e.Name)
		default:
			env[e.Name] = e.Value
		}
	}
	if len(c.EnvFrom) > 0 {
		problem("envFrom hides which variables the pod gets; name each in env")
	}
	for name, values := range m.secrets {
		for k, v := range values {
			if bytes.Contains(m.deploymentText, []byte(v)) {
				problem("the value of Secret %s's %s is inlined in the Deployment", name, k)
			}
		}
	}
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--store") || strings.HasPrefix(a, "--admin-token") {
			problem("argument %q: a secret on the command line shows in ps; take it from the Secret", a)
		}
	}
	if len(c.Command) > 0 || len(c.Args) == 0 || c.Args[0] != "serve" {
		problem("the container runs %q %q; want the image's livehook with arguments serve …", c.Command, c.Args)
		return problems
	}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := parseServe(c.Args[1:], io.Discard, getenv)
	if err != nil {
		problem("livehook %s: %v", strings.Join(c.Args, " "), err)
		return problems
	}
	if cfg.store == "" || !postgres.IsDSN(cfg.store) {
		problem("serve reads no PostgreSQL DSN from this environment (%s unset?): the replicas would not share a store", envName("store"))
	}
	if _, err := cfg.hardening.prepare(cfg.admin, slog.New(slog.DiscardHandler)); err != nil {
		problem("serve would refuse to start: %v", err)
	}

	// Ports: the probes on the admin listener, the Service on the callbacks'.
	portOf := func(what, port string) int {
		if n, err := strconv.Atoi(port); err == nil {
			return n
		}
		for _, p := range c.Ports {
			if p.Name == port {
				return p.ContainerPort
			}
		}
		problem("%s names port %q, which the container does not declare", what, port)
		return 0
	}
	listenPort := func(flag, addr string) int {
		_, p, err := net.SplitHostPort(addr)
		n, err2 := strconv.Atoi(p)
		if err != nil || err2 != nil {
			problem("--%s %q has no port", flag, addr)
		}
		return n
	}
	adminPort, callbackPort := listenPort("admin", cfg.admin), listenPort("listen", cfg.listen)
	probes := map[string]*probe{"startupProbe": c.StartupProbe, "livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe}
	for name, p := range probes {
		if p == nil || p.HTTPGet == nil {
			problem("the container has no %s over HTTP", name)
			delete(probes, name)
			continue
		}
		if got := portOf(name, p.HTTPGet.Port); got != adminPort {
			problem("%s probes port %d; the admin listener is on %d (--admin %s)", name, got, adminPort, cfg.admin)
		}
	}
	if len(m.service.Ports) == 0 {
		t.Error("the Service exposes no port")
	}
	for _, p := range m.service.Ports {
		if got := portOf("the Service's port "+p.Name, p.TargetPort); got != callbackPort {
			problem("the Service sends port %s to %d; callbacks are on %d (--listen %s)", p.Name, got, callbackPort, cfg.listen)
		}
	}
	if l, r := probes["livenessProbe"], probes["readinessProbe"]; l != nil && r != nil && l.HTTPGet.Path == r.HTTPGet.Path {
		problem("liveness and readiness both probe %s: a database outage would fail liveness and restart every replica", l.HTTPGet.Path)
	}
	preStop := 0
	if ps := c.Lifecycle.PreStop; ps != nil && ps.Sleep != nil {
		preStop = ps.Sleep.Seconds
	}
	if grace := pod.TerminationGracePeriodSeconds; float64(grace) <= float64(preStop)+cfg.shutdownTimeout.Seconds() {
		problem("terminationGracePeriodSeconds %d is not over the preStop pause (%ds) and --shutdown-timeout (%v): the kubelet would kill a replica mid-shutdown",
			grace, preStop, cfg.shutdownTimeout)
	}

	// The rules file: mounted from the ConfigMap at the path serve reads.
	var rulesText string
	found := false
	for _, vm := range c.VolumeMounts {
		rel, err := filepath.Rel(vm.MountPath, cfg.rules)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil {
				rulesText, found = m.configMaps[v.ConfigMap.Name][rel]
				if !found {
					problem("--rules %s is key %q of ConfigMap %q, which has no such key", cfg.rules, rel, v.ConfigMap.Name)
				}
			}
		}
	}
	if rulesText == "" {
		if !found {
			problem("--rules %s is on no volume mounted from a ConfigMap", cfg.rules)
		}
		return problems
	}
	rulesPath := filepath.Join(t.TempDir(), filepath.Base(cfg.rules))
	writeFile(t, rulesPath, rulesText)
	set, err := loadForCLI(rulesPath, getenv, cfg.plugins)
	if err != nil {
		problem("livehook check of the ConfigMap's rules, with the pod's environment: %v", err)
		return problems
	}
	set.Retire()

	// The daemon as configured, but on loopback ports and the embedded
	// store (the DSN is a placeholder), its environment set for the
	// rules' ${VAR}s.
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg.rules, cfg.store, cfg.data = rulesPath, "", t.TempDir()
	d := startDaemonWith(t, cfg)
	for name, p := range probes {
		if status, body := adminGet(t, d.admURL(""), "", p.HTTPGet.Path); status != http.StatusOK {
			problem("%s: GET %s without the admin token answers %d %s; want 200", name, p.HTTPGet.Path, status, bytes.TrimSpace(body))
		}
	}
	if status, _ := adminGet(t, d.admURL(""), "", "/api/rules"); status != http.StatusUnauthorized {
		problem("GET /api/rules without the admin token: %d, want 401", status)
	}
	status, body := adminGet(t, d.admURL(""), cfg.hardening.adminToken, "/api/rules")
	var rep struct{ Hash string }
	if err := json.Unmarshal(body, &rep); status != http.StatusOK || err != nil || rep.Hash != hashOfRules(t, rulesPath) {
		problem("GET /api/rules: %d, hash %q; want the ConfigMap's rules' hash %s", status, rep.Hash, hashOfRules(t, rulesPath))
	}
	return problems
}

// TestKubernetesManifestMistakes breaks the manifests in the ways that
// would otherwise only show in a cluster, and checks each is caught.
func TestKubernetesManifestMistakes(t *testing.T) {
	container := func(m *manifests) *container { return &m.deployment.Template.Spec.Containers[0] }
	env := func(m *manifests, name string) int {
		i := slices.IndexFunc(container(m).Env, func(e envVar) bool { return e.Name == name })
		if i < 0 {
			t.Fatalf("the Deployment sets no %s", name)
		}
		return i
	}
	for _, tc := range []struct {
		name   string
		break_ func(m *manifests)
		want   string
	}{
		{"readiness probe on a path the daemon does not serve", func(m *manifests) { container(m).ReadinessProbe.HTTPGet.Path = "/ready" },
			"readinessProbe: GET /ready without the admin token answers 401"},
		{"liveness probe on the callback port", func(m *manifests) { container(m).LivenessProbe.HTTPGet.Port = "callbacks" },
			"livenessProbe probes port 8080; the admin listener is on 9090"},
		{"liveness probe on readiness", func(m *manifests) { container(m).LivenessProbe.HTTPGet.Path = "/readyz" },
			"liveness and readiness both probe /readyz"},
		{"the DSN under a name the daemon does not read", func(m *manifests) { container(m).Env[env(m, "LIVEHOOK_STORE")].Name = "LIVEHOOK_DSN" },
			"serve reads no PostgreSQL DSN"},
		{"the DSN inline", func(m *manifests) {
			dsn := m.secrets["livehook"]["LIVEHOOK_STORE"]
			e := &container(m).Env[env(m, "LIVEHOOK_STORE")]
			e.Value, e.ValueFrom = dsn, nil
			m.deploymentText = append(m.deploymentText, dsn...)
		}, "the value of Secret livehook's LIVEHOOK_STORE is inlined in the Deployment"},
		{"a key the Secret lacks", func(m *manifests) { delete(m.secrets["livehook"], "LIVEHOOK_ADMIN_TOKEN") },
			`env LIVEHOOK_ADMIN_TOKEN refers to key LIVEHOOK_ADMIN_TOKEN of Secret "livehook"`},
		{"a broken rules file", func(m *manifests) {
			m.configMaps["livehook-rules"]["rules.yaml"] = strings.Replace(m.configMaps["livehook-rules"]["rules.yaml"], `kind == "file"`, `knid == "file"`, 1)
		}, "livehook check of the ConfigMap's rules"},
		{"the Service on the admin port", func(m *manifests) { m.service.Ports[0].TargetPort = "9090" },
			"the Service sends port callbacks to 9090; callbacks are on 8080"},
		{"a grace period shorter than the shutdown", func(m *manifests) { m.deployment.Template.Spec.TerminationGracePeriodSeconds = 10 },
			"terminationGracePeriodSeconds 10 is not over"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := loadManifests(t, manifestDir)
			tc.break_(&m)
			problems := manifestProblems(t, m)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("want a problem saying %q, got %q", tc.want, problems)
			}
		})
	}
}
