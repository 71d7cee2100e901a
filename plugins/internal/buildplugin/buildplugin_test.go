package buildplugin_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	_ "github.com/livehook/livehook/actions/log" // the READMEs' rules use it

	"github.com/livehook/livehook/plugins/internal/buildplugin"
	"github.com/livehook/livehook/plugins/internal/plugintest"
	"github.com/livehook/livehook/plugins/provider"
)

// TestBuildEverything runs what `go run ./plugins/build DIR` runs and
// loads the result as the daemon would: every shipped plugin builds and
// its manifest is valid.
func TestBuildEverything(t *testing.T) {
	ctx := context.Background()
	root, err := buildplugin.ModuleRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names, err := buildplugin.Names(root)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"feishu", "wecom"}) {
		t.Errorf("plugins %v, want feishu and wecom (examples are not shipped)", names)
	}
	dst := filepath.Join(t.TempDir(), "plugins.d")
	if err := buildplugin.Build(ctx, root, dst, append(names, "examples/echo"), io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, name := range append(names, "echo") {
		if st, err := os.Stat(filepath.Join(dst, name, name)); err != nil || st.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s: no executable: %v", name, err)
		}
	}
	reg, err := provider.Registry(provider.Options{Dir: dst})
	if err != nil {
		t.Fatalf("the built plugins do not load:\n%v", err)
	}
	for _, name := range []string{"feishu", "wecom", "echo"} {
		if _, ok := reg.Lookup(name); !ok {
			t.Errorf("no type %q after the build", name)
		}
	}

	// Every plugin's README shows rules that load as they are.
	if err := os.CopyFS(filepath.Join(dst, "filedrop"), os.DirFS(filepath.Join(root, "plugins", "examples", "filedrop"))); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FEISHU_WEBHOOK", "https://open.feishu.cn/open-apis/bot/v2/hook/x")
	t.Setenv("FEISHU_SECRET", "s3cret")
	t.Setenv("WECOM_WEBHOOK", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k")
	for _, readme := range []string{"feishu/README.md", "wecom/README.md", "examples/filedrop/README.md"} {
		t.Run(readme, func(t *testing.T) {
			text, err := os.ReadFile(filepath.Join(root, "plugins", readme))
			if err != nil {
				t.Fatal(err)
			}
			snippets := yamlBlocks(string(text))
			if len(snippets) == 0 {
				t.Fatal("no yaml snippet")
			}
			for _, src := range snippets {
				if _, err := plugintest.Load(t, dst, nil, src, nil); err != nil {
					t.Errorf("snippet does not load:\n%v\n%s", err, src)
				}
			}
		})
	}
}

// yamlBlocks returns the ```yaml blocks of a markdown text.
func yamlBlocks(md string) []string {
	var out []string
	for {
		_, rest, ok := strings.Cut(md, "```yaml\n")
		if !ok {
			return out
		}
		block, after, _ := strings.Cut(rest, "```")
		out = append(out, block)
		md = after
	}
}
