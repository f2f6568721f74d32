/*
 * simdisk.h -- a simulated disk under the OS seam (tests only).
 *
 * An in-memory file system behind a `struct os_ops` table (CLayered/os.h):
 * files, directories, descriptors, read-only mappings.  It models what
 * survives a power cut the way ext4 with data=ordered does at its weakest:
 *
 *   - written data is volatile until made durable: fdatasync/fsync of a
 *     file makes its data (and size) durable; syncfs makes every file and
 *     directory of the file system durable; an O_DSYNC write is durable at
 *     once;
 *   - a directory's entries (create, unlink, rename, mkdir) become durable
 *     when that directory is fsynced (or at syncfs) -- fsync of a file does
 *     NOT make its name durable;
 *   - a power cut keeps the durable state; of what was not durable, a
 *     seeded random choice keeps none, all, or an in-order prefix of each
 *     file's unsynced writes and truncates, and may tear the last write it
 *     keeps at a 512-byte boundary; of each directory's unsynced entry
 *     changes it keeps an in-order prefix (a rename is one change).
 *
 * Deliberately not modelled: reordering of writes within a file (ext4
 * data=ordered writes data before the metadata that exposes it; a prefix
 * is the weakest it does), corruption of durable data (bit rot: the
 * fuzzing and the damaged-file tests cover it), more than one file system
 * (home and shared directory share one; syncfs syncs both), hard links,
 * permissions, free-space accounting (ENOSPC comes from fault injection
 * only), and timing (the clock is the real monotonic clock).
 *
 * Faults: every "counted" call -- open/openat, write/pwritev, fsync,
 * fdatasync, syncfs, rename/renameat/renameat2 (no replace), unlink/unlinkat,
 * mkdir, ftruncate,
 * mmap -- gets the next index (0, 1, 2, ...).  A test can make the call of
 * index k fail (EIO, ENOSPC, EDQUOT, or a short write followed by ENOSPC),
 * or cut the power just before it: from that moment every call fails with
 * EIO (close and munmap succeed), as a machine that lost power serves
 * nothing, until sim_reboot() replaces the state with what survived.
 *
 * Deterministic: the same seed and the same sequence of calls give the
 * same survivors.  One simulated disk exists per process (the os_ops
 * members take no context); all calls are serialised by one mutex, so the
 * engine's threads may use it concurrently.
 */
#ifndef LAYERED_SIMDISK_H
#define LAYERED_SIMDISK_H

#include <stdbool.h>
#include <stdint.h>

#include "os.h"

enum sim_fault {
    SIM_FAULT_NONE = 0,
    SIM_FAULT_EIO,
    SIM_FAULT_ENOSPC,
    SIM_FAULT_EDQUOT,
    SIM_FAULT_SHORT /* a write writes part (a 512-byte multiple, maybe 0
                       bytes more than half) and the next write of that
                       descriptor fails with ENOSPC; other calls: EIO */
};

/* The simulated disk's os_ops table. */
extern const struct os_ops sim_os;

/* Start over: an empty file system holding only "/", the random state
 * seeded, counters at zero, no fault armed.  Frees everything of the
 * previous run (every descriptor and mapping must be closed). */
void sim_reset(uint64_t seed);

/* The number of counted calls made since sim_reset (or since
 * sim_count_restart). */
uint64_t sim_calls(void);
void sim_count_restart(void);

/* Arm a fault at the counted call of index k (from the current count's
 * origin): that call fails as `fault` says.  One fault at a time; it fires
 * once. */
void sim_fail_at(uint64_t k, enum sim_fault fault);

/* Arm a power cut just before the counted call of index k. */
void sim_cut_at(uint64_t k);

/* Cut the power now. */
void sim_cut_now(void);

/* Disarm any armed fault or cut. */
void sim_disarm(void);

/* True once an armed fault has fired / the power was cut. */
bool sim_fault_fired(void);
bool sim_power_is_cut(void);

/* After a power cut: the state becomes what survived, every descriptor
 * and mapping the engine still held is invalid (calls on them fail with
 * EBADF), and calls work again.  Without a cut the current state is kept,
 * volatile data included (what a process kill leaves), and the
 * descriptors are invalidated all the same. */
void sim_reboot(void);

/* Test helpers on the current (not the durable) state: the size of a file
 * or -1, and whether a path exists. */
int64_t sim_file_size(const char *path);
bool sim_exists(const char *path);

/* Names in a directory, one at a time: returns the i-th name (sorted) or
 * NULL past the end.  The pointer is valid until the next simulated call. */
const char *sim_dir_entry(const char *dir, int i);

/* Human-readable description of the last fault or cut (for the message of a
 * failing run): which call, its index, and its path. */
const char *sim_last_event(void);

#endif /* LAYERED_SIMDISK_H */
