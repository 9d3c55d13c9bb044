package sqlite

import (
	"context"
	"errors"

	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
)

// applicationHR carries SQLite's extended result code to the requester
// (GetWriterStatusEx) as a customer-defined failure HRESULT: severity and
// customer bits set, facility 0, the code in the low 16 bits. SQLITE_BUSY
// (5) is 0xA0000005, SQLITE_IOERR_FSYNC (1034) is 0xA000040A. 0 when the
// error did not come from SQLite.
func applicationHR(err error) vsserr.HRESULT {
	code := sqliteCode(err)
	if code == 0 {
		return 0
	}
	return vsserr.HRESULT(0xA0000000 | uint32(code)&0xFFFF)
}

// failureCode chooses the writer failure code (vss-reference §3.4) for a SQLite
// error by what a requester should do about it.
func failureCode(err error) vsserr.HRESULT {
	switch sqliteCode(err) & 0xff {
	case 5, 6, 9, 15: // BUSY, LOCKED, INTERRUPT, PROTOCOL: the application was in the way; try again
		return vsserr.WriterErrorRetryable
	case 7, 13: // NOMEM, FULL
		return vsserr.WriterErrorOutOfResources
	case 0:
		return vsserr.WriterErrorRetryable // not from SQLite: an interrupted wait
	}
	// IOERR, CORRUPT, NOTADB, CANTOPEN, READONLY, PERM, ...: it would fail
	// again the same way.
	return vsserr.WriterErrorNonRetryable
}

// fail reports err from SQLite with its writer failure code, SQLite's code
// as the application HRESULT, and SQLite's own message after what the
// writer was doing. A context error is returned as is (wrapped), so that
// the SDK reports why the handler was cut short: the event's deadline
// (TIMEOUT) or an Abort, window expiry or lost stream (RETRYABLE).
func fail(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return writer.Fail(failureCode(err), applicationHR(err), format+": %v", append(args, err)...)
}
