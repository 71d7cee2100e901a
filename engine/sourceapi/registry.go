package sourceapi

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Registry holds the kinds of callback the daemon takes.
type Registry struct {
	mu     sync.RWMutex
	byName map[string]*Source // every source but the family
	byPath map[string]*Source // likewise
	family *Source            // the source that names its sources by path; nil if none
}

// NewRegistry returns an empty registry, for tests.
func NewRegistry() *Registry {
	return &Registry{byName: map[string]*Source{}, byPath: map[string]*Source{}}
}

var defaultRegistry = NewRegistry()

// Default is the registry that built-in sources register into.
func Default() *Registry { return defaultRegistry }

// Register adds s to the default registry. It is meant for init and panics
// on an incomplete or clashing descriptor: a silent overwrite would hide a
// bug.
func Register(s Source) {
	if err := defaultRegistry.Add(s); err != nil {
		panic(err)
	}
}

// Add adds s, refusing an incomplete descriptor, a name or path already
// taken, and a second family: names from paths must say which source they
// are.
func (r *Registry) Add(s Source) error {
	switch {
	case !ValidName(s.Name):
		return fmt.Errorf("register source %q: want a name of 1-64 letters, digits, '_', '.' or '-'", s.Name)
	case !strings.HasPrefix(s.Path, "/") || strings.Count(s.Path, familyMark) > 1 ||
		strings.Contains(s.Path, familyMark) && !strings.HasSuffix(s.Path, "/"+familyMark):
		return fmt.Errorf("register source %q: path %q: want an absolute path, or one ending in /%s", s.Name, s.Path, familyMark)
	case len(s.Methods) == 0 || s.Decode == nil || s.Doc == "":
		return fmt.Errorf("register source %q: Doc, Methods and Decode are required", s.Name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.all() {
		switch {
		case o.Name == s.Name:
			return fmt.Errorf("register source %q: already registered", s.Name)
		case o.Path == s.Path:
			return fmt.Errorf("register source %q: path %s is already %s's", s.Name, s.Path, o.Name)
		case s.Family() && o.Family():
			return fmt.Errorf("register source %q: %s already names sources by path", s.Name, o.Name)
		}
	}
	if s.Family() {
		r.family = &s
		return nil
	}
	r.byName[s.Name], r.byPath[s.Path] = &s, &s
	return nil
}

// Lookup returns the descriptor of the source name: its own, else the
// family's when name is a source name no other descriptor has.
func (r *Registry) Lookup(name string) (*Source, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if s, ok := r.byName[name]; ok {
		return s, true
	}
	if r.family != nil && ValidName(name) {
		return r.family, true
	}
	return nil, false
}

// Route finds the source a request path belongs to, and the source name
// the path gives. s is nil when no source has the path; ok is false when
// the path is under a family's prefix but does not name a source of it:
// not a source name, or another descriptor's.
func (r *Registry) Route(path string) (s *Source, name string, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if s, ok := r.byPath[path]; ok {
		return s, s.Name, true
	}
	if r.family == nil {
		return nil, "", false
	}
	name, under := strings.CutPrefix(path, strings.TrimSuffix(r.family.Path, familyMark))
	if !under {
		return nil, "", false
	}
	_, taken := r.byName[name]
	return r.family, name, ValidName(name) && !taken
}

// All lists the registered sources, sorted by name.
func (r *Registry) All() []*Source {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.all()
}

func (r *Registry) all() []*Source {
	out := make([]*Source, 0, len(r.byName)+1)
	for _, s := range r.byName {
		out = append(out, s)
	}
	if r.family != nil {
		out = append(out, r.family)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
