// Package vsserr is the catalogue of HRESULT values lvss reproduces from the
// Volume Shadow Copy Service (vss-reference §5 and the writer failure codes of vss-reference §3.4).
//
// An HRESULT is both a value and an error: errors.Is(err, vsserr.BadState)
// works on any error chain that carries VSS_E_BAD_STATE, whether it was
// created here, wrapped with fmt.Errorf("...: %w", err), or decoded from the
// wire. Error values with context are built with New and Wrap; their text
// reads like
//
//	VSS_E_BAD_STATE (0x80042301): PrepareForBackup before SetBackupState
//
// Code extracts the HRESULT from any error (VSS_E_UNEXPECTED for errors that
// carry none), which is what every API boundary reports. The one place that
// maps errors to and from gRPC is package internal/wire.
package vsserr
