package main

import (
	"flag"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/plugins/provider"
)

// defaultPlugins is where plugins are looked for when no --plugins is
// given; unlike a folder the user names, it may be missing.
const defaultPlugins = "./plugins.d"

// pluginsFlag registers --plugins on fs. Its default comes from
// LIVEHOOK_PLUGINS, for the commands whose other flags take no variables.
//
// The flag's default is empty, meaning "not given": then defaultPlugins is
// used and may be missing, while a folder the user names must exist.
func pluginsFlag(fs *flag.FlagSet, dir *string, getenv func(string) (string, bool)) {
	def := ""
	if getenv != nil {
		if v, ok := getenv(envName("plugins")); ok {
			def = v
		}
	}
	fs.StringVar(dir, "plugins", def, "plugins `DIR`: each folder in it with a plugin.yaml adds an action type; rescanned on reload (default "+defaultPlugins+", env LIVEHOOK_PLUGINS)")
}

// pluginRegistry returns the action types for each load: the built-ins
// plus the plugins in dir, scanned again on every call. An empty dir means
// the default folder, which may be missing.
func pluginRegistry(dir string) func() (*actionapi.Registry, error) {
	missingOK := dir == ""
	if missingOK {
		dir = defaultPlugins
	}
	return provider.Provider(provider.Options{Dir: dir, Base: actionapi.Default(), MissingOK: missingOK})
}
