# install.sh — `cmake --install` puts the binary, the library, the headers and a
# relocatable postnas.pc under a prefix, and a program builds against them with pkg-config.
. "$(dirname "$0")/../cli_lib/common.sh"
BUILD=$(dirname "$PN")
expect_ok cmake --install "$BUILD" --prefix "$TMP/prefix"
check "binary installed" test -x "$TMP/prefix/bin/postnas"
check "library installed" test -f "$TMP/prefix/lib/libpostnas.a"
check "headers installed" test -f "$TMP/prefix/include/postnas/blocks/block.h"
check "pkg-config file installed" test -f "$TMP/prefix/lib/pkgconfig/postnas.pc"
cat > "$TMP/use.c" <<'C'
#include "core/tensor.h"
#include "blocks/block.h"
#include <stdio.h>
int main(void) {
    const pn_block_type *t = pn_block_type_find("jetblock");
    printf("%s %s\n", pn_dtype_name(PN_BF16), t ? t->name : "missing");
    return t ? 0 : 1;
}
C
export PKG_CONFIG_PATH="$TMP/prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
OMPBLAS=/usr/lib/$(gcc -print-multiarch)/openblas-openmp
SAN=""
grep -q "POSTNAS_SANITIZE:BOOL=ON" "$BUILD/CMakeCache.txt" && SAN="-fsanitize=address,undefined"
expect_ok sh -c "cc $SAN '$TMP/use.c' -o '$TMP/use' \$(pkg-config --cflags --libs --static postnas) -L'$OMPBLAS' -Wl,-rpath,'$OMPBLAS'"
expect_ok "$TMP/use"
check "the installed library finds its blocks" grep -q "BF16 jetblock" "$TMP/out"
finish
