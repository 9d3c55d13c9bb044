package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protowire"
)

// Snapshot records are stored in the protobuf wire format, written and
// read by hand with protowire (docs/decisions.md L48): the field numbers
// below are the file format, as the JSON names were before schema 2. A
// reader skips fields it does not know, so a newer lvssd may still add
// fields an older one reads past. JSON took about 5 µs to decode a record,
// half of listing 10,000 snapshots; this takes a fraction of one.
//
// A record that begins with '{' is JSON, written by a schema-1 lvssd: Open
// rewrites those when it migrates a catalog, and decodeRecord still reads
// them, so a record can never become unreadable by being left behind.
const (
	fID                 = 1  // bytes, 16
	fSetID              = 2  // bytes, 16
	fSnapshotsCount     = 3  // varint
	fOriginalVolume     = 4  // string
	fDevicePath         = 5  // string
	fExposedName        = 6  // string
	fExposedPath        = 7  // string
	fProviderID         = 8  // bytes, 16
	fProviderName       = 9  // string
	fProviderHandle     = 10 // string
	fAttributes         = 11 // varint
	fContext            = 12 // zigzag varint (VSS_CTX_ALL is -1)
	fCreatedSeconds     = 13 // zigzag varint, Unix seconds (the zero time is before 1970)
	fCreatedNanos       = 14 // varint
	fOriginatingMachine = 15 // string
	fServiceMachine     = 16 // string
	fConsistency        = 17 // string
	fConsistencyReason  = 18 // string
	fSessionID          = 19 // bytes, 16
	fAutoRelease        = 20 // varint, 1
	fShareExposure      = 21 // string
)

// encodeRecord appends the stored form of s to b. The ID comes first, so
// a record never begins with '{'.
func encodeRecord(b []byte, s *Snapshot) []byte {
	id := func(num protowire.Number, u uuid.UUID) {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendBytes(b, u[:])
	}
	str := func(num protowire.Number, v string) {
		if v != "" {
			b = protowire.AppendTag(b, num, protowire.BytesType)
			b = protowire.AppendString(b, v)
		}
	}
	varint := func(num protowire.Number, v uint64) {
		if v != 0 {
			b = protowire.AppendTag(b, num, protowire.VarintType)
			b = protowire.AppendVarint(b, v)
		}
	}
	id(fID, s.ID)
	id(fSetID, s.SetID)
	varint(fSnapshotsCount, protowire.EncodeZigZag(int64(s.SnapshotsCount)))
	str(fOriginalVolume, s.OriginalVolume)
	str(fDevicePath, s.DevicePath)
	str(fExposedName, s.ExposedName)
	str(fExposedPath, s.ExposedPath)
	id(fProviderID, s.ProviderID)
	str(fProviderName, s.ProviderName)
	str(fProviderHandle, s.ProviderHandle)
	varint(fAttributes, uint64(s.Attributes))
	varint(fContext, protowire.EncodeZigZag(int64(s.Context)))
	// Written even when zero: 0 seconds is 1970, not "no time".
	b = protowire.AppendTag(b, fCreatedSeconds, protowire.VarintType)
	b = protowire.AppendVarint(b, protowire.EncodeZigZag(s.Created.Unix()))
	varint(fCreatedNanos, uint64(s.Created.Nanosecond()))
	str(fOriginatingMachine, s.OriginatingMachine)
	str(fServiceMachine, s.ServiceMachine)
	str(fConsistency, s.Consistency)
	str(fConsistencyReason, s.ConsistencyReason)
	id(fSessionID, s.SessionID)
	if s.AutoRelease {
		varint(fAutoRelease, 1)
	}
	str(fShareExposure, s.ShareExposure)
	return b
}

var errRecord = errors.New("malformed record")

