#!/bin/sh
# quantc: runs the recipe commands (check, fmt, export) from the startup
# snapshot `npm run build` made, when there is one this `node` can load, and
# everything else, or everything when there is none, from the plain bundle.
#
# A snapshot loads only into the node binary and V8 flags that built it, so
# it is used only when the `node` found on PATH is the very file recorded
# next to it (same device and inode) and still has the modification time
# recorded with it (the stamp file carries it), and NODE_OPTIONS (which may
# carry V8 flags) is unset or empty.

# Package managers link executables: find the real folder of this file.
self=$0
case $self in */*) ;; *) self=./$self ;; esac
while [ -h "$self" ]; do
  link=$(readlink "$self")
  case $link in /*) self=$link ;; *) self=${self%/*}/$link ;; esac
done
cli=${self%/*}

case $1 in
check | fmt | export)
  blob=$cli/snapshot/quantc.blob
  stamp=$blob.node
  if [ -z "${NODE_OPTIONS:-}" ] && [ -r "$blob" ] && [ -r "$stamp" ] && read -r built <"$stamp" &&
    node=$(command -v node) && [ "$node" -ef "$built" ] && [ ! "$node" -nt "$stamp" ] && [ ! "$node" -ot "$stamp" ]; then
    exec "$node" --snapshot-blob "$blob" -- "$@"
  fi
  ;;
esac
# Runs on CUDA (`--device cuda…`, `--gpus`): glibc serves every block from its
# heap and keeps what is freed, so the GiB-sized buffers that carry each
# layer's outputs off the card reuse pages instead of having fresh ones
# zero-filled (src/cli/cuda-heap.ts says why and what it costs). Not when
# the user tunes glibc's allocator.
cuda=
prev=
for arg do
  case $prev,$arg in --device,cuda*) cuda=1 ;; esac
  case $arg in --device=cuda* | --gpus | --gpus=*) cuda=1 ;; esac
  prev=$arg
done
if [ -n "$cuda" ] && [ -z "${GLIBC_TUNABLES+set}" ] && ! env | grep -q '^MALLOC_'; then
  export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736
fi
exec node "$cli/quantc.js" "$@"
