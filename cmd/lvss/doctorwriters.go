package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/argsfile"
)

// writersDir is where lvss-writer@NAME.service finds NAME.conf.
const writersDir = "/etc/lvss/writers"

// configuredWriter is one /etc/lvss/writers/NAME.conf: the writer it runs
// and the name and instance name it subscribes with.
type configuredWriter struct {
	unit, file     string
	kind           string // the lvss-writer command: postgres, exec, ...
	name, instance string
	err            error // the file cannot be read or says no writer
}

// readConfiguredWriters reads every NAME.conf in dir; a missing dir is no
// configured writer.
func readConfiguredWriters(dir string) []configuredWriter {
	files, _ := filepath.Glob(filepath.Join(dir, "*.conf"))
	slices.Sort(files)
	var out []configuredWriter
	for _, f := range files {
		cw := configuredWriter{unit: "lvss-writer@" + strings.TrimSuffix(filepath.Base(f), ".conf") + ".service", file: f}
		data, err := os.ReadFile(f)
		var args []string
		if err == nil {
			args, err = argsfile.Parse(data)
		}
		if err != nil {
			cw.err = err
		} else {
			cw.kind, cw.name, cw.instance = writerArgs(args)
		}
		out = append(out, cw)
	}
	return out
}

// writerArgs finds, in lvss-writer's arguments, the writer command and the
// --name and --instance-name it is given. lvss-writer's global flags that
// take a value may come before the command. A writer without --name
// subscribes under its command's name (exec requires --name).
func writerArgs(args []string) (kind, name, instance string) {
	valued := map[string]bool{"--socket": true, "--log-level": true, "--log-format": true}
	for i := 0; i < len(args); i++ {
		a := args[i]
		flag, val, hasVal := strings.Cut(a, "=")
		switch {
		case a == "--":
			i = len(args)
		case flag == "--name" || flag == "--instance-name":
			if !hasVal && i+1 < len(args) {
				i++
				val = args[i]
			}
			if flag == "--name" {
				name = val
			} else {
				instance = val
			}
		case strings.HasPrefix(a, "-"):
			if valued[flag] && !hasVal {
				i++
			}
		case kind == "":
			kind = a
		}
	}
	if name == "" {
		name = kind
	}
	return kind, name, instance
}

// configuredWriterFindings: each configured writer instance should be
// subscribed; one that is not has its application (or lvss-writer itself)
// down, and backups of its data are crash-consistent at best.
func configuredWriterFindings(cws []configuredWriter, ws []client.WriterInfo) []client.Finding {
	var out []client.Finding
	for _, cw := range cws {
		f := client.Finding{Check: "writer.configured", Subject: cw.unit}
		switch {
		case cw.err != nil:
			f.Severity, f.Message = client.SeverityError, cw.file+": "+cw.err.Error()
			f.Fix = "one lvss-writer argument per line (docs/operations.md, \"Writers\")"
		case cw.kind == "":
			f.Severity, f.Message = client.SeverityError, cw.file+" names no writer (postgres, mysql, sqlite, redis, exec)"
			f.Fix = "put the writer's name on the first line (docs/operations.md, \"Writers\")"
		case slices.ContainsFunc(ws, func(w client.WriterInfo) bool {
			return w.Name == cw.name && (cw.instance == "" || w.InstanceName == cw.instance)
		}):
			f.Severity, f.Message = client.SeverityOK, "configured in "+cw.file+" and subscribed as '"+describeWriter(cw.name, cw.instance)+"'"
		default:
			f.Severity = client.SeverityError
			f.Message = "configured in " + cw.file + " but no writer '" + describeWriter(cw.name, cw.instance) +
				"' is subscribed: backups of its data are not application-consistent"
			f.Fix = "systemctl status " + cw.unit + "; journalctl -u " + cw.unit + " says whether lvss-writer or its application is down"
		}
		out = append(out, f)
	}
	return out
}

func describeWriter(name, instance string) string {
	if instance == "" {
		return name
	}
	return name + " (" + instance + ")"
}

// addConfiguredWriters is the doctor's check of the writer units.
func (r *doctorReport) addConfiguredWriters(ctx context.Context, conn *client.Conn, dir string) {
	cws := readConfiguredWriters(dir)
	if len(cws) == 0 {
		return
	}
	ws, err := conn.ListWriters(ctx)
	if err != nil {
		r.add("writers", client.Finding{Check: "writer.configured", Severity: client.SeverityError, Subject: dir,
			Message: "cannot list the subscribed writers: " + err.Error()})
		return
	}
	for _, f := range configuredWriterFindings(cws, ws) {
		r.add("writers", f)
	}
}
