package sqs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// errorCode returns the AWS error code of err ("QueueDoesNotExist"), or "".
// Some servers (ElasticMQ) send the shape's namespace too
// ("com.amazonaws.sqs#QueueDoesNotExist"): it is removed.
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		if i := strings.LastIndexByte(code, '#'); i >= 0 {
			code = code[i+1:]
		}
		return code
	}
	return ""
}

// Error codes SQS (and ElasticMQ) return for a queue that does not exist,
// in the AWS JSON and the older query protocols.
func isQueueMissing(err error) bool {
	switch errorCode(err) {
	case "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue":
		return true
	}
	return false
}

// isCredentialError reports whether AWS refused the request's credentials
// or signature (not merely a missing permission).
func isCredentialError(err error) bool {
	switch errorCode(err) {
	case "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
		"InvalidSecurity", "IncompleteSignature", "MissingAuthenticationToken",
		"ExpiredToken", "ExpiredTokenException", "InvalidAccessKeyId":
		return true
	}
	return false
}

// isAccessDenied reports whether the credentials are valid but lack a
// permission.
func isAccessDenied(err error) bool {
	switch errorCode(err) {
	case "AccessDenied", "AccessDeniedException", "AuthorizationError":
		return true
	}
	return false
}

// wrapErr turns an error from the AWS SDK into one of this driver's: a
// package prefix and the operation, mq's sentinels where one applies, and
// mq.Retryable for failures that may pass if repeated. A context error
// stays errors.Is-equal to ctx.Err(). The SDK's errors never contain
// secret keys, so neither do these.
func wrapErr(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return fmt.Errorf("sqs: %s: %w", op, ctxErr)
	}
	switch {
	case isQueueMissing(err):
		return fmt.Errorf("sqs: %s: %w: %v", op, mq.ErrNotFound, err)
	case isCredentialError(err):
		return fmt.Errorf("sqs: %s: the AWS credentials were rejected (check the AWS config chain: AWS_ACCESS_KEY_ID, AWS_PROFILE, role; and the region): %w", op, err)
	case isAccessDenied(err):
		return fmt.Errorf("sqs: %s: the AWS credentials lack a permission this call needs: %w", op, err)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return fmt.Errorf("sqs: %s: cannot resolve the SQS endpoint's host %q (check the region and endpoint parameters): %w", op, dnsErr.Name, err)
	}
	if isTransient(err) {
		return driver.Retryable(fmt.Errorf("sqs: %s: %w", op, err))
	}
	return fmt.Errorf("sqs: %s: %w", op, err)
}

// isTransient reports whether repeating the call may succeed: throttling,
// server faults, and network failures (a restarting endpoint).
func isTransient(err error) bool {
	switch errorCode(err) {
	case "RequestThrottled", "ThrottlingException", "Throttling", "OverLimit",
		"ServiceUnavailable", "InternalError", "InternalFailure", "KmsThrottled":
		return true
	}
	var re *retry.MaxAttemptsError
	if errors.As(err, &re) {
		return true
	}
	var rce *aws.RequestCanceledError
	if errors.As(err, &rce) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	var he interface{ HTTPStatusCode() int }
	if errors.As(err, &he) && he.HTTPStatusCode() >= 500 {
		return true
	}
	return false
}
