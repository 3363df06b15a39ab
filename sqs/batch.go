package sqs

import "github.com/aws/aws-sdk-go-v2/aws"

// batchIDs are the Ids of batch entries, by index. Requests share them
// (the SDK only reads them), so that an entry costs no allocation for its
// Id.
var batchIDs = [maxBatch]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

// batchID returns the Id of a batch's entry i (i < maxBatch).
func batchID(i int) *string { return &batchIDs[i] }

func atoiID(id *string) int {
	v := aws.ToString(id)
	if len(v) != 1 || v[0] < '0' || v[0] > '9' {
		return -1
	}
	return int(v[0] - '0')
}
