// Package argsfile reads a command line from a file, one argument per
// line, for the systemd units: /etc/lvss/writers/NAME.conf and
// /etc/lvss/backups/NAME.conf hold the arguments of lvss-writer and of
// lvss backup. One argument per line needs no quoting rules: a DSN with
// spaces, a shell script for COMMAND, a path with a '#' in it are each
// one line, as written. (systemd's own $VAR splitting would break them at
// every space; a shell would need a second layer of quotes.)
package argsfile
