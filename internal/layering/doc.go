// Package layering holds the test that keeps lvss's packages in their
// layers. It has no code of its own: the rule is the table in
// layering_test.go, and `go test ./internal/layering` fails the build when
// the tree breaks it.
//
// The test asks `go list -deps -json` for the import graph and checks three
// things:
//
//   - Layers: every package of the module belongs to exactly one layer
//     of the table, and imports only from the layers that layer names.
//     Each source file is read on its own, build constraints ignored, so
//     a file built only off Linux (a _other.go stub) is held to the rule
//     as well. A package's tests may also import from its own layer.
//   - Test-only packages (internal/testenv and the conformance suites)
//     are imported by tests only, so that no binary links package testing.
//   - Links: the guarantees the architecture states about binaries and
//     SDKs ("the CLI links no provider or bbolt code") hold transitively,
//     external modules included. A failure prints the chain of imports
//     that pulls the forbidden package in.
//
// A new package fails the test until it is placed in the table: where a
// package sits is a decision, not an accident.
package layering
