package brokertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
)

// ContainerSpec says how to run a broker in a container. The container port
// is published on 127.0.0.1 at a free host port that stays the same across
// Restart, so clients reconnect to the same address.
type ContainerSpec struct {
	// Image is the image reference, e.g. "apache/kafka:3.9.1".
	Image string
	// Port is the port the broker listens on inside the container, e.g. "5672/tcp".
	// With SamePort it is ignored: the broker listens on the host port's number
	// (for brokers that advertise their own address, like Kafka).
	Port     string
	SamePort bool
	// Env, Cmd and Files (container path → content) get the host port.
	Env   func(hostPort int) map[string]string
	Cmd   func(hostPort int) []string
	Files func(hostPort int) map[string]string
	// Addr is the address tests get, e.g. "127.0.0.1:PORT" or a URL.
	Addr func(hostPort int) string
	// Ready returns nil once the broker at addr answers a real request.
	Ready func(ctx context.Context, addr string) error
	// BeforeRestart, when set, runs before a container restart; the function
	// it returns runs after Ready succeeded and waits until the broker has
	// recovered its state (ElasticMQ restores persisted queues only after it
	// answers).
	BeforeRestart func(ctx context.Context, addr string) (settled func(ctx context.Context) error)
}

var (
	dockerOnce sync.Once
	dockerErr  error
)

// DockerHealthy reports (once per process) whether a Docker engine answers.
// testcontainers-go can panic without Docker; a panic becomes an error here.
func DockerHealthy(ctx context.Context) error {
	dockerOnce.Do(func() { dockerErr = dockerHealth(ctx) })
	return dockerErr
}

func dockerHealth(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("no Docker engine (testcontainers panicked: %v)", r)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return fmt.Errorf("no Docker engine: %w", err)
	}
	defer func() { _ = p.Close() }()
	if err := p.Health(ctx); err != nil {
		return fmt.Errorf("no Docker engine answers: %w", err)
	}
	return nil
}

type runningContainer struct {
	spec *ContainerSpec
	ctr  *testcontainers.DockerContainer
	addr string
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startContainer(ctx context.Context, spec *ContainerSpec) (rc *runningContainer, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("testcontainers panicked: %v", r)
		}
	}()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cport := spec.Port
	if spec.SamePort {
		cport = strconv.Itoa(port) + "/tcp"
	}
	np, err := network.ParsePort(cport)
	if err != nil {
		return nil, fmt.Errorf("container port %q: %w", cport, err)
	}
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithExposedPorts(cport),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{np: {{
				HostIP:   netip.MustParseAddr("127.0.0.1"),
				HostPort: strconv.Itoa(port),
			}}}
		}),
	}
	if spec.Env != nil {
		opts = append(opts, testcontainers.WithEnv(spec.Env(port)))
	}
	if spec.Cmd != nil {
		opts = append(opts, testcontainers.WithCmd(spec.Cmd(port)...))
	}
	if spec.Files != nil {
		var files []testcontainers.ContainerFile
		for path, content := range spec.Files(port) {
			files = append(files, testcontainers.ContainerFile{
				Reader:            strings.NewReader(content),
				ContainerFilePath: path,
				FileMode:          0o644,
			})
		}
		opts = append(opts, testcontainers.WithFiles(files...))
	}
	ctr, err := testcontainers.Run(ctx, spec.Image, opts...)
	if err != nil {
		if ctr != nil {
			_ = ctr.Terminate(context.Background())
		}
		return nil, err
	}
	rc = &runningContainer{spec: spec, ctr: ctr, addr: spec.Addr(port)}
	if err := rc.waitReady(ctx); err != nil {
		_ = ctr.Terminate(context.Background())
		return nil, err
	}
	return rc, nil
}

func (rc *runningContainer) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	return WaitReady(ctx, rc.addr, rc.spec.Ready)
}

func (rc *runningContainer) restart(ctx context.Context) error {
	var settled func(context.Context) error
	if rc.spec.BeforeRestart != nil {
		settled = rc.spec.BeforeRestart(ctx, rc.addr)
	}
	if err := rc.stopStart(ctx); err != nil {
		return err
	}
	if settled != nil {
		return settled(ctx)
	}
	return nil
}

func (rc *runningContainer) stopStart(ctx context.Context) error {
	stop := 30 * time.Second
	if err := rc.ctr.Stop(ctx, &stop); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	if err := rc.ctr.Start(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	return rc.waitReady(ctx)
}

// WaitReady calls ready until it returns nil or ctx ends (then it returns the
// last error). Each call gets at most 5 seconds.
func WaitReady(ctx context.Context, addr string, ready func(context.Context, string) error) error {
	if ready == nil {
		return nil
	}
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = ready(cctx, addr)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("broker at %s not ready: %w", addr, ctx.Err()), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
