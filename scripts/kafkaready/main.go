// Command kafkaready exits 0 when a Kafka broker answers a metadata request
// that lists at least one broker (at least -min-brokers, for a cluster), a
// controller and a leader for every partition. scripts/brokers uses it as
// Kafka's readiness probe; it is not part of the mq API.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/segmentio/kafka-go"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9092", "broker host:port")
	timeout := flag.Duration("timeout", 3*time.Second, "time bound for the request")
	minBrokers := flag.Int("min-brokers", 1, "brokers the metadata must list (a cluster's size)")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	client := &kafka.Client{Addr: kafka.TCP(*addr), Timeout: *timeout}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafkaready: metadata:", err)
		os.Exit(1)
	}
	if len(md.Brokers) == 0 || md.Controller.Host == "" {
		fmt.Fprintln(os.Stderr, "kafkaready: metadata has no brokers or no controller yet")
		os.Exit(1)
	}
	if len(md.Brokers) < *minBrokers {
		fmt.Fprintf(os.Stderr, "kafkaready: metadata lists %d broker(s), want %d\n", len(md.Brokers), *minBrokers)
		os.Exit(1)
	}
	// After a restart the broker answers before it leads its partitions again;
	// clients then get "no leader" errors. Ready means every partition has one.
	for _, tp := range md.Topics {
		if tp.Error != nil {
			fmt.Fprintf(os.Stderr, "kafkaready: topic %s: %v\n", tp.Name, tp.Error)
			os.Exit(1)
		}
		for _, p := range tp.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				fmt.Fprintf(os.Stderr, "kafkaready: topic %s partition %d has no leader yet (%v)\n", tp.Name, p.ID, p.Error)
				os.Exit(1)
			}
		}
	}
	fmt.Printf("kafka ready: %d broker(s), controller %d, %d topic(s)\n", len(md.Brokers), md.Controller.ID, len(md.Topics))
}
