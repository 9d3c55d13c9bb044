package document

import (
	"math/big"
	"time"
)

// Times are written as decimal FILETIME (VSS_TIMESTAMP: signed count of
// 100 ns intervals since 1601-01-01 UTC), the unit the VSS API itself uses
// for snapshot creation and last-modify times, so a value copied from a
// Windows API call needs no conversion and no time zone is involved.

const (
	filetimePerSecond     = 10_000_000
	secondsFrom1601To1970 = 11_644_473_600
)

// timeToFiletime converts t, truncating to 100 ns. ok is false when t lies
// outside what a signed 64-bit FILETIME can hold. The zero time converts to
// 0 with ok true; callers omit it instead of writing it.
func timeToFiletime(t time.Time) (int64, bool) {
	if t.IsZero() {
		return 0, true
	}
	// big.Int keeps the range check obviously right at both ends; this runs
	// once per written time, so its cost does not matter.
	ft := new(big.Int).Add(big.NewInt(t.Unix()), big.NewInt(secondsFrom1601To1970))
	ft.Mul(ft, big.NewInt(filetimePerSecond))
	ft.Add(ft, big.NewInt(int64(t.Nanosecond())/100))
	if !ft.IsInt64() {
		return 0, false
	}
	return ft.Int64(), true
}

// filetimeToTime is the inverse; every int64 maps to a time.
func filetimeToTime(ft int64) time.Time {
	sec := ft / filetimePerSecond
	rem := ft % filetimePerSecond
	if rem < 0 { // floor, so that the remainder is a non-negative fraction
		sec--
		rem += filetimePerSecond
	}
	return time.Unix(sec-secondsFrom1601To1970, rem*100).UTC()
}
