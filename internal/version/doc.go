// Package version says which lvss a binary is: the release version, the
// commit and the build date. make and the Debian package set them with
// -ldflags -X; a plain go build falls back to what the Go toolchain
// records (the module version and the VCS revision and time), so even a
// developer's binary can say which commit it came from.
package version
