package brokertest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Python returns the python of the interoperability tests' virtualenv
// (pika, boto3, confluent-kafka, pinned by scripts/pyenv), which
// scripts/pyenv makes under .cache when it is missing. Without python3 or
// PyPI the test is skipped, or fails when MQ_TEST_REQUIRE_BROKERS=1; who
// names the test's side in the message.
func Python(t testing.TB, who string) string {
	t.Helper()
	script, err := moduleFile("scripts/pyenv")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, script)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := who + ": scripts/pyenv (python3 -m venv, pip install the pinned interop clients): " + err.Error() + ": " + stderr.String()
		if Required() {
			t.Fatal(msg)
		}
		t.Skip("skipped: " + msg)
	}
	return strings.TrimSpace(string(out))
}

// moduleFile returns the path of rel in the module that holds the current
// directory (a test runs in its package's directory).
func moduleFile(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for range 16 {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, rel), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", fmt.Errorf("brokertest: no go.mod in %s or above it, so no %s", dir, rel)
}
