package filecopy

import (
	"context"
	"errors"
	"io"

	"golang.org/x/sys/unix"
)

// chunk bounds one copy_file_range call, so a large file notices the end
// of the context within a fraction of a second.
const chunk = 8 << 20

// copyData copies the first size bytes of in to out, leaving holes where
// the source has them (SEEK_DATA/SEEK_HOLE): a sparse VM image must not
// become a full one in the copy, nor be charged as one against free space
// twice. The copy stays in the kernel (copy_file_range) where it can.
func copyData(ctx context.Context, out, in int, size int64) error {
	kernel := true
	var off int64
	for off < size {
		data, err := unix.Seek(in, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break // only a hole is left
		}
		if err != nil {
			// No hole support here: everything is data.
			data = off
		}
		end := size
		if err == nil {
			if hole, err := unix.Seek(in, data, unix.SEEK_HOLE); err == nil && hole < end {
				end = hole
			}
		}
		for pos := data; pos < end; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := int(min(end-pos, chunk))
			var got int
			if kernel {
				ro, wo := pos, pos
				got, err = unix.CopyFileRange(in, &ro, out, &wo, n, 0)
				if err == unix.EXDEV || err == unix.EINVAL || err == unix.ENOSYS || err == unix.EOPNOTSUPP {
					kernel = false
					continue
				}
			} else {
				got, err = copyChunk(out, in, pos, n)
			}
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			if got == 0 {
				// The file shrank since it was measured; the stat after
				// the copy reports it as changed.
				return unix.Ftruncate(out, pos)
			}
			pos += int64(got)
		}
		off = end
	}
	return unix.Ftruncate(out, size)
}

// copyChunk is the user-space fallback: pread and pwrite of one chunk.
func copyChunk(out, in int, off int64, n int) (int, error) {
	buf := make([]byte, min(n, 1<<20))
	total := 0
	for total < n {
		r, err := unix.Pread(in, buf[:min(len(buf), n-total)], off+int64(total))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return total, err
		}
		if r == 0 {
			break
		}
		for w := 0; w < r; {
			k, err := unix.Pwrite(out, buf[w:r], off+int64(total+w))
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return total, err
			}
			if k == 0 {
				return total, io.ErrShortWrite
			}
			w += k
		}
		total += r
	}
	return total, nil
}

// copyXattrs copies every extended attribute of in to out. It returns the
// first error but copies what it can.
func copyXattrs(in, out int) error {
	names, err := listXattrs(in)
	if err != nil {
		if err == unix.ENOTSUP {
			return nil // the source filesystem has none
		}
		return err
	}
	var first error
	for _, name := range names {
		val, err := getXattr(in, name)
		if err == unix.ENODATA {
			continue // removed meanwhile
		}
		if err == nil {
			err = unix.Fsetxattr(out, name, val, 0)
		}
		if err != nil && first == nil {
			first = errors.New(name + ": " + err.Error())
		}
	}
	return first
}

func listXattrs(fd int) ([]string, error) {
	for {
		n, err := unix.Flistxattr(fd, nil)
		if err != nil || n == 0 {
			return nil, err
		}
		buf := make([]byte, n)
		n, err = unix.Flistxattr(fd, buf)
		if err == unix.ERANGE {
			continue // grew between the calls
		}
		if err != nil {
			return nil, err
		}
		var names []string
		start := 0
		for i, b := range buf[:n] {
			if b == 0 {
				if i > start {
					names = append(names, string(buf[start:i]))
				}
				start = i + 1
			}
		}
		return names, nil
	}
}

func getXattr(fd int, name string) ([]byte, error) {
	for {
		n, err := unix.Fgetxattr(fd, name, nil)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, n)
		n, err = unix.Fgetxattr(fd, name, buf)
		if err == unix.ERANGE {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
