/* Unit tests for symbolize/demangle_rust.c: Rust v0 names from real binaries, and hostile ones. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "demangle_rust.h"
#include "symbolize.h"

/*
 * Symbols taken with nm from the rust_locks fixture and a program exercising the rest of the
 * grammar, built with rustc 1.95 and Debian 12's rustc 1.63 (-C symbol-mangling-version=v0);
 * the expected text is what binutils 2.40's c++filt --no-verbose prints for them, except the
 * two names marked where c++filt is wrong (it prints ''' and a '_' inside a u128 constant).
 */
static const struct {
	const char *in, *out;
} real[] = {
	/* The frames of threads blocked in std's futex locks (rustc 1.95's std). */
	{ "_RNvMNtNtNtNtCsjrHSEGnQ3l9_3std3sys4sync5mutex5futexNtB2_5Mutex14lock_contended",
	  "<std::sys::sync::mutex::futex::Mutex>::lock_contended" },
	{ "_RNvMNtNtNtNtCsjrHSEGnQ3l9_3std3sys4sync6rwlock5futexNtB2_6RwLock15write_contended",
	  "<std::sys::sync::rwlock::futex::RwLock>::write_contended" },
	{ "_RNvMNtNtNtNtCsjrHSEGnQ3l9_3std3sys4sync7condvar5futexNtB2_7Condvar4wait",
	  "<std::sys::sync::condvar::futex::Condvar>::wait" },
	{ "_RNvMs_NtNtCsjrHSEGnQ3l9_3std6thread6threadNtB4_6Thread4park",
	  "<std::thread::thread::Thread>::park" },
	{ "_RNvNvMs0_NtNtNtCsjrHSEGnQ3l9_3std3sys6thread4unixNtB7_6Thread3new12thread_start",
	  "<std::sys::thread::unix::Thread>::new::thread_start" },
	{ "_RNvMNtNtNtCsdyIG5SqMl5y_3std4sync4mpsc6sharedINtB2_6PacketyE4recvCs13qO0uIgLKU_10rust_locks",
	  "<std::sync::mpsc::shared::Packet<u64>>::recv" },
	{ "_RNvCs13qO0uIgLKU_10rust_locks10block_recv", "rust_locks::block_recv" },
	/* Closures, shims, generic arguments in values and in types. */
	{ "_RINvCs13qO0uIgLKU_10rust_locks5spawnNCNvB2_4mains_0EB2_",
	  "rust_locks::spawn::<rust_locks::main::{closure#1}>" },
	{ "_RNSNvYNCINvMNtCsdyIG5SqMl5y_3std6threadNtBa_7Builder16spawn_unchecked_NCINvCs13qO0uIgLKU_"
	  "10rust_locks5spawnNCNvB1b_4main0E0uEs_0INtNtNtCs6IL9ONYDOZW_4core3ops8function6FnOnceuE9"
	  "call_once6vtableB1b_",
	  "<<std::thread::Builder>::spawn_unchecked_<rust_locks::spawn<rust_locks::main::{closure#0}>"
	  "::{closure#0}, ()>::{closure#1} as core::ops::function::FnOnce<()>>::call_once::"
	  "{shim:vtable#0}" },
	{ "_RINvNtNtCsjrHSEGnQ3l9_3std3sys9backtrace26___rust_end_short_backtraceNCNvNtB6_5alloc8"
	  "rust_oom0zEB6_",
	  "std::sys::backtrace::__rust_end_short_backtrace::<std::alloc::rust_oom::{closure#0}, !>" },
	{ "_RINvMs4_NtCsgY6Mt91CT9J_14rustc_demangle2v0NtB6_7Printer14print_sep_listNCNvB2_11print_"
	  "consts0_0EB8_",
	  "<rustc_demangle::v0::Printer>::print_sep_list::<<rustc_demangle::v0::Printer>::"
	  "print_const::{closure#2}>" },
	/* Types: str, slices, tuples, pointers, references, arrays, fn pointers, dyn. */
	{ "_RINvMNtCsgEmfK2I1SDS_4core3stre18trim_start_matchesReECsgY6Mt91CT9J_14rustc_demangle",
	  "<str>::trim_start_matches::<&str>" },
	{ "_RINvMNtCsgEmfK2I1SDS_4core5sliceSh11copy_withinINtNtNtB5_3ops5range14RangeInclusivejEECs"
	  "fEOYDRpO4Ta_11miniz_oxide",
	  "<[u8]>::copy_within::<core::ops::range::RangeInclusive<usize>>" },
	{ "_RNvXs1_CsbJzCLjJ5MIl_5weirdThxReENtB5_2Tr2go", "<(u8, i64, &str) as weird::Tr>::go" },
	{ "_RNvXs2_CsbJzCLjJ5MIl_5weirdSsNtB5_2Tr2go", "<[i16] as weird::Tr>::go" },
	{ "_RNvXsV_NtCs6IL9ONYDOZW_4core3fmtROhNtB5_5Debug3fmtCs13qO0uIgLKU_10rust_locks",
	  "<&*mut u8 as core::fmt::Debug>::fmt" },
	{ "_RNvMs3_NtCslNYArtu3iFV_5alloc7raw_vecINtB5_6RawVecTOhFUKCBN_EuENtNtCsjrHSEGnQ3l9_3std5"
	  "alloc6SystemE8grow_oneB13_",
	  "<alloc::raw_vec::RawVec<(*mut u8, unsafe extern \"C\" fn(*mut u8)), std::alloc::System>>"
	  "::grow_one" },
	{ "_RINvNtNtCsdyIG5SqMl5y_3std10sys_common9backtrace28___rust_begin_short_backtraceFEuuECs13q"
	  "O0uIgLKU_10rust_locks",
	  "std::sys_common::backtrace::__rust_begin_short_backtrace::<fn(), ()>" },
	{ "_RINvNtCsihNoVIYWwLU_5alloc5alloc8box_freeAINtNtB4_5boxed3BoxDNtCsf22cicAGqm9_5weird2TrEL"
	  "_Ej2_NtB2_6GlobalEBZ_",
	  "alloc::alloc::box_free::<[alloc::boxed::Box<dyn weird::Tr>; 2], alloc::alloc::Global>" },
	{ "_RINvNtCsgEmfK2I1SDS_4core3ptr13drop_in_placeINtNtCslNYArtu3iFV_5alloc3vec3VecINtNtBL_5"
	  "boxed3BoxDINtNtNtB4_3ops8function6FnOnceuEp6OutputuNtNtB4_6marker4SendEL_EEECsdwtgXIDIUDV"
	  "_10rust_locks",
	  "core::ptr::drop_in_place::<alloc::vec::Vec<alloc::boxed::Box<dyn core::ops::function::"
	  "FnOnce<(), Output = ()> + core::marker::Send>>>" },
	{ "_RINvNtCsgEmfK2I1SDS_4core3ptr13drop_in_placeINtNtCslNYArtu3iFV_5alloc5boxed3BoxDG0_INtNt"
	  "NtB4_3ops8function2FnTRL1_INtNtCsjrHSEGnQ3l9_3std5panic13PanicHookInfoL0_EEEp6OutputuNtNt"
	  "B4_6marker4SyncNtB2N_4SendEL_EEB1T_",
	  "core::ptr::drop_in_place::<alloc::boxed::Box<dyn for<'a, 'b> core::ops::function::Fn<(&'a "
	  "std::panic::PanicHookInfo<'b>,), Output = ()> + core::marker::Sync + "
	  "core::marker::Send>>" },
	{ "_RNvXs9_Csf22cicAGqm9_5weirdINtNtCsihNoVIYWwLU_5alloc5boxed3BoxDNtNtNtNtCs6IL9ONYDOZW_4cor"
	  "e4iter6traits8iterator8Iteratorp4ItemtNtNtB17_6marker4SendEL_ENtB5_2Tr2go",
	  "<alloc::boxed::Box<dyn core::iter::traits::iterator::Iterator<Item = u16> + "
	  "core::marker::Send> as weird::Tr>::go" },
	/* Const generics: usize, bool, char, i32, u128. */
	{ "_RNvMCsbJzCLjJ5MIl_5weirdINtB2_3ArrKj2_Kb0_Kce9_Kl5_E3getB2_",
	  "<weird::Arr<2, false, '\\u{e9}', 5>>::get" },
	/* c++filt prints ''' here. */
	{ "_RNvMCsbJzCLjJ5MIl_5weirdINtB2_3ArrKj1_Kb0_Kc27_Kln80000000_E3getB2_",
	  "<weird::Arr<1, false, '\\'', -2147483648>>::get" },
	{ "_RNvMs_CsbJzCLjJ5MIl_5weirdINtB4_3BigKo0_E1vB4_", "<weird::Big<0>>::v" },
	/* c++filt prints 0xfff..._ here. */
	{ "_RNvMs_CsbJzCLjJ5MIl_5weirdINtB4_3BigKoffffffffffffffffffffffffffffffff_E1vB4_",
	  "<weird::Big<0xffffffffffffffffffffffffffffffff>>::v" },
	/* Punycode identifiers: mod größe { struct Ñandú; impl Ñandú { fn 走る() } }. */
	{ "_RNvMNtCsbJzCLjJ5MIl_5weirdu9gre_6ka8iNtB2_u9and_jja2su7obk301z",
	  "<weird::größe::Ñandú>::走る" },
	/* A vendor suffix is dropped. */
	{ "_RINvNtCs6IL9ONYDOZW_4core3ptr13drop_in_placeROhECs13qO0uIgLKU_10rust_locks.llvm."
	  "12982405825218244423",
	  "core::ptr::drop_in_place::<&*mut u8>" },
	{ "_RNvCs1234_7mycrate3foo", "mycrate::foo" },
};

