// Package mountinfo reads /proc/self/mountinfo and answers "which mount
// holds this path, on which filesystem". The superblock's major:minor from
// mountinfo identifies a filesystem even where st_dev does not (btrfs
// subvolumes report their own anonymous st_dev on one superblock), which is
// what the freeze guard dedupes FIFREEZE by.
package mountinfo
