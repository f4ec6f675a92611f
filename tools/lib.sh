# tools/lib.sh - shared by tools/demo and tools/check: package installation,
# OpenCL driver registration and the meson build. Sourced, not run.

say() { printf '==> %s\n' "$*"; }

# Debian packages the build and the program need.
PACKAGES=(
  build-essential meson ninja-build pkg-config python3
  ocl-icd-opencl-dev opencl-c-headers ocl-icd-libopencl1 pocl-opencl-icd clinfo
  libclblast-dev libtiff-dev libpng-dev libgif-dev libjpeg-dev zlib1g-dev libcairo2-dev
)
# ... and what only the tests need: a second OpenCL implementation, the PyTorch twin, curl for
# tools/fetch-datasets (tested on local archives).
TEST_PACKAGES=(oclgrind python3-torch python3-torchvision python3-pil python3-numpy curl)

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "tools: need root (or sudo) to run: $*" >&2; return 1
  fi
}

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "all required Debian packages are installed"
    return
  fi
  say "installing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# A private ICD directory with PoCL and Oclgrind, so tests can use both
# without changing the system's default OpenCL platforms.
ICD_DIR="$PWD/build-icd"
register_icds() {
  mkdir -p "$ICD_DIR"
  local f
  for f in /etc/OpenCL/vendors/*.icd; do
    [ -e "$f" ] && cp -f "$f" "$ICD_DIR/"
  done
  if [ -e /usr/lib/oclgrind/liboclgrind-rt-icd.so ]; then
    echo /usr/lib/oclgrind/liboclgrind-rt-icd.so > "$ICD_DIR/oclgrind.icd"
  fi
  say "OpenCL drivers for the tests (OCL_ICD_VENDORS=$ICD_DIR): $(cd "$ICD_DIR" && echo *.icd)"
}

configure_and_build() {
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then
    say "reusing the build directory $dir"
    [ $# -gt 0 ] && meson configure "$dir" "$@"
  else
    say "configuring $dir: meson setup $dir $*"
    meson setup "$dir" "$@"
  fi
  say "building: ninja -C $dir"
  ninja -C "$dir"
}
