# The toolchain and flags of the npm package's build (sourced by build-pkg.sh and setup.sh):
# one place to change them. A dated nightly, because the package is built with `-Z build-std`
# and panics that abort at once: std itself is compiled for size, without its panic and
# formatting machinery (README "Package size" says what each of these buys). The rest of the
# workspace builds on stable.
PKG_TOOLCHAIN=nightly-2026-05-20
PKG_RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Zfmt-debug=none -Csymbol-mangling-version=legacy"