// decodeRecord reads a stored snapshot record of either format.
func decodeRecord(data []byte) (Snapshot, error) {
	if len(data) > 0 && data[0] == '{' {
		var r snapshotRecord
		if err := json.Unmarshal(data, &r); err != nil {
			return Snapshot{}, err
		}
		return r.snapshot(), nil
	}
	var s Snapshot
	var secs int64
	var nanos uint64
	// One copy of the record holds every string field: substrings of it
	// share its memory, so a record costs one allocation for its strings
	// instead of one each (a listing decodes thousands).
	whole := string(data)
	// v ends where data (what is left to read) begins.
	str := func(v []byte) string {
		i := len(whole) - len(data) - len(v)
		return whole[i : i+len(v)]
	}
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return Snapshot{}, fmt.Errorf("%w: %v", errRecord, protowire.ParseError(n))
		}
		data = data[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(data)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(data)
		default:
			n = protowire.ConsumeFieldValue(num, typ, data)
		}
		if n < 0 {
			return Snapshot{}, fmt.Errorf("%w: field %d: %v", errRecord, num, protowire.ParseError(n))
		}
		data = data[n:]
		var err error
		switch num {
		case fID:
			err = setID(&s.ID, typ, v)
		case fSetID:
			err = setID(&s.SetID, typ, v)
		case fProviderID:
			err = setID(&s.ProviderID, typ, v)
		case fSessionID:
			err = setID(&s.SessionID, typ, v)
		case fOriginalVolume:
			s.OriginalVolume = str(v)
		case fDevicePath:
			s.DevicePath = str(v)
		case fExposedName:
			s.ExposedName = str(v)
		case fExposedPath:
			s.ExposedPath = str(v)
		case fProviderName:
			s.ProviderName = str(v)
		case fProviderHandle:
			s.ProviderHandle = str(v)
		case fOriginatingMachine:
			s.OriginatingMachine = str(v)
		case fServiceMachine:
			s.ServiceMachine = str(v)
		case fConsistency:
			s.Consistency = str(v)
		case fConsistencyReason:
			s.ConsistencyReason = str(v)
		case fSnapshotsCount:
			s.SnapshotsCount = int(protowire.DecodeZigZag(x))
		case fAttributes:
			s.Attributes = uint32(x)
		case fContext:
			s.Context = int32(protowire.DecodeZigZag(x))
		case fCreatedSeconds:
			secs = protowire.DecodeZigZag(x)
		case fCreatedNanos:
			nanos = x
		case fAutoRelease:
			s.AutoRelease = x != 0
		case fShareExposure:
			s.ShareExposure = str(v)
		}
		// Any other field is a newer lvssd's: skipped.
		if err != nil {
			return Snapshot{}, err
		}
	}
	if nanos >= uint64(time.Second) {
		return Snapshot{}, fmt.Errorf("%w: %d nanoseconds", errRecord, nanos)
	}
	s.Created = time.Unix(secs, int64(nanos)).UTC()
	return s, nil
}

func setID(dst *uuid.UUID, typ protowire.Type, v []byte) error {
	if typ != protowire.BytesType || len(v) != len(dst) {
		return fmt.Errorf("%w: a GUID of %d bytes", errRecord, len(v))
	}
	copy(dst[:], v)
	return nil
}

// recordSetID reads only the set ID of a stored record: a grouped listing
// needs it of every snapshot it passes, and decodes only those it returns.
func recordSetID(data []byte) (uuid.UUID, error) {
	if len(data) == 0 || data[0] == '{' {
		s, err := decodeRecord(data)
		return s.SetID, err
	}
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return uuid.Nil, fmt.Errorf("%w: %v", errRecord, protowire.ParseError(n))
		}
		data = data[n:]
		if num == fSetID {
			v, n := protowire.ConsumeBytes(data)
			var id uuid.UUID
			if n < 0 {
				return uuid.Nil, fmt.Errorf("%w: field %d: %v", errRecord, num, protowire.ParseError(n))
			}
			return id, setID(&id, typ, v)
		}
		if n = protowire.ConsumeFieldValue(num, typ, data); n < 0 {
			return uuid.Nil, fmt.Errorf("%w: field %d: %v", errRecord, num, protowire.ParseError(n))
		}
		data = data[n:]
	}
	return uuid.Nil, nil
}
