package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmw "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	smithymw "github.com/aws/smithy-go/middleware"

	"github.com/seedmq/mq"
	mqsqs "github.com/seedmq/mq/sqs"
)

// sqsReceivers is the number of long-poll loops of the raw and mq SQS
// contenders for a concurrency level.
func sqsReceivers(conc int) int { return max(1, conc/2) }

// sqsWait is the long-poll time of every SQS contender (SQS's maximum,
// its documented best practice).
const sqsWait = 20

func sqsPlan(ctx context.Context) brokerPlan {
	p := brokerPlan{Name: "sqs", Msgs: 1000, PerConc: true, Batch: 10, LatencyRate: 50}
	endpoint, region := os.Getenv("MQ_TEST_SQS_ENDPOINT"), os.Getenv("MQ_TEST_SQS_REGION")
	if endpoint == "" {
		p.NA = "MQ_TEST_SQS_ENDPOINT is not set (run: eval \"$(scripts/brokers env)\")"
		return p
	}
	if region == "" {
		region = "us-east-1"
	}
	open := func(ctx context.Context, c cell) (mq.Broker, error) {
		client, transport, err := sqsClient(ctx, endpoint, region)
		if err != nil {
			return nil, err
		}
		b, err := mqsqs.New(ctx, mqsqs.Options{Client: client, Receivers: sqsReceivers(c.Conc), WaitTime: sqsWait * time.Second})
		if err != nil {
			return nil, err
		}
		return &closeIdle{Broker: b, t: transport}, nil
	}
	// The driver's queue is named topic: these Options set no QueuePrefix,
	// no FIFO and no DeadLetterQueue, so it creates no other queue.
	del := func(ctx context.Context, topic string) error {
		client, transport, err := sqsClient(ctx, endpoint, region)
		if err != nil {
			return err
		}
		defer transport.CloseIdleConnections()
		out, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(topic)})
		if err != nil {
			return fmt.Errorf("queue %s: %w", topic, err)
		}
		return deleteSQSQueue(ctx, client, aws.ToString(out.QueueUrl))
	}
	p.Contenders = append(p.Contenders, sqsRaw(endpoint, region, false), sqsRaw(endpoint, region, true))
	p.Contenders = append(p.Contenders, mqContenders(fmt.Sprintf("sqs.New over the same client as raw (what sqs:// builds: standard retryer without rate limit, 128 idle connections per host), Receivers max(1, conc/2), WaitTime %ds, Senders 16 (default); ten messages per Publish; Subscribe with Concurrency(conc)", sqsWait), open, del)...)
	p.Contenders = append(p.Contenders, contender{Name: "watermill-default", NA: "watermill-aws, Watermill's SQS driver, cannot be downloaded (module proxy: 403; github.com unreachable)"},
		contender{Name: "watermill-tuned", NA: "watermill-aws, Watermill's SQS driver, cannot be downloaded (module proxy: 403; github.com unreachable)"})
	return p
}

type sqsRawRun struct {
	client    *sqs.Client
	transport *http.Transport
	queue     string
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	contract  bool // send an mq-id attribute with each message
}

func (r *sqsRawRun) Publish(ctx context.Context, bodies [][]byte, sent int64) error {
	entries := make([]types.SendMessageBatchRequestEntry, len(bodies))
	for i, b := range bodies {
		entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(string(b))}
		if sent != 0 || r.contract {
			entries[i].MessageAttributes = map[string]types.MessageAttributeValue{}
		}
		if sent != 0 {
			entries[i].MessageAttributes[sentHeader] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(formatSent(sent))}
		}
		if r.contract {
			entries[i].MessageAttributes["mq-id"] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(mq.NewID())}
		}
	}
	out, err := r.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(r.queue), Entries: entries})
	if err != nil {
		return err
	}
	if len(out.Failed) > 0 {
		return fmt.Errorf("%d of %d entries failed: %s", len(out.Failed), len(entries), aws.ToString(out.Failed[0].Message))
	}
	return nil
}

func (r *sqsRawRun) Close(context.Context) error {
	r.cancel()
	r.wg.Wait()
	r.transport.CloseIdleConnections()
	return nil
}

func (r *sqsRawRun) Delete(ctx context.Context) error {
	defer r.transport.CloseIdleConnections()
	return deleteSQSQueue(ctx, r.client, r.queue)
}

// deleteSQSQueue deletes the queue at url. ElasticMQ keeps every queue
// in its store and restores them all before it answers at start-up.
func deleteSQSQueue(ctx context.Context, client *sqs.Client, url string) error {
	if _, err := client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)}); err != nil {
		return fmt.Errorf("delete queue %s: %w", url, err)
	}
	return nil
}

