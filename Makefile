# winnow - build, test, bench, fuzz.
#
#   make            ./winnow (CUDA objects too when nvcc is found; CUDA=0|1 overrides;
#                   MPI for `mpirun ... winnow train` when mpicc is found; MPI=0|1 overrides)
#   make test       unit tests, fuzz-corpus replay and end-to-end tests, under ASan/UBSan
#   make bench      benchmarks (see BENCHMARKS.md)
#   make fuzz       libFuzzer runs (clang), FUZZ_SECONDS each
#   make deps       install the Debian packages the build needs (apt-get)
#   make cuda-check compile the CUDA sources with nvcc (no GPU needed), and run the GPU
#                   model's host code on an emulated device (build/cuda/test_gpt_emu)
#   make test-cuda  GPU kernels against their CPU references, GPU model against the CPU
#                   model (needs a GPU to run them)

CC      ?= gcc
NVCC    ?= nvcc
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wno-unused-parameter -Werror=implicit-function-declaration
CPPFLAGS := -std=c11 -D_GNU_SOURCE -fopenmp -Isrc
# -ldl: NVML is opened with dlopen (src/energy.c); part of libc since glibc 2.34
LIBS    := -larchive -lzstd -lxxhash -lyaml -lutf8proc -lpcre2-8 -lcurl -lpthread -lm -ldl
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

ifeq ($(origin CUDA), undefined)
  CUDA := $(if $(shell command -v $(NVCC) 2>/dev/null),1,0)
endif
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(shell command -v $(NVCC) 2>/dev/null))
# Machine code for Turing (sm_75, nvcc 13's oldest) and Hopper (sm_90: H100, H200),
# plus compute_90 PTX that newer GPUs compile at load time.
NVCC_ARCH ?= -gencode arch=compute_75,code=sm_75 -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90

# OpenBLAS for the CPU model's matrix products (src/model.c, mm_blas) when
# cblas.h and -lopenblas are found; BLAS=0|1 overrides.
ifeq ($(origin BLAS), undefined)
  BLAS := $(shell echo 'int main(void){cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasNoTrans,1,1,1,1,0,1,0,1,0,0,1);}' | \
            $(CC) -include cblas.h -x c - -o /dev/null -lopenblas >/dev/null 2>&1 && echo 1 || echo 0)
endif
CPPFLAGS += -DWN_BLAS=$(BLAS)
LIBS     += $(if $(filter 1,$(BLAS)),-lopenblas)
$(info winnow: matrix products: $(if $(filter 1,$(BLAS)),OpenBLAS (cblas_sgemm),hand-written loops$(if $(filter 0,$(BLAS)), (OpenBLAS not found or BLAS=0),)))

# MPI (src/mpi.c; data-parallel `winnow train` under mpirun) when an MPI
# compiler wrapper or pkg-config file is found and a test program links;
# MPI=0|1 overrides. The flags come from the wrapper (OpenMPI's
# --showme:compile/link), else pkg-config (ompi-c, then mpich); winnow is
# still linked with $(CC). The sanitized test build (build/san) never has MPI.
MPICC ?= mpicc
ifneq ($(MPI),0)
  MPI_CFLAGS := $(shell $(MPICC) --showme:compile 2>/dev/null || pkg-config --cflags ompi-c 2>/dev/null || \
                        pkg-config --cflags mpich 2>/dev/null)
  MPI_LIBS   := $(shell $(MPICC) --showme:link 2>/dev/null || pkg-config --libs ompi-c 2>/dev/null || \
                        pkg-config --libs mpich 2>/dev/null)
endif
ifeq ($(origin MPI), undefined)
  MPI := $(shell printf '\043include <mpi.h>\nint main(int c,char**v){MPI_Init(&c,&v);return MPI_Finalize();}\n' | \
           $(CC) $(MPI_CFLAGS) -x c - -o /dev/null $(MPI_LIBS) >/dev/null 2>&1 && echo 1 || echo 0)
endif
$(info winnow: MPI: $(if $(filter 1,$(MPI)),yes (mpirun -np N ./winnow train: data-parallel),no$(if $(filter 0,$(MPI)), (mpicc not found or MPI=0),)))

