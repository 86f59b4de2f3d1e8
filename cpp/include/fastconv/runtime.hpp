// fastconv/runtime.hpp — process-wide runtime controls: instruction set, threads, workspace.
//
// The core picks the best instruction set the CPU supports once, at first use, capped by the
// environment variable FASTCONV_ISA (scalar | avx2 | avx512). set_isa() can then choose any ISA
// at or below that cap, which lets tests run every kernel path in one process. Thread count
// defaults to what OpenMP would use (OMP_NUM_THREADS respected). Both settings are atomic and
// read once at the start of every call, so changing them concurrently with compute is safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fastconv {

/// ISA names available on this CPU under the FASTCONV_ISA cap, ascending ("scalar" first).
std::vector<std::string> available_isas();

/// Name of the ISA whose kernels run now.
std::string active_isa();

/// Vector FMAs per cycle the core issues at the active ISA's width (2 for AVX-512 on Intel's
/// cores with two 512-bit FMA pipes, else 1): the register tiles and `auto`'s cost models
/// follow it.
int active_fma_pipes();

/// Select the kernels of `name` (one of available_isas()); returns the previous name.
/// Throws InvalidArgument for an unknown or unavailable name.
std::string set_isa(const std::string& name);

/// Threads used by every parallel region (>= 1): the setting, or inside a ThreadShare this
/// thread's share of it.
int num_threads();

/// Set the thread count; throws InvalidArgument unless 1 <= n <= 1024.
void set_num_threads(int n);

/// Concurrent callers share the thread count instead of multiplying it: while P threads each
/// hold a ThreadShare, a parallel region started by one of them gets max(1, n / P) threads
/// (n = the setting, P counted when this share was taken), so P callers start about n compute
/// threads in all, not P x n. Results do not depend on the thread count, so sharing changes
/// no bits. The Python bindings take one per call; nested shares on one thread count once.
class ThreadShare {
 public:
  ThreadShare();
  ~ThreadShare();
  ThreadShare(const ThreadShare&) = delete;
  ThreadShare& operator=(const ThreadShare&) = delete;

 private:
  bool outermost_;
};

/// The scratch memory one call may allocate for copies of its operands (padded inputs and their
/// gradients), in bytes: a batch is processed in runs of whole images whose copies fit. 0 (the
/// default) means max(16 MiB, the call's input size). A single image's copy is never split.
int64_t workspace_limit();

/// Set workspace_limit(); throws InvalidArgument for a negative value.
void set_workspace_limit(int64_t bytes);

/// Frees the large scratch buffers (1 MiB and more) that the calling thread keeps for its next
/// calls — at most 4 of them, 64 MiB, the blocks of freed arrays among them — and the
/// process's FFT tables (twiddles and index tables of the transform sizes used, at most 32
/// MiB), and returns their bytes. Each thread's buffers are freed when it exits anyway; the
/// tables are made again by the next call that needs them.
std::size_t release_memory();

/// Memory for an array its caller will own (the Python bindings' outputs): at least `bytes`, 64
/// bytes aligned; from 4 MiB on, 2 MiB aligned and advised for transparent huge pages, whose
/// first touch costs a fraction of 4 KiB page faults (measured 1.3 ms per MiB with those).
/// With glibc, arrays of 1 MiB and more share the scratch buffers' per-thread cache (see
/// release_memory): a freed array's block serves a later array or call of the freeing thread.
/// Release with free_array(). Throws OutOfMemory.
void* allocate_array(std::size_t bytes);

/// Frees memory from allocate_array() (null: nothing), into the calling thread's cache where
/// allocate_array says so.
void free_array(void* p) noexcept;

/// This machine's float32 FMA throughput with the active ISA's vectors, in GFLOP/s, measured
/// over about `seconds` on `threads` threads (a probe of independent FMA chains): the peak the
/// benchmark reports against.
double measure_fma_peak(int threads, double seconds = 0.2);

/// A short description of the compiler that built the core, e.g. "GCC 12.2.0".
std::string compiler_description();

/// The Eigen version the core was built with, e.g. "3.4.0".
std::string eigen_version();

/// The OpenMP specification date the core was built with (e.g. 201511), 0 without OpenMP.
int openmp_version();

}  // namespace fastconv
