package provider

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/yamlconf"
	"github.com/livehook/livehook/plugins/protocol"
)

// ManifestFile is the name of a plugin's manifest inside its folder.
const ManifestFile = "plugin.yaml"

// DefaultTimeout is how long a plugin may run when its manifest says nothing.
const DefaultTimeout = 10 * time.Second

// Manifest is a plugin's plugin.yaml, as written.
type Manifest struct {
	Name     string        `yaml:"name"`     // the `type:` in rules; must be the folder's name
	Doc      string        `yaml:"doc"`      // one line for help output
	Protocol int           `yaml:"protocol"` // must be protocol.Version
	Command  Command       `yaml:"command"`  // program and arguments; a relative program is in the plugin's folder
	Timeout  time.Duration `yaml:"timeout"`  // per run, then the process group is killed
	Env      []string      `yaml:"env"`      // the daemon's variables the plugin may see; no other one is passed
	// Delivery is the default delivery policy of the plugin's instances,
	// over actionapi.Alerting; a rule's `delivery:` overrides it.
	Delivery actionapi.DeliveryPolicy `yaml:"delivery"`
	Settings []Field                  `yaml:"settings"` // per instance
	Params   []Field                  `yaml:"params"`   // per step (defaults may sit on the instance)
}

// Command is a program and its arguments, written as a list or as a single
// string holding just the program.
type Command []string

// UnmarshalYAML accepts `command: ./x` and `command: [./x, --flag]`.
func (c *Command) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*c = Command{n.Value}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return yamlconf.PositionError(n, "command: want a program, or a list of the program and its arguments")
	}
	*c = list
	return nil
}

// Field is one setting or parameter a plugin accepts.
type Field struct {
	Name     string    `yaml:"name"`
	Type     string    `yaml:"type"` // see kinds; default string
	Doc      string    `yaml:"doc"`
	Required bool      `yaml:"required"`
	Secret   bool      `yaml:"secret"`   // never shown; reaches the plugin only on stdin
	Template bool      `yaml:"template"` // rendered against the event at each delivery (params only)
	Enum     []string  `yaml:"enum"`     // allowed values of a plain string
	Pattern  string    `yaml:"pattern"`  // a regexp (RE2) a plain string must match
	Default  yaml.Node `yaml:"default"`

	pattern *regexp.Regexp
	def     any // the decoded default; nil when there is none
	node    *yaml.Node
}

// The value types a field may have.
var kinds = []string{"string", "int", "number", "bool", "duration", "list", "map", "object"}

// hostKeys are instance and step keys livehook reads itself; a plugin's
// fields cannot use them.
var hostKeys = []string{"action", "delivery", "timeout", "type", "with"}

