package mysql

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
)

// Server error numbers the writer treats specially (MySQL's and MariaDB's
// share these).
const (
	erLockWaitTimeout   = 1205 // ER_LOCK_WAIT_TIMEOUT: a lock statement gave up
	erAccessDenied      = 1045 // ER_ACCESS_DENIED_ERROR: bad user or password
	erSpecificAccess    = 1227 // ER_SPECIFIC_ACCESS_DENIED_ERROR: a privilege is missing
	erConnectionKilled  = 1927 // ER_CONNECTION_KILLED (MariaDB)
	erQueryInterrupted  = 1317 // ER_QUERY_INTERRUPTED
	erServerShutdown    = 1053 // ER_SERVER_SHUTDOWN
	erBackupLockActive  = 4145 // ER_BACKUP_LOCK_IS_ACTIVE (MariaDB)
	erLockOrActiveTrans = 1192 // ER_LOCK_OR_ACTIVE_TRANSACTION
)

// retryable are the server errors after which the whole backup will
// probably work if restarted: a lock wait the application or another
// backup won, a deadlock, an interrupted statement or connection, a server
// shutting down, a conflicting lock of another session.
var retryable = map[uint16]bool{
	erLockWaitTimeout: true, 1213: true, // ER_LOCK_DEADLOCK
	erQueryInterrupted: true, erConnectionKilled: true, erServerShutdown: true,
	1969: true, 3024: true, // statement time limit: MariaDB ER_STATEMENT_TIMEOUT, MySQL ER_QUERY_TIMEOUT
	1152: true, 1153: true, 1154: true, 1155: true, 1156: true, 1157: true, 1158: true, 1159: true, 1160: true, 1161: true, // ER_ABORTING_CONNECTION, ER_NET_*
	1223:                true, // ER_CANT_UPDATE_WITH_READLOCK: another session holds a global read lock
	erLockOrActiveTrans: true,
	erBackupLockActive:  true,
}

// outOfResources are the server errors that say it ran out of something.
var outOfResources = map[uint16]bool{
	1037: true, 1038: true, 1041: true, // ER_OUTOFMEMORY, ER_OUT_OF_SORTMEMORY, ER_OUT_OF_RESOURCES
	1040: true, 1203: true, 1226: true, // ER_CON_COUNT_ERROR, ER_TOO_MANY_USER_CONNECTIONS, ER_USER_LIMIT_REACHED
	1021: true, 1114: true, 1135: true, // ER_DISK_FULL, ER_RECORD_FILE_FULL, ER_CANT_CREATE_THREAD
}

// serverErrorNumber is the server's error number, or 0 when err did not
// come from the server.
func serverErrorNumber(err error) uint16 {
	var me *gomysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// applicationHR carries the server's error number to the requester
// (GetWriterStatusEx) as a customer-defined failure HRESULT: severity and
// customer bits set, facility 0, the number in the low 16 bits. Error 1205
// (lock wait timeout) is 0xA00004B5, 1227 (access denied) 0xA00004CB. 0
// when the error did not come from the server.
func applicationHR(err error) vsserr.HRESULT {
	n := serverErrorNumber(err)
	if n == 0 {
		return 0
	}
	return vsserr.HRESULT(0xA0000000 | uint32(n))
}

// connectionLost reports errors of the connection rather than of a
// statement: the server is unreachable, restarting, or dropped the
// session.
func connectionLost(err error) bool {
	var ne net.Error // dial and socket errors (*net.OpError): refused, reset, no socket file
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, gomysql.ErrInvalidConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne)
}

// failureCode chooses the writer failure code (vss-reference §3.4) for an error by
// what a requester should do about it.
func failureCode(err error) vsserr.HRESULT {
	if n := serverErrorNumber(err); n != 0 {
		switch {
		case retryable[n]:
			return vsserr.WriterErrorRetryable
		case outOfResources[n]:
			return vsserr.WriterErrorOutOfResources
		}
		// Access denied, a missing privilege, a statement the server does
		// not know, a read-only server, ...: it would fail again the same
		// way.
		return vsserr.WriterErrorNonRetryable
	}
	if connectionLost(err) {
		return vsserr.WriterErrorRetryable // a server restarting or unreachable for now
	}
	return vsserr.WriterErrorNonRetryable
}

// fail reports err with its writer failure code, the server's error number
// as the application HRESULT, and the server's (or the driver's) own
// message after what the writer was doing. A context error is returned
// as is (wrapped), so that the SDK reports why the handler was cut short:
// the event's deadline (TIMEOUT) or an Abort, window expiry or lost stream
// (RETRYABLE).
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