/* Corners of the grammar that the binaries above do not reach. */
static const struct {
	const char *in, *out;
} grammar[] = {
	{ "_RNCNvC1a4main0", "a::main::{closure#0}" },
	{ "_RNCNvC1a4mains0_3foo", "a::main::{closure:foo#2}" },
	{ "_RNSNvC1a1f5reify", "a::f::{shim:reify#0}" },
	{ "_RNQC1as_1x", "a::{Q:x#1}" },		/* a special namespace not yet named */
	{ "_RYpNvC1a1T", "<_ as a::T>" },
	{ "_RINvC1a1fKj0_Kin1_Kaf_Knnffffffffffffffffff_E",
	  "a::f::<0, -1, 15, -0xffffffffffffffffff>" },
	{ "_RINvC1a1fKc9_Kc22_Kc1f980_Kb1_E", "a::f::<'\\t', '\"', '\\u{1f980}', true>" },
	{ "_RINvC1a1fFG_KCRL0_hEuE", "a::f::<for<'a> extern \"C\" fn(&'a u8)>" },
	{ "_RINvC1a1fFK13system_unwindEzE", "a::f::<extern \"system-unwind\" fn() -> !>" },
	{ "_RINvC1a1fDG_NvC1a1TEL_E", "a::f::<dyn for<'a> a::T>" },
	{ "_RINvC1a1fQL_ThEAhj4_E", "a::f::<&mut (u8,), [u8; 4]>" },
	{ "_RNvC1a1f$LT$", "a::f" },			/* a '$' vendor suffix */
};

