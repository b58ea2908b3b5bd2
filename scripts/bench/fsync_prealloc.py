#!/usr/bin/env python3
# fdatasync latency of 300-byte records written into a segment that is
# fallocated, zero-filled, or grown by appending (issue 3: does zero-filling
# WAL segments beat fallocate on this disk?). Run: python3 scripts/bench/fsync_prealloc.py [dir]
# It writes a 16 MiB scratch file in [dir] (default: the current directory) and removes it.
import os, sys, time, statistics
PATH = os.path.join(sys.argv[1] if len(sys.argv) > 1 else ".", "fsync-test.bin")
def bench(path, mode, n=400):
    fd = os.open(path, os.O_RDWR|os.O_CREAT|os.O_TRUNC, 0o644)
    size = 16<<20
    if mode == 'falloc':
        os.posix_fallocate(fd, 0, size)
    elif mode == 'zero':
        buf = b'\0'*(1<<20)
        for i in range(16): os.write(fd, buf)
    os.fsync(fd)
    rec = b'x'*300
    off = 0
    lat=[]
    for i in range(n):
        t = time.perf_counter()
        os.pwrite(fd, rec, off); off += len(rec)
        os.fdatasync(fd)
        lat.append(time.perf_counter()-t)
    os.close(fd); os.unlink(path)
    return statistics.median(lat)*1e6
res={'falloc':[],'zero':[],'append':[]}
for r in range(8):
    for m in res: res[m].append(bench(PATH, m))
for m,v in res.items(): print(m, 'median of round medians', round(statistics.median(v),1), 'us', [round(x) for x in v])