var (
	nameRE    = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	fieldRE   = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Plugin is a plugin that loaded: its manifest checked and its command found.
type Plugin struct {
	Manifest
	Dir     string // absolute path of its folder
	File    string // its manifest
	program string // absolute path of the command's program
	name    *yaml.Node
}

// loadManifest reads and checks dir's manifest. Every problem is
// collected into l with its file:line:col; nil means the plugin is unusable.
func loadManifest(dir string, l *yamlconf.List) *Plugin {
	file := filepath.Join(dir, ManifestFile)
	data, err := os.ReadFile(file)
	if err != nil {
		l.Add(yamlconf.Diagnostic{File: file, Line: 1, Col: 1, Msg: fmt.Sprintf("read plugin manifest: %v", err)})
		return nil
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		l.AddErr(file, nil, err)
		return nil
	}
	if root.Kind == 0 || root.Content[0].Kind != yaml.MappingNode {
		l.Add(yamlconf.Diagnostic{File: file, Line: 1, Col: 1, Msg: "plugin manifest: want a mapping with name, protocol and command"})
		return nil
	}
	doc := root.Content[0]
	p := &Plugin{File: file, Dir: dir}
	before := len(*l)
	if err := yamlconf.Decode(file, doc, &p.Manifest); err != nil {
		l.AddErr(file, doc, err)
		return nil
	}
	p.check(doc, l)
	if len(*l) > before {
		return nil
	}
	return p
}

// check validates a decoded manifest and compiles its fields.
func (p *Plugin) check(doc *yaml.Node, l *yamlconf.List) {
	file, m := p.File, &p.Manifest
	p.name = valueOf(doc, "name")
	folder := filepath.Base(p.Dir)
	switch {
	case m.Name == "":
		l.At(file, doc, "name is required (the folder's name, %q)", folder)
	case m.Name != folder:
		l.At(file, p.name, "name %q must be the plugin's folder name %q", m.Name, folder)
	case !nameRE.MatchString(m.Name):
		l.At(file, p.name, "name %q: want lower-case letters, digits, - and _, starting with a letter", m.Name)
	}
	switch {
	case m.Protocol == 0:
		l.At(file, doc, "protocol is required (this livehook speaks %d)", protocol.Version)
	case m.Protocol != protocol.Version:
		l.At(file, valueOf(doc, "protocol"), "protocol %d is not supported (this livehook speaks %d)", m.Protocol, protocol.Version)
	}
	if m.Timeout < 0 {
		l.At(file, valueOf(doc, "timeout"), "timeout: want a positive duration such as 30s")
	}
	if m.Timeout == 0 {
		m.Timeout = DefaultTimeout
	}
	if d := m.Delivery; d.MaxAttempts < 0 || d.MaxAge < 0 || d.Concurrency < 0 || d.Backoff < 0 || d.MaxBackoff < 0 {
		l.At(file, valueOf(doc, "delivery"), "delivery: values must be positive")
	}
	if m.Delivery != (actionapi.DeliveryPolicy{}) {
		m.Delivery = m.Delivery.Over(actionapi.Alerting)
	}
	for i, name := range m.Env {
		if !envNameRE.MatchString(name) {
			l.At(file, itemOf(valueOf(doc, "env"), i), "env: %q is not a variable name", name)
		}
	}
	p.checkCommand(valueOf(doc, "command"), doc, l)
	seen := map[string]*yaml.Node{}
	for _, list := range []struct {
		key    string
		fields []Field
	}{{"settings", m.Settings}, {"params", m.Params}} {
		seq := valueOf(doc, list.key)
		for i := range list.fields {
			f := &list.fields[i]
			f.node = itemOf(seq, i)
			f.check(file, list.key == "settings", seen, l)
		}
	}
}

// checkCommand resolves the command's program: relative to the plugin's
// folder when it holds a slash, else through the daemon's PATH. It must
// exist and be executable now, so a plugin that was not built is a load
// error rather than a failed delivery later.
func (p *Plugin) checkCommand(n, doc *yaml.Node, l *yamlconf.List) {
	if len(p.Command) == 0 || p.Command[0] == "" {
		l.At(p.File, doc, "command is required (the plugin's program, such as ./%s)", p.Name)
		return
	}
	prog := p.Command[0]
	if !strings.ContainsRune(prog, '/') {
		path, err := exec.LookPath(prog)
		if err != nil {
			l.At(p.File, n, "command %q: not found in PATH", prog)
			return
		}
		prog = path
	} else if !filepath.IsAbs(prog) {
		prog = filepath.Join(p.Dir, prog)
	}
	st, err := os.Stat(prog)
	switch {
	case errors.Is(err, os.ErrNotExist):
		l.At(p.File, n, "command %q: no such file (is the plugin built?)", p.Command[0])
	case err != nil:
		l.At(p.File, n, "command %q: %v", p.Command[0], err)
	case !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0:
		l.At(p.File, n, "command %q: not an executable file", p.Command[0])
	default:
		p.program = prog
	}
}

// check validates one field and decodes its default.
func (f *Field) check(file string, isSetting bool, seen map[string]*yaml.Node, l *yamlconf.List) {
	at := func(key string) *yaml.Node { return valueOf(f.node, key) }
	switch prev, dup := seen[f.Name]; {
	case f.Name == "":
		l.At(file, f.node, "name is required")
		return
	case !fieldRE.MatchString(f.Name):
		l.At(file, at("name"), "name %q: want lower-case letters, digits and _, starting with a letter", f.Name)
	case slices.Contains(hostKeys, f.Name):
		l.At(file, at("name"), "name %q is reserved: livehook reads %s itself", f.Name, strings.Join(hostKeys, ", "))
	case dup:
		l.At(file, at("name"), "%q is already declared at line %d (settings and params share one namespace)", f.Name, prev.Line)
	default:
		seen[f.Name] = f.node
	}
	if f.Type == "" {
		f.Type = "string"
	}
	if !slices.Contains(kinds, f.Type) {
		l.At(file, at("type"), "%s: type %q: want one of %s", f.Name, f.Type, strings.Join(kinds, ", "))
		return
	}
	plain := f.Type == "string" && !f.Template
	switch {
	case f.Secret && f.Type != "string":
		l.At(file, at("secret"), "%s: only a string can be secret", f.Name)
	case f.Secret && f.Template:
		l.At(file, at("secret"), "%s: a secret cannot be a template", f.Name)
	case f.Template && isSetting:
		l.At(file, at("template"), "%s: settings are not templates; declare it under params", f.Name)
	case f.Template && !slices.Contains([]string{"string", "list", "map", "object"}, f.Type):
		l.At(file, at("template"), "%s: a %s cannot be a template", f.Name, f.Type)
	case len(f.Enum) > 0 && !plain:
		l.At(file, at("enum"), "%s: enum needs a string that is not a template", f.Name)
	case f.Pattern != "" && !plain:
		l.At(file, at("pattern"), "%s: pattern needs a string that is not a template", f.Name)
	case f.Required && f.Default.Kind != 0:
		l.At(file, at("default"), "%s: a required field has no default", f.Name)
	}
	if f.Pattern != "" {
		re, err := regexp.Compile(f.Pattern)
		if err != nil {
			l.At(file, at("pattern"), "%s: pattern: %v", f.Name, err)
		}
		f.pattern = re
	}
	if f.Default.Kind != 0 {
		f.def = f.decode(file, &f.Default, l, nil)
	}
}

// valueOf returns the value of key in mapping n, or n itself when the key
// is missing, so a problem is still reported somewhere near.
func valueOf(n *yaml.Node, key string) *yaml.Node {
	if n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1]
			}
		}
	}
	return n
}

// itemOf returns item i of sequence n, or n itself.
func itemOf(n *yaml.Node, i int) *yaml.Node {
	if n != nil && n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return n.Content[i]
	}
	return n
}
