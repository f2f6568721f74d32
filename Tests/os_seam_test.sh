#!/usr/bin/env bash
# One seam to the operating system: no object of liblayered.a but os.c's
# may call the file system or the clock directly.  Everything else goes
# through the table of os.h, so tests can put a simulated disk underneath.
# The undefined symbols of each object name the calls it makes; glibc may
# spell them with a 64 suffix (open64, when off_t is 64-bit on a 32-bit
# system), a __ prefix, a fortified variant (__open_2, __pread_chk) or the
# old stat wrappers (__fxstat64).
set -euo pipefail
lib=$1
calls='open|openat|creat|close|read|readv|pread|preadv|preadv2|write|writev|pwrite|pwritev|pwritev2'
calls+='|fsync|fdatasync|syncfs|sync_file_range|rename|renameat|renameat2|unlink|unlinkat'
calls+='|mkdir|mkdirat|rmdir|truncate|ftruncate|fallocate|posix_fallocate'
calls+='|stat|fstat|fstatat|lstat|statx|lseek|mmap|munmap|madvise|flock'
calls+='|clock_gettime|gettimeofday|time'
pattern="^(__)?($calls)(64)?(_2|_chk|_time64)?\$|^__(f|l)?xstat(at)?(64)?\$"

# "object: symbol" for every undefined symbol of every object
undefined=$(nm -u "$lib" | awk '/^[^ ]+:$/ {obj = substr($0, 1, length($0) - 1); next}
                                NF > 0 {print obj ": " $NF}')
bad=$(echo "$undefined" | awk -v p="$pattern" '$1 != "os.c.o:" && $2 ~ p' || true)
if [ -n "$bad" ]; then
  echo "direct file-system or clock calls outside os.c:"; echo "$bad"; exit 1
fi
# The pattern must match the calls where they are made, or it proves nothing.
for want in open fdatasync clock_gettime; do
  echo "$undefined" | awk '$1 == "os.c.o:" {print $2}' |
    grep -q -E "^(__)?$want(64)?(_2|_chk|_time64)?\$" ||
    { echo "os.c.o does not call $want: the check would not see such a call"; exit 1; }
done
echo "os seam test: only os.c calls the file system and the clock"
