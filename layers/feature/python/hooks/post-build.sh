#!/bin/sh
# feature/python post-build: byte-compile the standard library here, as Debian's installer would
# (py3compile): the root filesystem is read-only on the device, so python3 would otherwise compile
# every module it imports at every start. Bytecode is per Python version: only done when this
# machine's python3 is the image's version (both are Debian bookworm's 3.11 here).
set -eu
target=$1
host=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || exit 0
for lib in "$target"/usr/lib/python3.*; do
  [ -d "$lib" ] || continue
  version=${lib##*/python}
  if [ "$host" = "$version" ]; then
    python3 -m compileall -q -j 0 -d "/usr/lib/python$version" "$lib" > /dev/null
  else
    echo "feature/python: this machine's python3 is $host, the image's $version: no bytecode" >&2
  fi
done
