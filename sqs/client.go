package sqs

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/seedmq/mq"
)

// newClient builds the client of a Broker whose Options give none, from
// the standard AWS config chain with o's Region, Endpoint and Profile. It
// returns the client's own HTTP transport too, whose idle connections
// Close closes (nil if the AWS config brought an HTTP client of its own).
func newClient(ctx context.Context, o Options) (*sqs.Client, *http.Transport, error) {
	cfg, transport, err := loadConfig(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	client := sqs.NewFromConfig(cfg, func(so *sqs.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
	})
	return client, transport, nil
}

// loadConfig loads the AWS configuration newClient builds its client from
// (sns+sqs builds its SNS client from it too), and returns the HTTP
// transport it set, if any.
func loadConfig(ctx context.Context, o Options) (aws.Config, *http.Transport, error) {
	var loadOpts []func(*config.LoadOptions) error
	if o.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(o.Region))
	}
	if o.Profile != "" {
		loadOpts = append(loadOpts, config.WithSharedConfigProfile(o.Profile))
	}
	// A long-running consumer must keep retrying through an outage: the
	// SDK's default client-side retry quota would start failing every
	// call at once after a few errors ("retry quota exceeded").
	loadOpts = append(loadOpts, config.WithRetryer(func() aws.Retryer {
		return retry.NewStandard(func(so *retry.StandardOptions) { so.RateLimiter = ratelimit.None })
	}))
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return aws.Config{}, nil, fmt.Errorf("sqs: loading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, nil, fmt.Errorf("sqs: %w: no AWS region: set Options.Region (region in an sqs:// URL) or AWS_REGION", mq.ErrInvalidOption)
	}
	// Find credentials now (the first request would, and they are
	// cached), so that having none says so, instead of surfacing as an
	// instance-metadata error reported against the SQS endpoint.
	if cfg.Credentials != nil {
		if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
			if ctx.Err() != nil {
				return aws.Config{}, nil, fmt.Errorf("sqs: looking for AWS credentials: %w", ctx.Err())
			}
			return aws.Config{}, nil, fmt.Errorf("sqs: no usable AWS credentials: the standard chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the shared config files, web identity, the ECS or EC2 instance role) found none; for a local server such as ElasticMQ any static pair will do: %w", err)
		}
	}
	// The broker's own HTTP transport (with what the AWS config set on the
	// SDK's, such as a CA bundle), so that Close can close its idle
	// connections, with enough idle connections per host for the
	// concurrent senders, receivers and deleters.
	var transport *http.Transport
	if bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
		transport = bc.GetTransport()
	} else if cfg.HTTPClient == nil {
		transport = awshttp.NewBuildableClient().GetTransport()
	}
	if transport != nil {
		transport.MaxIdleConnsPerHost = 128
		cfg.HTTPClient = &http.Client{Transport: transport}
	}
	return cfg, transport, nil
}

// endpointOf describes where client sends requests, for error messages.
func endpointOf(c *sqs.Client) string {
	o := c.Options()
	if o.BaseEndpoint != nil {
		return *o.BaseEndpoint
	}
	return "SQS in region " + strings.TrimSpace(o.Region)
}
