"""Foreign SQS client for sqs/interop_test.go, using boto3.

  interop_boto3.py send ENDPOINT REGION QUEUE
      Sends the foreign message below to QUEUE, as a boto3 service would,
      and prints {"message_id": ...}.
  interop_boto3.py receive ENDPOINT REGION QUEUE COUNT TIMEOUT
      Receives and deletes COUNT messages from QUEUE, waiting at most
      TIMEOUT seconds in all, and prints one JSON object per message: its
      MessageId, body in hex (UTF-8) and each message attribute as
      {"type": DataType, "hex": its String or Binary value's bytes in hex}.

Credentials are AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, else "test".
"""
import json
import os
import sys
import time

import boto3


def client(endpoint, region):
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID") or "test",
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY") or "test",
    )


def send(endpoint, region, queue):
    c = client(endpoint, region)
    url = c.get_queue_url(QueueName=queue)["QueueUrl"]
    r = c.send_message(
        QueueUrl=url,
        MessageBody="boto3 body ünïcode",
        MessageAttributes={
            "text": {"DataType": "String", "StringValue": "ünïcode"},
            "count": {"DataType": "Number", "StringValue": "7"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\xfe\x00\xff"},
        },
    )
    print(json.dumps({"message_id": r["MessageId"]}), flush=True)


def attr_json(a):
    if "BinaryValue" in a:
        return {"type": a["DataType"], "hex": a["BinaryValue"].hex()}
    return {"type": a["DataType"], "hex": a.get("StringValue", "").encode("utf-8").hex()}


def receive(endpoint, region, queue, count, timeout):
    c = client(endpoint, region)
    url = c.get_queue_url(QueueName=queue)["QueueUrl"]
    deadline = time.monotonic() + timeout
    got = 0
    while got < count and time.monotonic() < deadline:
        r = c.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(10, count - got),
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        )
        for m in r.get("Messages", []):
            c.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            got += 1
            print(json.dumps({
                "message_id": m["MessageId"],
                "body_hex": m["Body"].encode("utf-8").hex(),
                "attributes": {k: attr_json(v) for k, v in m.get("MessageAttributes", {}).items()},
            }), flush=True)
    if got < count:
        sys.exit(f"interop_boto3.py: got {got} of {count} messages from {queue} within {timeout}s")


def main():
    a = sys.argv
    if len(a) == 5 and a[1] == "send":
        send(a[2], a[3], a[4])
    elif len(a) == 7 and a[1] == "receive":
        receive(a[2], a[3], a[4], int(a[5]), float(a[6]))
    else:
        sys.exit("usage: interop_boto3.py send ENDPOINT REGION QUEUE | receive ENDPOINT REGION QUEUE COUNT TIMEOUT")


if __name__ == "__main__":
    main()