/* Names that are not well-formed v0: each must give NULL. */
static const char *const malformed[] = {
	"_R", "_RN", "_RNv", "_RNvC", "_RNvC3fo", "_RNvC3foo", "_RNvC3foo3ba", "_RNvC10foo",
	"_RNvC999999999999999999993foo", "_RNvCs3foo3bar", "_RNvCs!_3foo3bar", "_R0NvC1a1b",
	"_RNvC1a1bz",			/* trailing garbage */
	"_RNvC1a1bX",			/* a broken instantiating crate */
	"_RNvB_3foo",			/* a backref that loops back to itself */
	"_RNvC1aB_",			/* a backref that points after itself */
	"_RNvBzzzzzzzzzzzzzzzz_3foo",	/* a backref past the end, overflowing */
	"_RINvC1a1bKeE",		/* a const of a type that has no constants */
	"_RINvC1a1bKb2_E",		/* bool 2 */
	"_RINvC1a1bKcd800_E",		/* a surrogate as char */
	"_RINvC1a1bKjxyz_E",		/* not hex */
	"_RINvC1a1bRL0_hE",		/* lifetime 1 outside any binder */
	"_RINvC1a1bTh",			/* an unterminated tuple */
	"_RINvC1a1bFKhE",		/* a bad ABI */
	"_RINvC1a1bh",			/* unterminated generic arguments */
	"_RNv0C1a1b",			/* a digit as namespace */
	"_RNvC2\x01\x02" "1b",		/* control characters in an identifier */
	"_RNvC2\xc3\xa4" "1b",		/* non-ASCII bytes outside punycode */
	"_RNvCu0_1b",			/* an empty punycode identifier */
	"_ZN3foo3barE",			/* not v0 at all */
	"_RNvC2a.1c",			/* '.' inside an identifier */
	"_RINvC1a1fKj_E",		/* an integer without digits */
	"_RINvC1a1fKj01_E",		/* a leading zero */
	"_RINvC1a1fKc110000_E",		/* past the last code point */
	"_RINvC1a1fKbn0_E",		/* a negative bool */
};

