package redis

import (
	"context"
	"errors"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
)

// Redis has no numeric error codes: an error reply starts with an
// upper-case code word ("NOPERM this user has no permissions ..."). The
// writer numbers the code words it may meet, so that the requester gets
// them as an application HRESULT; docs/writer-redis.md lists them.
var replyCodes = map[string]uint32{
	"ERR":         1,
	"WRONGTYPE":   2,
	"NOAUTH":      3,
	"WRONGPASS":   4,
	"NOPERM":      5,
	"LOADING":     6,
	"BUSY":        7,
	"MISCONF":     8,
	"OOM":         9,
	"READONLY":    10,
	"MASTERDOWN":  11,
	"NOREPLICAS":  12,
	"EXECABORT":   13,
	"TRYAGAIN":    14,
	"CLUSTERDOWN": 15,
	"UNKILLABLE":  16,
}

// otherReply is the number of a code word not in replyCodes.
const otherReply = 0xFFFF

// replyCode returns the code word of a Redis error reply, or "" when err
// is not one (a network error, a timeout, a cancelled context).
func replyCode(err error) string {
	var re goredis.Error
	if !errors.As(err, &re) {
		return ""
	}
	word, _, _ := strings.Cut(re.Error(), " ")
	return word
}

// applicationHR carries the reply's code word to the requester
// (GetWriterStatusEx) as a customer-defined failure HRESULT: severity and
// customer bits set, facility 0, the number of the code word in the low 16
// bits. NOPERM is 0xA0000005, LOADING 0xA0000006. 0 when the error is not
// a Redis error reply.
func applicationHR(err error) vsserr.HRESULT {
	word := replyCode(err)
	if word == "" {
		return 0
	}
	n, ok := replyCodes[word]
	if !ok {
		n = otherReply
	}
	return vsserr.HRESULT(0xA0000000 | n)
}

// failureCode chooses the writer failure code (vss-reference §3.4) for an error by
// what a requester should do about it.
func failureCode(err error) vsserr.HRESULT {
	var old errTooOld
	if errors.As(err, &old) {
		return vsserr.WriterErrorNonRetryable
	}
	switch replyCode(err) {
	case "":
		// No reply: the server is down, restarting or unreachable, or the
		// connection broke. Another attempt may well work.
		return vsserr.WriterErrorRetryable
	case "LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN":
		// The server is busy with something that ends by itself.
		return vsserr.WriterErrorRetryable
	case "OOM":
		return vsserr.WriterErrorOutOfResources
	case "ERR":
		if strings.Contains(err.Error(), "max number of clients reached") {
			return vsserr.WriterErrorOutOfResources
		}
	}
	// NOAUTH, WRONGPASS, NOPERM (credentials and ACL rules), a command
	// renamed away ("ERR unknown command"), MISCONF, ...: it would fail
	// again the same way until someone changes the configuration.
	return vsserr.WriterErrorNonRetryable
}

// fail reports err with its writer failure code, the reply's code word as
// the application HRESULT, and the server's (or the driver's) own message
// after what the writer was doing. A context error is returned as is
// (wrapped), so that the SDK reports why the handler was cut short: the
// event's deadline (TIMEOUT) or an Abort, window expiry or lost stream
// (RETRYABLE). An error that already carries a writer failure is kept.
func fail(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var f *writer.Failure
	if errors.As(err, &f) {
		return err
	}
	return writer.Fail(failureCode(err), applicationHR(err), format+": %v", append(args, err)...)
}
