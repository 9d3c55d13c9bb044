//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package btrfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/lvss/lvss/internal/testenv"
)

// BenchmarkRawSnapshotIoctl times one BTRFS_IOC_SNAP_CREATE_V2 (read-only)
// of a small subvolume on a loop btrfs: the whole of the provider's
// CommitSnapshots for one volume, and so what it adds to the hold window.
// Each iteration's snapshot is deleted with the timer stopped.
func BenchmarkRawSnapshotIoctl(b *testing.B) {
	mnt := newBtrfs(b)
	sv := subvol(b, filepath.Join(mnt, "sv"))
	for i := range 1000 {
		write(b, filepath.Join(sv, fmt.Sprintf("f%04d", i)), "some data")
	}
	dir := subvol(b, filepath.Join(mnt, "snaps"))
	src, err := os.Open(sv)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer dst.Close()
	if err := unix.Syncfs(int(src.Fd())); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("s%d", i)
		if err := snapCreate(int(dst.Fd()), int(src.Fd()), name); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := snapDestroy(int(dst.Fd()), name); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkRawSnapshotIoctlDirty64MiB is the same ioctl with 64 MiB written and
// not yet flushed in the subvolume: a snapshot writes out the subvolume's
// dirty data first, so this is the commit of a busy volume, and the reason
// the provider syncs the filesystem before writers freeze (see EndPrepareSnapshots).
func BenchmarkRawSnapshotIoctlDirty64MiB(b *testing.B) {
	mnt := testenv.LoopFS(b, "btrfs", 4<<30).Mount
	sv := subvol(b, filepath.Join(mnt, "sv"))
	dir := subvol(b, filepath.Join(mnt, "snaps"))
	src, _ := os.Open(sv)
	defer src.Close()
	dst, _ := os.Open(dir)
	defer dst.Close()
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		os.Remove(filepath.Join(sv, "dirty"))
		waitForSpace(b, sv, 1<<30)
		f, err := os.Create(filepath.Join(sv, "dirty"))
		if err != nil {
			b.Fatal(err)
		}
		for range 64 {
			if _, err := f.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		f.Close()
		name := fmt.Sprintf("s%d", i)
		b.StartTimer()
		if err := snapCreate(int(dst.Fd()), int(src.Fd()), name); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := snapDestroy(int(dst.Fd()), name); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkCommitDirty64MiB is the provider's CommitSnapshots of one
// volume holding 64 MiB of unflushed data, after EndPrepareSnapshots synced
// it: compare with BenchmarkRawSnapshotIoctlDirty64MiB for what the sync takes out
// of the hold window. The timer covers CommitSnapshots only.
func BenchmarkCommitDirty64MiB(b *testing.B) {
	mnt := testenv.LoopFS(b, "btrfs", 4<<30).Mount
	sv := subvol(b, filepath.Join(mnt, "sv"))
	p := newProvider(b, Config{}, 1<<20)
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	c := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		os.Remove(filepath.Join(sv, "dirty"))
		waitForSpace(b, sv, 1<<30)
		f, err := os.Create(filepath.Join(sv, "dirty"))
		if err != nil {
			b.Fatal(err)
		}
		for range 64 {
			if _, err := f.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		f.Close()
		set := uuid.New()
		if err := p.BeginPrepareSnapshot(c, set, uuid.New(), sv, 0); err != nil {
			b.Fatal(err)
		}
		if err := p.EndPrepareSnapshots(c, set); err != nil {
			b.Fatal(err)
		}
		if err := p.PreCommitSnapshots(c, set); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := p.CommitSnapshots(c, set); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := p.AbortSnapshots(c, set); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// waitForSpace waits until the filesystem has need bytes free: btrfs frees
// a deleted snapshot's extents in the background, and a long run would
// otherwise fill the loop filesystem.
func waitForSpace(b *testing.B, path string, need uint64) {
	deadline := time.Now().Add(time.Minute)
	for {
		free, err := freeBytes(path)
		if err != nil {
			b.Fatal(err)
		}
		if free >= need {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d bytes free after a minute", free)
		}
		if err := syncFS(path); err != nil {
			b.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