static void test_real(void)
{
	for (size_t i = 0; i < sizeof(real) / sizeof(real[0]); i++) {
		char *d = cp_sym_demangle_rust_v0(real[i].in);
		char *p = cp_sym_demangle(real[i].in);

		CHECK(d && !strcmp(d, real[i].out), "%s: got %s, want %s", real[i].in,
		      d ? d : "NULL", real[i].out);
		/* The symbolizer's entry point hands _R names to the v0 demangler. */
		CHECK(p && d && !strcmp(p, d), "cp_sym_demangle %s: got %s", real[i].in,
		      p ? p : "NULL");
		free(d);
		free(p);
	}
}

static void test_grammar(void)
{
	for (size_t i = 0; i < sizeof(grammar) / sizeof(grammar[0]); i++) {
		char *d = cp_sym_demangle_rust_v0(grammar[i].in);

		CHECK(d && !strcmp(d, grammar[i].out), "%s: got %s, want %s", grammar[i].in,
		      d ? d : "NULL", grammar[i].out);
		free(d);
	}
}

static void test_malformed(void)
{
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		char *d = cp_sym_demangle_rust_v0(malformed[i]);

		CHECK(d == NULL, "%s: got %s", malformed[i], d);
		free(d);
	}
	CHECK(cp_sym_demangle_rust_v0(NULL) == NULL);
	/* Punycode that does not decode is shown as it is written, not dropped. */
	char *d = cp_sym_demangle_rust_v0("_RNvC1au3a_9");

	CHECK(d && !strcmp(d, "a::punycode{a_9}"), "bad punycode: got %s", d ? d : "NULL");
	free(d);
}

/* Every prefix of every real name demangles or not, but never reads past its end (ASan). */
static void test_truncated(void)
{
	char buf[512];
	size_t ok = 0;

	for (size_t i = 0; i < sizeof(real) / sizeof(real[0]); i++) {
		size_t n = strlen(real[i].in);

		CHECK(n < sizeof(buf));
		for (size_t k = 0; k < n && n < sizeof(buf); k++) {
			char *d;

			memcpy(buf, real[i].in, k);
			buf[k] = '\0';
			d = cp_sym_demangle_rust_v0(buf);
			ok += d != NULL;
			free(d);
		}
	}
	/* A few prefixes end where a path does; most do not. */
	CHECK(ok < 200, "%zu prefixes demangled", ok);
}

