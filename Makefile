# mq: common tasks. Brokers for tests come from scripts/brokers (see its header).
GO ?= go

.PHONY: test brokers-up brokers-down brokers-status brokers-env vet example

# Start the brokers that are not running, run the whole suite against them with
# MQ_TEST_REQUIRE_BROKERS=1, stop the brokers this target started (also on failure).
test:
	scripts/test

# The tests named Cluster, TLS or SASL against three-node Kafka and RabbitMQ clusters with TLS
# (and SCRAM on Kafka): start the clusters that are not running, run those tests with
# MQ_TEST_REQUIRE_CLUSTER=1, stop the clusters this target started. About 5 minutes.
.PHONY: test-cluster
test-cluster:
	scripts/test-cluster

brokers-up:
	scripts/brokers up

brokers-down:
	scripts/brokers down

brokers-status:
	scripts/brokers status

brokers-env:
	@scripts/brokers env

vet:
	$(GO) vet ./...
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt -l reports unformatted files:"; echo "$$out"; exit 1; fi

example:
	$(GO) run ./examples/signup

# Benchmarks (benchmarks/, a module of its own): start the brokers that are not running, measure mq
# against the raw clients, Watermill and gocloud in paired rounds, write benchmarks/results/*.jsonl
# and BENCHMARKS.md. bench-short is the quick check (under 5 minutes). Extra flags: MQBENCH_FLAGS.
.PHONY: bench bench-short
bench:
	scripts/brokers up
	eval "$$(scripts/brokers env)" && cd benchmarks && $(GO) run ./cmd/mqbench $(MQBENCH_FLAGS)

bench-short:
	scripts/brokers up
	eval "$$(scripts/brokers env)" && cd benchmarks && $(GO) run ./cmd/mqbench -short $(MQBENCH_FLAGS)
