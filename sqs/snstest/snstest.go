// Package snstest gives tests a real server for SNS fan-out to SQS
// (moto in server mode), for the sns+sqs:// driver of package sqs.
//
// Endpoint resolves the server in this order:
//
//  1. MQ_TEST_SNS_ENDPOINT (e.g. http://127.0.0.1:5000) and
//     MQ_TEST_SNS_REGION (default "us-east-1"), as printed by
//     `scripts/brokers env` in this repository;
//  2. a container started with testcontainers-go (image
//     MQ_TEST_MOTO_IMAGE, default motoserver/moto:5.2.5) when a Docker
//     engine answers; one container per test binary, removed when it
//     exits;
//  3. otherwise the test is skipped with a message saying how to start
//     brokers, or fails when MQ_TEST_REQUIRE_BROKERS=1.
//
// Typical use in this repository:
//
//	scripts/brokers up moto && eval "$(scripts/brokers env)" && go test ./sqs/...
//
// moto keeps everything in memory: a restart loses every topic, queue and
// message, so there is no Restart here.
package snstest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/seedmq/mq/internal/brokertest"
)

// Environment variables read by this package.
const (
	EnvEndpoint = "MQ_TEST_SNS_ENDPOINT"
	EnvRegion   = "MQ_TEST_SNS_REGION"
)

// DefaultImage is the container image used when Docker provides the server.
const DefaultImage = "motoserver/moto:5.2.5"

// DefaultRegion is the region used when MQ_TEST_SNS_REGION is unset.
const DefaultRegion = "us-east-1"

var broker = brokertest.New(brokertest.Spec{
	Name: "moto",
	Env:  EnvEndpoint,
	Container: &brokertest.ContainerSpec{
		Image: imageFromEnv(),
		Port:  "5000/tcp",
		Addr:  func(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) },
		Ready: Ready,
	},
})

func imageFromEnv() string {
	if v := os.Getenv("MQ_TEST_MOTO_IMAGE"); v != "" {
		return v
	}
	return DefaultImage
}

// Endpoint returns the server's base URL and the region to sign requests
// for, or skips/fails t as the package documentation says.
func Endpoint(t testing.TB) (endpoint, region string) {
	t.Helper()
	endpoint = broker.Addr(t)
	region = os.Getenv(EnvRegion)
	if region == "" {
		region = DefaultRegion
	}
	return endpoint, region
}

// Config returns an aws.Config for the test server: its region, static
// credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY when set, else dummy
// ones) and BaseEndpoint. Use it with sns.NewFromConfig and
// sqs.NewFromConfig.
func Config(t testing.TB) aws.Config {
	t.Helper()
	endpoint, region := Endpoint(t)
	id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if id == "" || secret == "" {
		id, secret = "test", "test"
	}
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(id, secret, ""),
		BaseEndpoint: aws.String(endpoint),
	}
}

// Ready returns nil when the server at endpoint answers an SNS ListTopics
// call (moto routes a request by the service in its signature's scope).
func Ready(ctx context.Context, endpoint string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/",
		bytes.NewReader([]byte("Action=ListTopics&Version=2010-03-31")))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/"+DefaultRegion+"/sns/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("ListTopicsResponse")) {
		return fmt.Errorf("ListTopics: %s: %.300s", resp.Status, body)
	}
	return nil
}
