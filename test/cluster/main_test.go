package cluster

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver

	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// driverEnv makes the test binary the invariant test's driver instead
// of running tests: TestClusterInvariant starts it again, in a host's
// namespace, with this set.
const driverEnv = "LVSS_CLUSTER_DRIVER"

// TestMain runs the driver when asked to, else the tests, and removes the
// binaries they built.
func TestMain(m *testing.M) {
	if os.Getenv(driverEnv) != "" {
		if err := drive(); err != nil {
			fmt.Fprintln(os.Stderr, "driver:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	lvssdtest.Main(m)
}

// The bank: accounts in each database, and a ledger of transfers.
const (
	accounts = 20
	opening  = 10000 // each account's opening balance, in the debited database
)

// bankSchema makes a database of the bank: opening is each account's
// balance.
func bankSchema(opening int) string {
	return fmt.Sprintf(`PRAGMA journal_mode=WAL;
CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
CREATE TABLE ledger (transfer INTEGER PRIMARY KEY, account INTEGER NOT NULL, amount INTEGER NOT NULL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < %d)
INSERT INTO accounts SELECT i, %d FROM n;`, accounts, opening)
}

// openBank opens a database of the bank for the driver or a check: a busy
// timeout longer than any freeze window (the SQLite writer's lock makes a
// transfer wait, never fail), BEGIN IMMEDIATE for every transaction.
func openBank(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(120000)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// drive is the driver: it moves money from an account of database A
// (debit) to one of database B (credit), transfer after transfer, as fast
// as it can, until SIGTERM. Each transfer is two transactions, one per
// database, each writing the transfer's number in its ledger: between
// them, A has a debit B has not credited yet. Between transfers it looks
// at the pause file its writer's freeze hook writes (a token), answers by
// writing the token to the ack file, and waits until the file is gone
// (thaw or abort) or holds another token.
func drive() error {
	pathA, pathB := os.Getenv("LVSS_DRIVER_A"), os.Getenv("LVSS_DRIVER_B")
	pause, ack := os.Getenv("LVSS_DRIVER_PAUSE"), os.Getenv("LVSS_DRIVER_ACK")
	if pathA == "" || pathB == "" || pause == "" || ack == "" {
		return errors.New("LVSS_DRIVER_A, _B, _PAUSE and _ACK are required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	a, err := openBank(pathA)
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := openBank(pathB)
	if err != nil {
		return err
	}
	defer b.Close()
	var n int64
	if err := a.QueryRowContext(ctx, "SELECT coalesce(max(transfer), 0) FROM ledger").Scan(&n); err != nil {
		return err
	}
	for ctx.Err() == nil {
		if err := waitWhilePaused(ctx, pause, ack); err != nil {
			break
		}
		n++
		amount := 1 + rand.IntN(100)
		// SIGTERM ends the driver between transfers only: a transfer is
		// never left half done by the driver itself.
		tctx := context.WithoutCancel(ctx)
		if err := post(tctx, a, n, 1+rand.IntN(accounts), -amount); err != nil {
			return fmt.Errorf("transfer %d, debit: %w", n, err)
		}
		if err := post(tctx, b, n, 1+rand.IntN(accounts), amount); err != nil {
			return fmt.Errorf("transfer %d, credit: %w", n, err)
		}
	}
	fmt.Printf("driver: %d transfers made\n", n)
	return nil
}

// post adds amount to an account and writes the transfer in the ledger,
// in one transaction.
func post(ctx context.Context, db *sql.DB, transfer int64, account, amount int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	if _, err := tx.ExecContext(ctx, "UPDATE accounts SET balance = balance + ? WHERE id = ?", amount, account); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO ledger (transfer, account, amount) VALUES (?, ?, ?)", transfer, account, amount); err != nil {
		return err
	}
	return tx.Commit()
}

// waitWhilePaused answers each pause the freeze hook asks for and
// returns once there is none (or ctx ends).
func waitWhilePaused(ctx context.Context, pause, ack string) error {
	for {
		tok, err := os.ReadFile(pause)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(tok)) == 0 {
			return fmt.Errorf("pause file %s holds no token", pause)
		}
		tmp := ack + ".tmp"
		if err := os.WriteFile(tmp, tok, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, ack); err != nil {
			return err
		}
		for {
			cur, err := os.ReadFile(pause)
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			if !bytes.Equal(cur, tok) {
				break // another pause: answer it
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
	}
}
