package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver
)

const (
	accounts = 100
	opening  = 1000 // each account's opening balance
	total    = accounts * opening
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = run(os.Args[2:])
	case "check":
		err = check(os.Args[2:])
	case "-h", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "bankapp: unknown command %q\n", os.Args[1])
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bankapp:", err)
		var ce checkError
		if errors.As(err, &ce) {
			os.Exit(1)
		}
		os.Exit(3)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  bankapp run --db PATH [--workers N] [--rate TX_PER_S] [--acks FILE]
      transfers between 100 accounts (the sum never changes) until SIGTERM
  bankapp check --db PATH
      integrity, sum of balances and counter of a copy of the database
`)
	os.Exit(2)
}

// checkError: the database was read and found wrong (exit status 1).
type checkError struct{ error }

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	path := fs.String("db", "", "database file (created if missing)")
	workers := fs.Int("workers", 3, "connections writing at once")
	rate := fs.Int("rate", 0, "transactions a second, all workers together (0: as fast as possible)")
	acksPath := fs.String("acks", "", "append COUNTER UNIX_NANOS here for every acknowledged commit")
	_ = fs.Parse(args)
	if *path == "" || *workers < 1 || *rate < 0 {
		return errors.New("run: --db is required, --workers at least 1, --rate not negative")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// _txlock=immediate: database/sql's Begin sends BEGIN IMMEDIATE, so a
	// transfer takes the write lock before reading and never has to be
	// retried halfway. The busy timeout outlasts any freeze window.
	db, err := sql.Open("sqlite", "file:"+*path+
		"?_pragma=busy_timeout(30000)&_pragma=journal_mode(wal)&_pragma=synchronous(normal)&_txlock=immediate")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(*workers + 1)
	if err := schema(db); err != nil {
		return err
	}
	var acks io.Writer = io.Discard
	if *acksPath != "" {
		f, err := os.OpenFile(*acksPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		acks = f
	}
	var tick <-chan time.Time
	if *rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(*rate))
		defer t.Stop()
		tick = t.C
	}

	var (
		ackMu   sync.Mutex
		commits atomic.Int64
		last    atomic.Int64
		// Connections that always read and write leave SQLite's automatic
		// checkpoints no moment to start the -wal over, and it grows by
		// tens of MB a second (checkpoint starvation). Like a real
		// application under such load, this one pauses its connections now
		// and then (gate) to reset the -wal with a TRUNCATE checkpoint.
		gate sync.RWMutex
		wg   sync.WaitGroup
		errc = make(chan error, *workers+1)
	)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
		stop()
	}
	for range *workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				if tick != nil {
					select {
					case <-tick:
					case <-ctx.Done():
						return
					}
				}
				gate.RLock()
				n, err := transfer(db)
				gate.RUnlock()
				if err != nil {
					fail(fmt.Errorf("transfer: %w", err))
					return
				}
				// COMMIT has returned: the commit is acknowledged.
				at := time.Now()
				ackMu.Lock()
				_, err = fmt.Fprintf(acks, "%d %d\n", n, at.UnixNano())
				ackMu.Unlock()
				if err != nil {
					fail(err)
					return
				}
				commits.Add(1)
				last.Store(int64(n))
				if n%500 == 0 {
					gate.Lock()
					_, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
					gate.Unlock()
					if err != nil {
						fail(fmt.Errorf("checkpoint: %w", err))
						return
					}
				}
			}
		})
	}
	// A reader checks the invariant live; in WAL mode readers are never
	// blocked, not even by the writer's freeze.
	wg.Go(func() {
		for ctx.Err() == nil {
			var sum int
			gate.RLock()
			err := db.QueryRow("SELECT sum(balance) FROM accounts").Scan(&sum)
			gate.RUnlock()
			if err == nil && sum != total {
				err = fmt.Errorf("live sum of balances is %d, want %d", sum, total)
			}
			if err != nil {
				fail(err)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	fmt.Printf("bankapp: writing to %s with %d connections\n", *path, *workers)
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		prev := int64(0)
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				n := commits.Load()
				fmt.Printf("bankapp: %d commits/s, counter %d\n", n-prev, last.Load())
				prev = n
			}
		}
	})
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		fmt.Printf("bankapp: stopped after %d commits\n", commits.Load())
		return nil
	}
}

// schema creates the accounts and the counter once.
func schema(db *sql.DB) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 'accounts'").Scan(&n); err != nil || n > 0 {
		return err
	}
	for _, s := range []string{
		"CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)",
		"CREATE TABLE counter(id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL)",
		"INSERT INTO counter VALUES (1, 0)",
	} {
		if _, err := tx.Exec(s); err != nil {
			return err
		}
	}
	for i := range accounts {
		if _, err := tx.Exec("INSERT INTO accounts VALUES (?, ?)", i, opening); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// transfer moves a random amount between two accounts and counts the
// transaction, all in one write transaction; it returns the counter's new
// value.
func transfer(db *sql.DB) (int, error) {
	tx, err := db.Begin()
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	from, to, amount := rand.IntN(accounts), rand.IntN(accounts), 1+rand.IntN(50)
	if _, err := tx.Exec("UPDATE accounts SET balance = balance - ? WHERE id = ?", amount, from); err != nil {
		return 0, err
	}
	if _, err := tx.Exec("UPDATE accounts SET balance = balance + ? WHERE id = ?", amount, to); err != nil {
		return 0, err
	}
	var n int
	if err := tx.QueryRow("UPDATE counter SET n = n + 1 WHERE id = 1 RETURNING n").Scan(&n); err != nil {
		return 0, err
	}
	return n, tx.Commit()
}

func check(args []string) error {
	fs := flag.NewFlagSet("check", flag.ExitOnError)
	path := fs.String("db", "", "database file (a copy: it is opened for writing, so that its WAL can be recovered)")
	_ = fs.Parse(args)
	if *path == "" {
		return errors.New("check: --db is required")
	}
	if _, err := os.Stat(*path); err != nil {
		return err
	}
	db, err := sql.Open("sqlite", "file:"+*path)
	if err != nil {
		return err
	}
	defer db.Close()
	var integrity string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&integrity); err != nil {
		return err
	}
	var sum, n, counter int
	if err := db.QueryRow("SELECT sum(balance), count(*) FROM accounts").Scan(&sum, &n); err != nil {
		return err
	}
	if err := db.QueryRow("SELECT n FROM counter").Scan(&counter); err != nil {
		return err
	}
	fmt.Printf("integrity_check: %s; %d accounts, sum of balances %d (want %d); counter %d\n", integrity, n, sum, total, counter)
	if integrity != "ok" || sum != total || n != accounts {
		return checkError{errors.New("the database is not consistent")}
	}
	return nil
}
