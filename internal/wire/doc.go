// Package wire is the one place where lvss errors and identifiers cross the
// gRPC boundary. An HRESULT leaves the daemon as a Status message (inside a
// response or as a gRPC status detail) and comes back on the client as the
// same vsserr value, so errors.Is works end to end and the number is never
// re-derived from text. GUIDs travel as lowercase strings without braces
// (D12).
package wire
