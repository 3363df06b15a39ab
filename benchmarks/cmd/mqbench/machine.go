package main

import (
	"bufio"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// machineHeader is the first line of a results file: where and how the
// numbers were taken.
type machineHeader struct {
	Kind        string            `json:"kind"` // "machine"
	Time        time.Time         `json:"time"`
	Mode        string            `json:"mode"`
	Note        string            `json:"note,omitempty"`
	CPUs        int               `json:"cpus"`
	CPUModel    string            `json:"cpu_model"`
	Kernel      string            `json:"kernel"`
	Go          string            `json:"go"`
	GOMAXPROCS  int               `json:"gomaxprocs"`
	Brokers     map[string]string `json:"brokers"`
	Modules     map[string]string `json:"modules"`
	Rounds      int               `json:"rounds"`
	RatioRounds int               `json:"ratio_rounds,omitempty"` // rounds of raw, raw+contract and mq; 0 in older files: Rounds
	Sizes       []int             `json:"sizes"`
	Concs       []int             `json:"concs"`
	LatencySecs float64           `json:"latency_seconds"`
	Msgs        map[string]int    `json:"msgs"`
	PerConc     map[string]bool   `json:"msgs_per_conc"`
	Batch       map[string]int    `json:"batch"`
	Rates       map[string]int    `json:"latency_rates"`
	Scale       float64           `json:"scale"`
	Args        []string          `json:"args"`
}

// contenderInfo describes one contender in the results file.
type contenderInfo struct {
	Kind      string `json:"kind"` // "contender"
	Broker    string `json:"broker"`
	Contender string `json:"contender"`
	Role      string `json:"role,omitempty"`
	Note      string `json:"note,omitempty"`
	NA        string `json:"na,omitempty"`
}

// modulesOfInterest are the client libraries whose versions the report
// names.
var modulesOfInterest = []string{
	"github.com/segmentio/kafka-go",
	"github.com/rabbitmq/amqp091-go",
	"github.com/aws/aws-sdk-go-v2/service/sqs",
	"github.com/ThreeDotsLabs/watermill",
	"github.com/ThreeDotsLabs/watermill-kafka/v3",
	"github.com/ThreeDotsLabs/watermill-amqp/v3",
	"github.com/IBM/sarama",
	"gocloud.dev",
	"go.opentelemetry.io/otel/sdk",
}

func machineInfo(o options, ps []brokerPlan) machineHeader {
	mode := "full"
	if o.short {
		mode = "short"
	}
	h := machineHeader{
		Kind: "machine", Time: time.Now().UTC(), Mode: mode, Note: o.note,
		CPUs: runtime.NumCPU(), CPUModel: cpuModel(), Kernel: strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")),
		Go: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		Brokers: map[string]string{}, Modules: map[string]string{},
		Rounds: o.rounds, RatioRounds: o.ratioRounds, Sizes: o.sizes, Concs: o.concs, LatencySecs: o.latencyDur.Seconds(),
		Msgs: map[string]int{}, PerConc: map[string]bool{}, Batch: map[string]int{}, Rates: map[string]int{}, Scale: o.scale, Args: os.Args[1:],
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			for _, m := range modulesOfInterest {
				if d.Path == m {
					v := d.Version
					if d.Replace != nil {
						v = d.Replace.Version
					}
					h.Modules[m] = v
				}
			}
		}
	}
	script := scriptVersions()
	for _, p := range ps {
		h.Msgs[p.Name] = p.Msgs
		h.PerConc[p.Name] = p.PerConc
		h.Batch[p.Name] = p.Batch
		h.Rates[p.Name] = int(p.LatencyRate)
		switch p.Name {
		case "memory":
			h.Brokers[p.Name] = "in process"
		case "kafka":
			h.Brokers[p.Name] = "Apache Kafka " + orUnknown(script["KAFKA_VERSION"]) + " (KRaft, single node, scripts/brokers)"
		case "rabbitmq":
			h.Brokers[p.Name] = "RabbitMQ " + orUnknown(rabbitVersion()) + " (single node, scripts/brokers)"
		case "sqs":
			h.Brokers[p.Name] = "ElasticMQ " + orUnknown(script["ELASTICMQ_VERSION"]) + " (scripts/brokers)"
		}
	}
	return h
}

func orUnknown(s string) string {
	if s == "" {
		return "(version unknown)"
	}
	return s
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

var versionLine = regexp.MustCompile(`(?m)^([A-Z_]+_VERSION)=([0-9][0-9A-Za-z.\-]*)`)

// scriptVersions reads the broker versions scripts/brokers installs.
func scriptVersions() map[string]string {
	out := map[string]string{}
	path := os.Getenv("MQ_TEST_BROKERS_SCRIPT")
	if path == "" {
		path = "../scripts/brokers"
	}
	for _, m := range versionLine.FindAllStringSubmatch(readFile(path), -1) {
		out[m[1]] = m[2]
	}
	return out
}
