package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Position is where the server's binary log stood while the writer held
// its commits: the point the snapshot is consistent at, in the terms a
// replica or a point-in-time recovery needs. The writer stores it, as
// JSON, in the backup metadata of its component (BACKUP_METADATA in the
// Backup Components Document); ParsePosition reads it back.
type Position struct {
	// Strategy is how the server was held: backup-stage or ftwrl.
	Strategy Strategy `json:"strategy"`
	// Server is VERSION().
	Server   string `json:"server"`
	ServerID uint32 `json:"server_id"`
	// ServerUUID is MySQL's @@server_uuid (empty on MariaDB).
	ServerUUID string `json:"server_uuid,omitempty"`
	// LockedAt is when the lock statement returned: from then on, until
	// the release, nothing committed.
	LockedAt time.Time `json:"locked_at"`
	// BinlogFile and BinlogPosition are SHOW MASTER STATUS's File and
	// Position: the end of the binary log, where a replica of the
	// snapshot would start reading. Empty and 0 when binary logging is
	// off.
	BinlogFile     string `json:"binlog_file,omitempty"`
	BinlogPosition uint64 `json:"binlog_position,omitempty"`
	// GTIDBinlogPos is MariaDB's @@gtid_binlog_pos: the GTID of the last
	// transaction of each domain in the binary log; a replica of the
	// snapshot starts from it (SET GLOBAL gtid_slave_pos).
	GTIDBinlogPos string `json:"gtid_binlog_pos,omitempty"`
	// GTIDCurrentPos is MariaDB's @@gtid_current_pos, which also counts
	// transactions this server applied as a replica.
	GTIDCurrentPos string `json:"gtid_current_pos,omitempty"`
	// ExecutedGTIDSet is MySQL's @@gtid_executed.
	ExecutedGTIDSet string `json:"executed_gtid_set,omitempty"`
}

// ParsePosition reads a component's backup metadata as the writer wrote it.
func ParsePosition(metadata string) (Position, error) {
	var p Position
	if err := json.Unmarshal([]byte(metadata), &p); err != nil {
		return Position{}, fmt.Errorf("mysql writer backup metadata: %w", err)
	}
	return p, nil
}

func (p Position) metadata() string {
	b, _ := json.Marshal(p) // no value of a Position can fail
	return string(b)
}

// readPosition reads the binary log position and GTIDs on the connection
// that holds the server, so that they are those of the frozen point.
func readPosition(ctx context.Context, q querier, v serverVersion) (Position, error) {
	p := Position{Server: v.text}
	rows, err := q.QueryContext(ctx, v.binlogStatusStatement())
	if err != nil {
		return p, err
	}
	// The columns differ (MySQL adds Executed_Gtid_Set): read them by name.
	// No row means binary logging is off.
	cols, err := rows.Columns()
	if err != nil {
		rows.Close()
		return p, err
	}
	if rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			rows.Close()
			return p, err
		}
		for i, c := range cols {
			switch strings.ToLower(c) {
			case "file":
				p.BinlogFile = vals[i].String
			case "position":
				fmt.Sscan(vals[i].String, &p.BinlogPosition)
			case "executed_gtid_set":
				p.ExecutedGTIDSet = strings.ReplaceAll(vals[i].String, "\n", "")
			}
		}
	}
	if err := rows.Close(); err != nil {
		return p, err
	}
	if v.mariaDB {
		err = q.QueryRowContext(ctx, "SELECT @@server_id, @@GLOBAL.gtid_binlog_pos, @@GLOBAL.gtid_current_pos").
			Scan(&p.ServerID, &p.GTIDBinlogPos, &p.GTIDCurrentPos)
	} else {
		var executed sql.NullString
		err = q.QueryRowContext(ctx, "SELECT @@server_id, @@server_uuid, @@GLOBAL.gtid_executed").
			Scan(&p.ServerID, &p.ServerUUID, &executed)
		if p.ExecutedGTIDSet == "" {
			p.ExecutedGTIDSet = strings.ReplaceAll(executed.String, "\n", "")
		}
	}
	return p, err
}
