package sqs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/seedmq/mq"
)

func TestWrapErr(t *testing.T) {
	api := func(code string) error {
		return fmt.Errorf("operation error SQS: X: %w", &smithy.GenericAPIError{Code: code, Message: "m"})
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name      string
		ctx       context.Context
		err       error
		is        error
		retryable bool
		text      string
	}{
		{"missing queue", context.Background(), api("QueueDoesNotExist"), mq.ErrNotFound, false, "not found"},
		{"missing queue, namespaced", context.Background(), api("com.amazonaws.sqs#QueueDoesNotExist"), mq.ErrNotFound, false, "not found"},
		{"bad key", context.Background(), api("InvalidClientTokenId"), nil, false, "credentials were rejected"},
		{"bad signature", context.Background(), api("SignatureDoesNotMatch"), nil, false, "credentials were rejected"},
		{"no permission", context.Background(), api("AccessDenied"), nil, false, "lack a permission"},
		{"throttled", context.Background(), api("RequestThrottled"), nil, true, "RequestThrottled"},
		{"canceled", canceled, fmt.Errorf("op: %w", context.Canceled), context.Canceled, false, "canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := wrapErr(tt.ctx, "Op", tt.err)
			if !strings.HasPrefix(err.Error(), "sqs: ") || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("got %q, want the sqs: prefix and %q", err, tt.text)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("got %v, want it to match %v", err, tt.is)
			}
			if got := mq.IsRetryable(err); got != tt.retryable {
				t.Errorf("IsRetryable(%v): got %v, want %v", err, got, tt.retryable)
			}
		})
	}
}

func TestPublishResult(t *testing.T) {
	msgs := []*mq.Message{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	newCall := func(errs ...error) *pubCall {
		c := &pubCall{entries: make([]pubEntry, len(errs))}
		for i, err := range errs {
			c.entries[i].err = err
		}
		return c
	}
	whole := errors.New("connection reset")
	if err := newCall(nil, nil, nil).result(msgs); err != nil {
		t.Errorf("all accepted: got %v, want nil", err)
	}
	if err := newCall(whole, whole, whole).result(msgs); err != whole {
		t.Errorf("one failure of the whole call: got %v, want it as it is", err)
	}
	bad := errors.New("InvalidMessageContents")
	var pe *mq.PublishError
	err := newCall(nil, bad, nil).result(msgs)
	if !errors.As(err, &pe) || pe.Total != 3 || len(pe.Failures) != 1 || pe.Failures[0].Index != 1 || pe.Failures[0].ID != "b" {
		t.Errorf("partial failure: got %#v, want a *mq.PublishError naming message 1 (id b) of 3", err)
	}
}
