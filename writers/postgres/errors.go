package postgres

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
)

// sqlstateBase is the first application HRESULT of a SQLSTATE: severity
// and customer bits set. A SQLSTATE is five characters of 0-9 and A-Z;
// read as a base-36 number it is below 36^5 (0x39AA400) and fits in the
// 27 bits below the customer bit.
const sqlstateBase = 0xA0000000

// SQLStateHRESULT is the application HRESULT the writer reports for a
// server error with SQLSTATE code: 0xA0000000 plus the code read as a
// base-36 number. 42501 (insufficient_privilege) is 0xA06809D1, 57P01
// (admin_shutdown) is 0xA0859F51. It is 0 for a string that is not a
// SQLSTATE.
func SQLStateHRESULT(code string) vsserr.HRESULT {
	if len(code) != 5 {
		return 0
	}
	var n uint32
	for _, c := range strings.ToUpper(code) {
		var d uint32
		switch {
		case c >= '0' && c <= '9':
			d = uint32(c - '0')
		case c >= 'A' && c <= 'Z':
			d = uint32(c-'A') + 10
		default:
			return 0
		}
		n = n*36 + d
	}
	return vsserr.HRESULT(sqlstateBase | n)
}

// SQLState decodes an application HRESULT of this writer back into the
// server's SQLSTATE; ok is false for a value SQLStateHRESULT does not make.
func SQLState(hr vsserr.HRESULT) (code string, ok bool) {
	v := uint32(hr)
	if v&0xF8000000 != sqlstateBase {
		return "", false
	}
	n := v &^ sqlstateBase
	if n >= 36*36*36*36*36 {
		return "", false
	}
	b := make([]byte, 5)
	for i := 4; i >= 0; i-- {
		d := byte(n % 36)
		if d < 10 {
			b[i] = '0' + d
		} else {
			b[i] = 'A' + d - 10
		}
		n /= 36
	}
	return string(b), true
}

// pgError is the server's error inside err, or nil.
func pgError(err error) *pgconn.PgError {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}

// applicationHR is the application HRESULT for err: the server's SQLSTATE,
// or 0 when the error did not come from the server (a refused connection,
// a broken socket).
func applicationHR(err error) vsserr.HRESULT {
	if pe := pgError(err); pe != nil {
		return SQLStateHRESULT(pe.Code)
	}
	return 0
}

// failureCode chooses the writer failure code (vss-reference §3.4) for err by what
// a requester should do about it.
func failureCode(err error) vsserr.HRESULT {
	pe := pgError(err)
	if pe == nil {
		// Not the server's answer: it could not be reached, or the
		// connection broke. The server may well be back for the next try.
		return vsserr.WriterErrorRetryable
	}
	switch class := pe.Code[:min(2, len(pe.Code))]; class {
	case "53": // insufficient resources: disk full, out of memory, too many connections
		return vsserr.WriterErrorOutOfResources
	case "08", // connection exception
		"40", // transaction rollback (serialization failure, deadlock)
		"55": // object not in prerequisite state (lock not available, in use)
		return vsserr.WriterErrorRetryable
	case "57": // operator intervention: cancelled, shutting down, starting up
		if pe.Code == "57P04" { // database dropped
			return vsserr.WriterErrorNonRetryable
		}
		return vsserr.WriterErrorRetryable
	}
	// Privileges (42501), authentication (28), a missing database (3D000),
	// I/O errors (58), internal errors (XX), ...: it would fail again.
	return vsserr.WriterErrorNonRetryable
}

// fail reports err, which came from the server or the connection to it,
// with its writer failure code, the SQLSTATE as the application HRESULT,
// and the server's (or pgx's) own message after what the writer was doing.
// When the handler's ctx has ended the error is returned as is, so that
// the SDK reports why the handler was cut short: the event's deadline
// (TIMEOUT) or an Abort, window expiry or lost stream (RETRYABLE). A
// timeout of the writer's own (the connect timeout) is a failure like any
// other connection failure.
func fail(ctx context.Context, err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	return writer.Fail(failureCode(err), applicationHR(err), "postgres writer: "+format+": %v", append(args, err)...)
}
