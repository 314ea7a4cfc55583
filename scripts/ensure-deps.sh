#!/usr/bin/env bash
# Checks what LongConvKit needs to build: a Swift toolchain and the system libraries
# FFTW single precision (+ fftw3f_threads), OpenBLAS and Open MPI (its C library, for
# data-parallel training under mpirun), found through pkg-config, and Open MPI's mpirun.
# Installs missing Debian packages when run as root; otherwise prints the one command to run.
# Use it either way: `scripts/ensure-deps.sh` or `source scripts/ensure-deps.sh` (sourcing also
# puts /opt/swift/usr/bin on PATH when swift is not already there).
# LONGCONV_ASSUME_MISSING=1 treats the libraries as missing (to exercise the install path).

longconv_ensure_deps() {
  local missing=() pkg libdir
  for pkg in libfftw3-dev libopenblas-dev libopenmpi-dev openmpi-bin; do
    dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$pkg")
  done
  if ! command -v pkg-config >/dev/null; then
    missing+=(pkgconf)
  elif ! pkg-config --exists fftw3f openblas ompi-c; then
    missing+=(libfftw3-dev libopenblas-dev libopenmpi-dev)
  else
    libdir=$(pkg-config --variable=libdir fftw3f)
    [[ -e "$libdir/libfftw3f_threads.so" ]] || missing+=(libfftw3-dev)
  fi
  command -v mpirun >/dev/null || missing+=(openmpi-bin)
  [[ "${LONGCONV_ASSUME_MISSING:-0}" == 1 ]] && missing+=(libfftw3-dev libopenblas-dev libopenmpi-dev openmpi-bin)
  # Deduplicate, keeping order.
  mapfile -t missing < <(printf '%s\n' ${missing[@]+"${missing[@]}"} | awk 'NF && !seen[$0]++')

  if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
      echo "LongConvKit needs ${missing[*]}: run sudo apt-get install -y ${missing[*]}" >&2
      return 1
    fi
    echo "ensure-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >&2 \
      || { echo "ensure-deps: apt-get install ${missing[*]} failed" >&2; return 1; }
  fi

  if ! command -v swift >/dev/null; then
    if [[ -x /opt/swift/usr/bin/swift ]]; then
      export PATH="/opt/swift/usr/bin:$PATH"
    else
      echo "LongConvKit needs a Swift 6 toolchain: put its usr/bin on PATH (swift not found, nor /opt/swift/usr/bin/swift)" >&2
      return 1
    fi
  fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  longconv_ensure_deps
else
  longconv_ensure_deps || return 1
fi
