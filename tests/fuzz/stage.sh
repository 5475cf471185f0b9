#!/bin/bash
# Copies what whole-restore fuzzing runs into DEST, then runs COMMAND.
#
#   stage.sh DEST CRYO CRYO_FUZZ PROGS_DIR DRIVER -- COMMAND...
#
# Restores run in a namespace with a private tmpfs on /tmp: a build tree under /tmp (a CI
# checkout) would vanish there, with cryo, the driver and the programs the images name.
set -euo pipefail
dest=$1 cryo=$2 fuzz=$3 progs=$4 driver=$5
shift 5
[[ $1 == -- ]] && shift
rm -rf "$dest"
mkdir -p "$dest/progs"
cp "$cryo" "$dest/cryo"
cp "$fuzz" "$dest/cryo-fuzz"
cp "$driver" "$dest/restore_fuzz.py"
find "$progs" -maxdepth 1 -type f -perm -u+x -exec cp {} "$dest/progs/" \;
exec "$@"
