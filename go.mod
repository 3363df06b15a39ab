module github.com/seedmq/mq

go 1.26.8
