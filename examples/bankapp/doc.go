// Command bankapp is a small SQLite application under write load, made to
// show (and test) what an application-consistent snapshot means.
//
// It keeps 100 accounts whose balances always sum to 100,000 and a counter
// that every transaction increments; several connections move random
// amounts between accounts, each transfer and its counter increment in one
// write transaction. Because every transaction keeps the sum, a copy of the
// database taken at any instant the application is consistent has the same
// sum; a copy taken mid-transaction (which the lvss sqlite writer prevents)
// could show anything.
//
//	bankapp run --db PATH [--workers N] [--rate TX_PER_S] [--acks FILE]
//	bankapp check --db PATH
//
// run writes until SIGTERM or SIGINT, printing a line a second; with
// --acks it appends "COUNTER UNIX_NANOS" for every acknowledged commit (the
// end-to-end tests compare a snapshot's counter with it). Its busy timeout
// (30 s) is longer than any freeze window, so the sqlite writer's freeze
// makes its commits wait, never fail. Any failed commit ends it with exit
// status 3.
//
// check opens a copy of the database and prints PRAGMA integrity_check,
// the sum of the balances and the counter; it exits 1 if the copy is
// damaged or the sum is wrong.
package main
