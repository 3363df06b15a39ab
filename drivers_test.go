package mq_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDriversUseOnlyThePublicPackages checks that each driver is what an
// author in another module could write: its code imports nothing of this
// module but package mq and package driver.
func TestDriversUseOnlyThePublicPackages(t *testing.T) {
	allowed := map[string]bool{"github.com/seedmq/mq": true, "github.com/seedmq/mq/driver": true}
	for _, dir := range []string{"kafka", "memory", "rabbitmq", "sqs"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", dir, err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if strings.HasPrefix(path, "github.com/seedmq/mq") && !allowed[path] {
					t.Errorf("%s imports %s; a driver may import only github.com/seedmq/mq and github.com/seedmq/mq/driver of this module", name, path)
				}
			}
		}
	}
}
