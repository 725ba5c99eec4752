/* Rust v0 symbol demangling (private to symbolize/). */
#ifndef CP_DEMANGLE_RUST_H
#define CP_DEMANGLE_RUST_H

/*
 * Demangle a Rust v0 symbol ("_R..."), as rustc-demangle's alternate form prints it: crate
 * hashes and the instantiating crate left out, a vendor suffix (".llvm.123") dropped. Returns
 * a malloc'd string, or NULL when s is not a well-formed v0 name, nests deeper or prints longer
 * than the demangler's limits, or memory runs out: callers then show the raw name.
 */
char *cp_sym_demangle_rust_v0(const char *s);

#endif