ifeq ($(CUDA),1)
  B := build/cuda
else
  B := build/cpu
endif
SRC     := $(filter-out src/main.c,$(wildcard src/*.c)) $(wildcard stages/*.c)
OBJ     := $(SRC:%.c=$(B)/%.o)
SAN_OBJ := $(SRC:%.c=build/san/%.o)
CU_SRC  := $(wildcard kernels/*.cu)
CU_OBJ  := $(CU_SRC:%.cu=build/cuda/%.o)

ifeq ($(CUDA),1)
  CPPFLAGS_BIN := -DWN_CUDA=1
  BIN_EXTRA    := $(CU_OBJ)
  BIN_LIBS     := -L$(CUDA_HOME)/lib64 -lcudart_static -ldl -lrt -lpthread -lstdc++
  $(info winnow: CUDA build ($(NVCC) found))
else
  CPPFLAGS_BIN := -DWN_CUDA=0
  $(info winnow: CPU-only build$(if $(filter 0,$(CUDA)), (nvcc not found or CUDA=0),))
endif

ifeq ($(MPI),1)
  CPPFLAGS_BIN += -DWN_MPI=1
  BIN_LIBS     += $(MPI_LIBS)
  # Only src/mpi.c includes <mpi.h>; MPI's include directory goes before
  # -Isrc there so that <mpi.h> is the library's, not src/mpi.h.
  $(B)/src/mpi.o: MPI_PRE := $(MPI_CFLAGS)
endif

.PHONY: all test unit e2e fuzz-replay bench fuzz deps cuda-check clean
all: winnow

winnow: $(B)/src/main.o $(OBJ) $(BIN_EXTRA) build/config
	$(CC) $(CFLAGS) -fopenmp -o $@ $(filter %.o,$^) $(LIBS) $(BIN_LIBS)

# Relink when the CUDA or MPI setting changes.
build/config: FORCE
	@mkdir -p build
	@echo "CUDA=$(CUDA) BLAS=$(BLAS) MPI=$(MPI)" | cmp -s - $@ || echo "CUDA=$(CUDA) BLAS=$(BLAS) MPI=$(MPI)" >$@
.PHONY: FORCE
FORCE:
# ... and rebuild the model when the BLAS setting changes.
$(B)/src/model.o build/san/src/model.o build/san/tests/unit/test_model.o: build/config
# ... and src/mpi.c (stubs or MPI) when the MPI setting changes.
$(B)/src/mpi.o: build/config

$(B)/%.o: %.c $(wildcard src/*.h) stages/stages.def kernels/device.h
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(MPI_PRE) $(CPPFLAGS) $(CPPFLAGS_BIN) $(CFLAGS) $(WARN) -c $< -o $@

build/cuda/kernels/%.o: kernels/%.cu kernels/device.h
	@mkdir -p $(dir $@)
	@echo "  NVCC    $<"
	@$(NVCC) -O2 $(NVCC_ARCH) -Ikernels -c $< -o $@

cuda-check: $(CU_OBJ)
	@echo "cuda-check: compiled $(CU_SRC) with $(NVCC)"

# ---- GPU kernels against their CPU references --------------------------------
# build/cuda/test_kernels runs the references' own checks on the host, then
# (with a GPU) compares every kernel of kernels/gpt_kernels.cu and
# kernels/score_kernels.cu with them; it prints a SKIP line and exits 0 when
# there is no GPU. cuda-check compiles it. Its second source,
# tests/cuda/test_score_kernels.cu, tests the scoring kernels against
# src/gradproj.c (built for the host with util.c, OpenMP and, with BLAS=1,
# OpenBLAS, as in ./winnow). cuBLAS is not linked: gpt_kernels.cu and
# score_kernels.cu open it with dlopen at first use.
.PHONY: test-cuda
build/cuda/kernels/gpt_kernels.o: kernels/gpt_kernels.h
build/cuda/kernels/score_kernels.o: kernels/score_kernels.h kernels/gpt_kernels.h
build/cuda/kernels/minhash_kernels.o: kernels/minhash_kernels.h kernels/gpt_kernels.h
# minhash_dedup and its CPU reference (whose CPU-only build defines the kernel's stand-ins)
$(B)/src/minhash.o $(B)/stages/minhash_dedup.o build/san/src/minhash.o build/san/stages/minhash_dedup.o: \
    kernels/minhash_kernels.h kernels/gpt_kernels.h

build/cuda/host/gpt_ref.o: src/gpt_ref.c src/gpt_ref.h kernels/gpt_kernels.h
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) -std=c11 -O2 -g $(WARN) -c $< -o $@

build/cuda/host/gradproj.o build/cuda/host/util.o: build/cuda/host/%.o: src/%.c src/gradproj.h src/wn.h build/config
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) -std=c11 -D_GNU_SOURCE -fopenmp -DWN_BLAS=$(BLAS) -O2 -g $(WARN) -c $< -o $@

# ---- GPU model against the CPU model (src/gpt_cuda.c vs src/model.c) ----------
# tests/cuda/test_gpt_cuda.c is part 3 of build/cuda/test_kernels, linked in with
# the host objects it needs (util.o from the rule above), compiled here with
# WN_CUDA=1 whatever CUDA= says.
# The trainer's own object gets the kernels' header as a dependency.
$(B)/src/gpt_cuda.o: kernels/gpt_kernels.h
GPT_CUDA_TEST_OBJ  := $(addprefix build/cuda/host/,test_gpt_cuda.o gpt_cuda.o model.o adam8.o)
build/cuda/host/%.o: src/%.c $(wildcard src/*.h) kernels/gpt_kernels.h kernels/device.h build/config
	@mkdir -p $(dir $@)
	@echo "  CC      $< (for test_kernels)"
	@$(CC) $(CPPFLAGS) -DWN_CUDA=1 $(CFLAGS) $(WARN) -c $< -o $@
build/cuda/host/test_gpt_cuda.o build/cuda/host/gpt_emu.o: build/cuda/host/%.o: tests/cuda/%.c $(wildcard src/*.h) \
                                                             kernels/gpt_kernels.h kernels/device.h
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS) -DWN_CUDA=1 $(CFLAGS) $(WARN) -c $< -o $@
# The same checks with no GPU and no nvcc: build/cuda/test_gpt_emu links them with
# tests/cuda/gpt_emu.c, an emulated device whose kernels are the C references, so
# gpt_cuda.c's own code runs everywhere. cuda-check and test-cuda run it (its full
# output goes to build/cuda/test_gpt_emu.log).
build/cuda/test_gpt_emu: build/cuda/host/gpt_emu.o build/cuda/host/gpt_ref.o build/cuda/host/util.o build/cuda/host/gradproj.o \
                         $(GPT_CUDA_TEST_OBJ)
	@echo "  LD      $@"
	@$(CC) -fopenmp -o $@ $^ -lm $(if $(filter 1,$(BLAS)),-lopenblas)
.PHONY: test-gpt-emu
test-gpt-emu: build/cuda/test_gpt_emu
	@./build/cuda/test_gpt_emu >build/cuda/test_gpt_emu.log 2>&1 || { cat build/cuda/test_gpt_emu.log; exit 1; }
	@echo "test_gpt_emu: GPU model host code on an emulated device: $$(tail -1 build/cuda/test_gpt_emu.log)"
cuda-check test-cuda: test-gpt-emu

# winnow itself on the emulated device (tests/cuda/gpt_emu.c with WN_GPT_EMU_LIB,
# instead of the CUDA kernels): `--device cuda` runs gpt_cuda.c and cmd_train.c's
# GPU path (data parallelism under mpirun included) without a GPU, e.g.
# WINNOW_MPI=build/cuda/winnow_emu bash tests/e2e/test_mpi_train_device.sh.
# CUDA builds only (it links this build's WN_CUDA=1 objects); cuda-check links it.
ifeq ($(CUDA),1)
build/cuda/host/gpt_emu_lib.o: tests/cuda/gpt_emu.c $(wildcard src/*.h) kernels/gpt_kernels.h kernels/device.h \
                               kernels/minhash_kernels.h
	@mkdir -p $(dir $@)
	@echo "  CC      $< (WN_GPT_EMU_LIB)"
	@$(CC) $(CPPFLAGS) -DWN_CUDA=1 -DWN_GPT_EMU_LIB $(CFLAGS) $(WARN) -c $< -o $@
build/cuda/winnow_emu: $(B)/src/main.o $(OBJ) build/cuda/host/gpt_emu_lib.o
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) -fopenmp -o $@ $^ $(LIBS) $(BIN_LIBS)
cuda-check: build/cuda/winnow_emu
endif

# tests/cuda/test_minhash_kernels.cu (part of the same binary) compares
# kernels/minhash_kernels.cu with src/minhash.c's wn_mh_signatures (built
# with WN_CUDA=1, so without its CPU-only stand-ins; it needs text.o, xxhash
# and utf8proc).
CUDA_TEST_SRC  := tests/cuda/test_kernels.cu tests/cuda/test_score_kernels.cu tests/cuda/test_minhash_kernels.cu
CUDA_TEST_HOST := build/cuda/host/gpt_ref.o build/cuda/host/gradproj.o build/cuda/host/util.o \
                  build/cuda/host/minhash.o build/cuda/host/text.o $(GPT_CUDA_TEST_OBJ)
build/cuda/host/minhash.o: kernels/minhash_kernels.h
build/cuda/test_kernels: $(CUDA_TEST_SRC) $(CU_OBJ) $(CUDA_TEST_HOST) src/gpt_ref.h src/gradproj.h src/wn.h \
                         src/minhash.h kernels/gpt_kernels.h kernels/score_kernels.h kernels/minhash_kernels.h \
                         kernels/device.h
	@echo "  NVCC    $(CUDA_TEST_SRC)"
	@$(NVCC) -O2 $(NVCC_ARCH) -Ikernels -Isrc -Xcompiler -Wall,-Wextra -o $@ $(CUDA_TEST_SRC) $(CU_OBJ) $(CUDA_TEST_HOST) \
	    -ldl -lm -lgomp -lxxhash -lutf8proc $(if $(filter 1,$(BLAS)),-lopenblas)

cuda-check: build/cuda/test_kernels

# GPU throughput of the score stage's model work (tests/bench/bench_score_gpu.c;
# scripts/gpu_check.sh runs it): linked with winnow's own CUDA-build objects.
ifeq ($(CUDA),1)
build/bench_score_gpu: tests/bench/bench_score_gpu.c $(OBJ) $(CU_OBJ)
	@echo "  LD      $@"
	@$(CC) $(CPPFLAGS) -DWN_CUDA=1 $(CFLAGS) $(WARN) -o $@ $^ $(LIBS) $(BIN_LIBS)
cuda-check: build/bench_score_gpu
endif

test-cuda: build/cuda/test_kernels
	./build/cuda/test_kernels

# ---- GPU MinHash throughput (tests/bench/bench_minhash_gpu.c) ----------------
# CPU (src/minhash.c) and GPU (kernels/minhash_kernels.cu) signatures on
# generated documents, checked identical; prints SKIP for the GPU part and
# exits 0 without a GPU. Needs nvcc's runtime whatever CUDA= says, like
# test_kernels; cuda-check builds it (CI compiles it), scripts/gpu_check.sh
# runs it.
BENCH_MH_HOST := $(addprefix build/cuda/host/,minhash.o text.o util.o energy.o json.o)
build/cuda/host/energy.o: kernels/device.h
build/bench_minhash_gpu: tests/bench/bench_minhash_gpu.c build/cuda/kernels/minhash_kernels.o \
                         build/cuda/kernels/device.o $(BENCH_MH_HOST) src/minhash.h src/energy.h \
                         kernels/minhash_kernels.h kernels/device.h
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS) -DWN_CUDA=1 -O2 -g $(WARN) -o $@ $< build/cuda/kernels/minhash_kernels.o \
	    build/cuda/kernels/device.o $(BENCH_MH_HOST) -L$(CUDA_HOME)/lib64 -lcudart_static -ldl -lrt -lpthread \
	    -lstdc++ -lxxhash -lutf8proc -lm
cuda-check: build/bench_minhash_gpu

# ---- tests (sanitized, CPU-only) --------------------------------------------
build/san/%.o: %.c $(wildcard src/*.h) stages/stages.def tests/test.h tests/stage_harness.h
	@mkdir -p $(dir $@)
	@echo "  CC san  $<"
	@$(CC) $(CPPFLAGS) -DWN_CUDA=0 -O1 -g $(SAN) $(WARN) -c $< -o $@

build/san/winnow: build/san/src/main.o $(SAN_OBJ)
	$(CC) -fopenmp $(SAN) -o $@ $^ $(LIBS)

UNIT_SRC := $(wildcard tests/unit/*.c)
build/san/unit: $(UNIT_SRC:%.c=build/san/%.o) $(SAN_OBJ) | build/san/fake_nvml.so build/san/fake_nccl.so
	$(CC) -fopenmp $(SAN) -o $@ $^ $(LIBS)

# Stand-ins for libnvidia-ml.so.1 and libnccl.so.2 that tests/unit/test_energy.c
# and test_nccl.c load, so src/energy.c's NVML path and src/nccl.c run without
# a GPU (not instrumented: they are dlopen'ed into the sanitized unit binary).
build/san/fake_nvml.so: tests/unit/fake_nvml/fake_nvml.c
build/san/fake_nccl.so: tests/unit/fake_nccl/fake_nccl.c
build/san/fake_nvml.so build/san/fake_nccl.so:
	@mkdir -p $(dir $@)
	@echo "  CC      $< (shared)"
	@$(CC) -std=c11 -O1 -g -fPIC -shared $(WARN) -o $@ $<

FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
build/san/fuzz_%: build/san/tests/fuzz/fuzz_%.o build/san/tests/fuzz/replay.o $(SAN_OBJ)
	$(CC) -fopenmp $(SAN) -o $@ $^ $(LIBS)

export ASAN_OPTIONS := detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS := print_stacktrace=1:halt_on_error=1

test: build/san/unit build/san/winnow $(FUZZ_TARGETS:%=build/san/fuzz_%) winnow
	@./tests/run_all.sh

unit: build/san/unit
	./build/san/unit

# ---- benchmarks, fuzzing, deps ----------------------------------------------
bench: winnow build/gen_corpus
	./tests/bench/bench.sh
	./tests/bench/bench_tokenizer.sh
	./tests/bench/bench_train.sh
	./tests/bench/bench_train_memory.sh
	./tests/bench/bench_score.sh
	./tests/bench/bench_generate.sh
	./tests/bench/bench_line_dedup.sh
	./tests/bench/bench_minhash.sh
	./tests/bench/bench_mpi_run.sh

build/gen_corpus: tests/bench/gen_corpus.c
	@mkdir -p build
	$(CC) -O2 -std=c11 -D_GNU_SOURCE -o $@ $< -lzstd

.SECONDARY:

FUZZ_SECONDS ?= 60
fuzz:
	@mkdir -p build/fuzz
	@for t in $(FUZZ_TARGETS); do \
	  clang -g -O1 -std=c11 -D_GNU_SOURCE -fopenmp -Isrc -DWN_CUDA=0 -fsanitize=fuzzer,address,undefined \
	    tests/fuzz/fuzz_$$t.c $(SRC) -o build/fuzz/$$t $(LIBS) || exit 1; \
	  rm -rf build/fuzz/corpus-$$t && cp -r tests/fuzz/corpus/$$t build/fuzz/corpus-$$t; \
	  ./build/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) build/fuzz/corpus-$$t || exit 1; \
	done

DEB_PACKAGES := build-essential libzstd-dev libarchive-dev libpcre2-dev libxxhash-dev libyaml-dev fasttext libcurl4-openssl-dev \
                libutf8proc-dev libopenblas-dev zstd xxhash python3 gzip bzip2 xz-utils tar openmpi-bin libopenmpi-dev
deps:
	@if dpkg -s $(DEB_PACKAGES) >/dev/null 2>&1; then echo "deps: all installed"; else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(DEB_PACKAGES); fi

clean:
	rm -rf build winnow

# test_model.c compiles src/model.c a second time in double precision
build/san/tests/unit/test_model.o: src/model.c