// sqsClient returns an SQS client for the local server, configured the way
// the driver configures its own for sqs:// URLs: the standard retryer
// without its client-side rate limit, and an HTTP transport keeping up to
// 128 idle connections per host (the SDK's default of 10 would make
// concurrent senders and receivers open new connections all the time).
// Every API call is counted in apiCalls.
func sqsClient(ctx context.Context, endpoint, region string) (*sqs.Client, *http.Transport, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.RateLimiter = ratelimit.None })
		}))
	if err != nil {
		return nil, nil, err
	}
	// Keep what the AWS config set on the SDK's transport (a CA bundle...).
	var transport *http.Transport
	if bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
		transport = bc.GetTransport()
	} else {
		transport = awshttp.NewBuildableClient().GetTransport()
	}
	transport.MaxIdleConnsPerHost = 128
	cfg.HTTPClient = &http.Client{Transport: transport}
	client := sqs.NewFromConfig(cfg, func(o *sqs.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.APIOptions = append(o.APIOptions, countCalls)
	})
	return client, transport, nil
}

// countCalls is SDK middleware counting each operation in apiCalls.
func countCalls(stack *smithymw.Stack) error {
	return stack.Initialize.Add(smithymw.InitializeMiddlewareFunc("mqbench-count", func(ctx context.Context, in smithymw.InitializeInput, next smithymw.InitializeHandler) (smithymw.InitializeOutput, smithymw.Metadata, error) {
		apiCalls.add(awsmw.GetOperationName(ctx))
		return next.HandleInitialize(ctx, in)
	}), smithymw.Before)
}

// closeIdle is an mq broker whose Close also closes the idle connections
// of the HTTP transport it was given, as the driver does for the clients
// it builds itself.
type closeIdle struct {
	mq.Broker
	t *http.Transport
}

func (c *closeIdle) Close(ctx context.Context) error {
	err := c.Broker.Close(ctx)
	c.t.CloseIdleConnections()
	return err
}

// Unwrap returns the driver's broker, for mq.Provision and mq.As.
func (c *closeIdle) Unwrap() any { return c.Broker }

// sqsRaw is aws-sdk-go-v2 used directly: SendMessageBatch of ten,
// receivers long-polling ReceiveMessage for ten at a time and deleting
// each received batch with DeleteMessageBatch.
//
// With contract, it also carries what mq's contract puts on every
// message, so that the gap between it and raw is the contract's cost and
// the gap between mq and it is the driver's: a UUIDv7 ID in an attribute
// (as the driver sends it) and the receive count and send time asked for
// on receive (Attempt and PublishTime).
func sqsRaw(endpoint, region string, contract bool) contender {
	name, role := "raw", "raw"
	note := fmt.Sprintf("aws-sdk-go-v2: SendMessageBatch of ten per call; max(1, conc/2) receivers each looping ReceiveMessage(MaxNumberOfMessages 10, WaitTimeSeconds %d) then DeleteMessageBatch", sqsWait)
	var system []types.MessageSystemAttributeName
	if contract {
		name, role = "raw+contract", ""
		note = "raw, plus what mq's contract carries: an mq-id attribute holding mq.NewID() on each message, and ApproximateReceiveCount and SentTimestamp asked for on receive"
		system = []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount,
			types.MessageSystemAttributeNameSentTimestamp,
		}
	}
	return contender{Name: name, Role: role, Note: note,
		Start: func(ctx context.Context, c cell, recv func(int64)) (run, error) {
			client, transport, err := sqsClient(ctx, endpoint, region)
			if err != nil {
				return nil, err
			}
			out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(freshTopic("raw"))})
			if err != nil {
				return nil, fmt.Errorf("create queue: %w", err)
			}
			rctx, cancel := context.WithCancel(context.Background())
			r := &sqsRawRun{client: client, transport: transport, queue: aws.ToString(out.QueueUrl), cancel: cancel, contract: contract}
			for range sqsReceivers(c.Conc) {
				r.wg.Go(func() {
					for rctx.Err() == nil {
						got, err := client.ReceiveMessage(rctx, &sqs.ReceiveMessageInput{
							QueueUrl:                    aws.String(r.queue),
							MaxNumberOfMessages:         10,
							WaitTimeSeconds:             sqsWait,
							MessageAttributeNames:       []string{"All"},
							MessageSystemAttributeNames: system,
						})
						if err != nil {
							select { // back off before retrying a failed receive
							case <-rctx.Done():
							case <-time.After(100 * time.Millisecond):
							}
							continue
						}
						if len(got.Messages) == 0 {
							continue
						}
						del := make([]types.DeleteMessageBatchRequestEntry, len(got.Messages))
						for i, m := range got.Messages {
							recv(parseSent(aws.ToString(m.MessageAttributes[sentHeader].StringValue)))
							del[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
						}
						_, _ = client.DeleteMessageBatch(rctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(r.queue), Entries: del})
					}
				})
			}
			return r, nil
		}}
}
