package server

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"
)

// PeerInfo is the kernel's account of the process on the other end.
type PeerInfo struct {
	credentials.CommonAuthInfo
	UID, GID uint32
	PID      int32
	Groups   []uint32
}

// AuthType implements credentials.AuthInfo.
func (PeerInfo) AuthType() string { return "peercred" }

// peerCreds is a grpc TransportCredentials that performs no handshake (the
// client uses insecure credentials) but records the peer's credentials.
type peerCreds struct{}

func (peerCreds) ClientHandshake(_ context.Context, _ string, c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c, PeerInfo{}, nil
}

func (peerCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, nil, errors.New("lvssd accepts only Unix socket connections")
	}
	info, err := readPeer(uc)
	if err != nil {
		return nil, nil, err
	}
	return c, info, nil
}

func (peerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "insecure"}
}
func (p peerCreds) Clone() credentials.TransportCredentials { return p }
func (peerCreds) OverrideServerName(string) error           { return nil }

func readPeer(uc *net.UnixConn) (PeerInfo, error) {
	raw, err := uc.SyscallConn()
	if err != nil {
		return PeerInfo{}, err
	}
	var info PeerInfo
	var serr error
	err = raw.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			serr = err
			return
		}
		info.UID, info.GID, info.PID = cred.Uid, cred.Gid, cred.Pid
		info.Groups, serr = peerGroups(int(fd))
	})
	if err == nil {
		err = serr
	}
	info.SecurityLevel = credentials.NoSecurity
	return info, err
}

// peerGroups reads SO_PEERGROUPS, which x/sys/unix has no helper for: the
// kernel fills an array of gid_t and says how many bytes it needs when the
// buffer is short (ERANGE).
func peerGroups(fd int) ([]uint32, error) {
	n := 64
	for range 4 {
		buf := make([]byte, 4*n)
		l := uint32(len(buf))
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&l)), 0)
		switch errno {
		case 0:
			out := make([]uint32, l/4)
			for i := range out {
				out[i] = binary.NativeEndian.Uint32(buf[4*i:])
			}
			return out, nil
		case syscall.ERANGE:
			n = int(l/4) + 1
		default:
			return nil, errno
		}
	}
	return nil, errors.New("SO_PEERGROUPS: group list keeps growing")
}
