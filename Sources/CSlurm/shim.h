// libslurm (Debian 12: libslurm-dev 22.05, libslurm.so.38; no slurm.pc, hence no pkgConfig).
// Only what Quanta calls; macros and undeclared exports are wrapped here so Swift sees functions.
#ifndef QUANTA_CSLURM_SHIM_H
#define QUANTA_CSLURM_SHIM_H
#include <stdint.h>
#include <time.h>
#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

/* Exported by libslurm.so.38 but not declared in the 22.05 public header. */
extern char *slurm_job_state_string(uint32_t inx);
extern char *slurm_job_reason_string(int inx);

static inline uint32_t quanta_slurm_no_val(void) { return NO_VAL; }
static inline uint32_t quanta_slurm_infinite(void) { return INFINITE; }
static inline uint64_t quanta_slurm_no_val64(void) { return NO_VAL64; }
static inline uint32_t quanta_slurm_state_base(uint32_t state) { return state & JOB_STATE_BASE; }
static inline int quanta_slurm_is_completing(uint32_t state) { return (state & JOB_COMPLETING) != 0; }
static inline uint16_t quanta_slurm_show_all(void) { return SHOW_ALL | SHOW_DETAIL; }
static inline uint16_t quanta_slurm_kill_job_array(void) { return KILL_JOB_ARRAY; }
static inline int quanta_slurm_success(void) { return SLURM_SUCCESS; }
static inline long quanta_slurm_header_version(void) { return SLURM_VERSION_NUMBER; }
static inline uint64_t quanta_slurm_mem_per_cpu_flag(void) { return MEM_PER_CPU; }
static inline uint16_t quanta_slurm_wait_dep_invalid(void) { return WAIT_DEP_INVALID; }
static inline uint16_t quanta_slurm_job_shared_none(void) { return JOB_SHARED_NONE; }
static inline uint64_t quanta_slurm_kill_inv_dep(void) { return KILL_INV_DEP; }
static inline int quanta_slurm_partition_up(uint16_t state_up) { return (state_up & PARTITION_UP) == PARTITION_UP; }
static inline int quanta_slurm_partition_default(uint16_t flags) { return (flags & PART_FLAG_DEFAULT) != 0; }
static inline uint32_t quanta_slurm_node_state_base(uint32_t state) { return state & NODE_STATE_BASE; }
static inline int quanta_slurm_node_drain(uint32_t state) { return (state & NODE_STATE_DRAIN) != 0; }
#endif
