// Package systemd tests lvss as its Debian package installs it, under a
// real systemd: it builds the package with make deb, installs it with
// apt-get into overlays of /usr, /etc and /var in a private mount
// namespace (the machine's own files never change), boots systemd as PID 1
// of a private PID namespace there, and drives the units with systemctl:
// lvssd's readiness through sd_notify, a writer unit, a timer-driven
// backup, lvssd killed while a filesystem is frozen, a stop during a
// backup, and package removal and purge. It has no non-test code.
package systemd
