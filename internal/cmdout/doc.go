// Package cmdout holds the output buffers of lvss's command runners (the
// exec provider and the exec writer): bounded, safe to read while the
// command may still be writing (a command abandoned at its deadline), and
// never failing a write — an error would close the pipe and kill the child
// with SIGPIPE, or stall a drain and block it, hiding the real problem.
package cmdout