/* "_R" + n times "Nv" + "C1a" + n times "1b": a path n + 1 deep. */
static char *nested_name(size_t n)
{
	size_t len = 2 + 2 * n + 3 + 2 * n;
	char *s = malloc(len + 1);

	if (!s)
		return NULL;
	memcpy(s, "_R", 2);
	for (size_t i = 0; i < n; i++)
		memcpy(s + 2 + 2 * i, "Nv", 2);
	memcpy(s + 2 + 2 * n, "C1a", 3);
	for (size_t i = 0; i < n; i++)
		memcpy(s + 5 + 2 * n + 2 * i, "1b", 2);
	s[len] = '\0';
	return s;
}

static void base62(char *out, size_t v)
{
	static const char digits[] =
		"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
	char tmp[16];
	int n = 0;

	if (v-- == 0) {
		strcpy(out, "_");
		return;
	}
	do {
		tmp[n++] = digits[v % 62];
		v /= 62;
	} while (v);
	while (n)
		*out++ = tmp[--n];
	strcpy(out, "_");
}

static void test_limits(void)
{
	char *s = nested_name(100), *d;

	d = s ? cp_sym_demangle_rust_v0(s) : NULL;
	CHECK(d && !strncmp(d, "a::b::b::", 9) && strlen(d) == 1 + 3 * 100, "100 deep: %.40s",
	      d ? d : "NULL");
	free(d);
	free(s);
	s = nested_name(5000);
	d = s ? cp_sym_demangle_rust_v0(s) : NULL;
	CHECK(s && d == NULL, "5000 deep is refused");
	free(d);
	free(s);

	/*
	 * Tuples of two backrefs to the tuple before: 40 levels would print 2^40 "u8"s. The
	 * output cap refuses it after a few kilobytes.
	 */
	char name[2048], ref[16];
	size_t len;

	len = (size_t)sprintf(name, "_RINvC1a1b");
	size_t prev = len - 2;

	len += (size_t)sprintf(name + len, "ThhE");
	for (int k = 0; k < 40; k++) {
		size_t here = len - 2;

		base62(ref, prev);
		len += (size_t)sprintf(name + len, "TB%sB%sE", ref, ref);
		prev = here;
	}
	strcpy(name + len, "E");
	d = cp_sym_demangle_rust_v0(name);
	CHECK(d == NULL, "exponential backrefs are refused: %zu bytes", d ? strlen(d) : 0);
	free(d);
	/* Two levels of the same are fine and print what they mean. */
	strcpy(name, "_RINvC1a1bThhETB7_B7_EE");
	d = cp_sym_demangle_rust_v0(name);
	CHECK(d && !strcmp(d, "a::b::<(u8, u8), ((u8, u8), (u8, u8))>"), "backrefs: %s",
	      d ? d : "NULL");
	free(d);
}

/* Random byte changes to real names: whatever comes out, nothing crashes or overruns (ASan). */
static void test_mutations(void)
{
	uint64_t x = 88172645463325252ull;
	char buf[512];
	size_t nonnull = 0;

	for (int iter = 0; iter < 50000; iter++) {
		const char *src = real[(size_t)iter % (sizeof(real) / sizeof(real[0]))].in;
		size_t n = strlen(src);
		char *d;

		memcpy(buf, src, n + 1);
		for (int k = 0; k < 1 + iter % 3; k++) {
			static const char alphabet[] = "_0123456789BCDEIKLMNXYTRQPOSFGUuspvhjyb.";

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[2 + (x >> 8) % (n - 2)] = alphabet[(x >> 40) % (sizeof(alphabet) - 1)];
		}
		d = cp_sym_demangle_rust_v0(buf);
		if (d) {
			nonnull++;
			CHECK(strlen(d) < 16384);
		}
		free(d);
	}
	printf("mutations: %zu of 50000 still demangle\n", nonnull);
}

int main(void)
{
	test_real();
	test_grammar();
	test_malformed();
	test_truncated();
	test_limits();
	test_mutations();
	return check_done("demangle_rust");
}
