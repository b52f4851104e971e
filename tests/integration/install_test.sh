#!/bin/sh
# install_test: `meson install` into a staging directory puts the header, the version header, the
# library with its soname links and pixelpass.pc where pkg-config finds them; a C program then
# builds with nothing but `pkg-config --cflags --libs pixelpass`, runs against the staged library
# (not the build tree's), and prints a ticket that decodes to its own host's fingerprint. When the
# Python binding is installed too, it must import from the staged tree and read the same ticket.
#
#   install_test.sh MESON BUILD_DIR SOURCE_DIR PREFIX LIBDIR INCLUDEDIR VERSION SOVERSION [PYTHON PYDIR]
# LIBDIR and INCLUDEDIR are absolute (prefix joined); PYDIR is where the binding installs.
set -eu

meson=$1 build=$2 src=$3 prefix=$4 libdir=$5 includedir=$6 version=$7 soversion=$8
python=${9:-} pydir=${10:-}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

stage=$(mktemp -d "${TMPDIR:-/tmp}/pixelpass-install.XXXXXX")
trap 'rm -rf "$stage"' EXIT INT TERM
dest=$stage/root

echo "== meson install --destdir $dest"
"$meson" install -C "$build" --no-rebuild --destdir "$dest" >"$stage/install.log" 2>&1 ||
    { cat "$stage/install.log" >&2; fail "meson install failed"; }

lib=$dest$libdir
inc=$dest$includedir
pcdir=$lib/pkgconfig

echo "== installed files"
for f in "$inc/pixelpass.h" "$inc/pixelpass_version.h" "$lib/libpixelpass.so.$version" \
         "$pcdir/pixelpass.pc"; do
    [ -f "$f" ] || fail "missing $f"
    echo "  ${f#"$dest"}"
done
# The development link and the soname link point at the real file.
[ -L "$lib/libpixelpass.so" ] || fail "libpixelpass.so is not a symlink"
[ -L "$lib/libpixelpass.so.$soversion" ] || fail "libpixelpass.so.$soversion is not a symlink"
[ "$(readlink -f "$lib/libpixelpass.so")" = "$(readlink -f "$lib/libpixelpass.so.$version")" ] ||
    fail "libpixelpass.so does not resolve to libpixelpass.so.$version"
soname=$(readelf -d "$lib/libpixelpass.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libpixelpass.so.$soversion" ] || fail "SONAME is '$soname', expected libpixelpass.so.$soversion"
echo "  SONAME $soname"
grep -q "PIXELPASS_VERSION \"$version\"" "$inc/pixelpass_version.h" ||
    fail "installed pixelpass_version.h does not say $version"

echo "== pkg-config"
# The .pc names the real prefix; the sysroot variable makes pkg-config prepend the staging root to
# every -I/-L it prints, as it does for a cross sysroot.
PKG_CONFIG_PATH=$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
PKG_CONFIG_SYSROOT_DIR=$dest
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
[ "$(pkg-config --modversion pixelpass)" = "$version" ] || fail "pkg-config --modversion is not $version"
flags=$(pkg-config --cflags --libs pixelpass) || fail "pkg-config --cflags --libs pixelpass failed"
echo "  pkg-config --cflags --libs pixelpass: $flags"
case " $flags " in
*" -L$lib "*) ;;
*) fail "the link flags do not point at the staged $libdir" ;;
esac
unset PKG_CONFIG_SYSROOT_DIR

echo "== build examples/ticket_roundtrip.c against the staged install"
# shellcheck disable=SC2086 # $flags is a list of words
${CC:-cc} -std=c11 -Wall -Wextra -Werror "$src/examples/ticket_roundtrip.c" $flags \
    -o "$stage/ticket_roundtrip" || fail "compiling the example failed"

echo "== run it"
LD_LIBRARY_PATH=$lib
export LD_LIBRARY_PATH
# It must load the staged library, not one from the build tree or the system.
resolved=$(ldd "$stage/ticket_roundtrip" | awk '$1 ~ /^libpixelpass\.so/ { print $3 }')
[ "$(readlink -f "$resolved")" = "$(readlink -f "$lib/libpixelpass.so.$version")" ] ||
    fail "the example resolves libpixelpass to '$resolved', not the staged copy"
"$stage/ticket_roundtrip" >"$stage/out.txt" 2>&1 || { cat "$stage/out.txt" >&2; fail "the example failed"; }
sed 's/^/  /' "$stage/out.txt"

grep -q "^pixelpass $version (header $version)\$" "$stage/out.txt" || fail "version line missing or wrong"
fingerprint=$(sed -n 's/^fingerprint: \([0-9a-f]\{64\}\)$/\1/p' "$stage/out.txt")
ticket=$(sed -n 's/^ticket: \(pxp[a-z0-9]*\)$/\1/p' "$stage/out.txt")
[ -n "$fingerprint" ] || fail "no 64-hex-digit fingerprint line"
[ -n "$ticket" ] || fail "no ticket line"
grep -q "^decoded: {.*\"fingerprint\":\"$fingerprint\"" "$stage/out.txt" ||
    fail "the decoded ticket does not pin the host's fingerprint"

if [ -n "$python" ] && [ -n "$pydir" ]; then
    echo "== Python binding from the staged install"
    [ -f "$dest$pydir/pixelpass/__init__.py" ] || fail "missing $pydir/pixelpass/__init__.py"
    PYTHONPATH=$dest$pydir PIXELPASS_LIBRARY=$lib/libpixelpass.so.$soversion \
        "$python" -c '
import sys, pixelpass
assert pixelpass.__file__.startswith(sys.argv[3]), pixelpass.__file__
t = pixelpass.Ticket.decode(sys.argv[1])
assert t.fingerprint.hex() == sys.argv[2], (t.fingerprint.hex(), sys.argv[2])
print("  python", pixelpass.version(), "decodes the ticket, fingerprint", t.fingerprint.hex())
' "$ticket" "$fingerprint" "$dest" || fail "the staged Python binding does not work"
fi
echo "OK"
