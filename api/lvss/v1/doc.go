// Package lvssv1 is the generated gRPC code for lvss.proto, the public wire
// contract of lvssd. Regenerate with `make generate`; CI fails when the
// committed code differs from what the pinned generators produce.
package lvssv1

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative lvss.proto
