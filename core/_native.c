/*
 * core._native: native fast paths for the verifier's hot loops. Every function here has a pure-Python reference
 * in core/ (named below) that stays authoritative: a fast path either returns exactly what the reference returns,
 * or declines (returns None, or raises the private ``Decline`` exception for the JSON decoder), and the caller
 * then runs the reference, which produces the answer or the error with its evidence. A fast path therefore never
 * decides an error case on its own, and never accepts what the reference refuses (tests/test_native.py checks
 * this differentially, with hypothesis and the verifier's mutation fuzzer).
 *
 *   sm3(data)                        SM3, GB/T 32905-2016 (GM/T 0004-2012)       ref: gmssl-pyx, core.hashing
 *   inclusion_root(i, n, leaf, path) RFC 9162 §2.1.3.2 with SM3                  ref: core.merkle.root_from_inclusion_proof
 *   sparse_root(key, value_hash, depths, siblings)
 *                                    the status map's sparse Merkle proof        ref: core.smt.verify_sparse_proof
 *   hashes_from_hex(list)            64 lower-case hex digits each -> bytes      ref: core.bundle._proof
 *   decode(bytes)                    strict I-JSON (RFC 8259, RFC 7493)          ref: core.canonical.decode
 *   encode(value)                    RFC 8785 subset                             ref: core.canonical.encode
 *   uscc_check_char(first17)         GB 32100-2015 check character               ref: core.codes.uscc_check_char
 *   mod11_2(digits)                  ISO 7064 MOD 11-2 (GB 11643-1999)           ref: core.codes.iso7064_mod11_2
 *   mod37_36_state(text, state)      ISO/IEC 7064 MOD 37,36 recurrence           ref: core.codes.mod37_36_state
 *   uscc_valid(text)                 a valid GB 32100-2015 code (True | None)    ref: core.codes.validate_uscc
 *   license_id_valid(type_code, issuer_uscc, serial, version, check)
 *                                    a valid GB/T 36904 identifier (True | None) ref: core.codes.LicenseId
 *
 * The build (setup.py) passes the SHA-256 of this file as LICLEDGER_NATIVE_SOURCE; core/native.py refuses a
 * module built from another version of this file (a stale in-place build) and falls back to the references.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#ifndef LICLEDGER_NATIVE_SOURCE
#define LICLEDGER_NATIVE_SOURCE "unknown"
#endif

#define HASH_SIZE 32
#define SMT_DEPTH 256
#define MAX_SAFE_INTEGER 9007199254740991LL /* 2**53 - 1, RFC 7493 §2.2 */
#define MAX_DEPTH 64                        /* core.canonical.MAX_DEPTH */

static PyObject *Decline; /* core._native.Decline: "run the reference" */

/* ---------------------------------------------------------------------------------------------------------------
 * SM3 (GB/T 32905-2016 §5)
 */

typedef struct {
    uint32_t v[8];
    uint8_t block[64];
    size_t used;      /* bytes in block */
    uint64_t total;   /* bytes hashed */
} sm3_ctx;

#define ROTL(x, n) ((uint32_t)(((x) << (n)) | ((x) >> (32 - (n))))) /* 0 < n < 32 */
#define P0(x) ((x) ^ ROTL((x), 9) ^ ROTL((x), 17))
#define P1(x) ((x) ^ ROTL((x), 15) ^ ROTL((x), 23))

static void sm3_init(sm3_ctx *c) {
    static const uint32_t iv[8] = {0x7380166fu, 0x4914b2b9u, 0x172442d7u, 0xda8a0600u,
                                   0xa96f30bcu, 0x163138aau, 0xe38dee4du, 0xb0fb0e4eu};
    memcpy(c->v, iv, sizeof iv);
    c->used = 0;
    c->total = 0;
}

/* The compression function (GB/T 32905-2016 §5.3), written as OpenSSL's crypto/sm3: the message expansion (§5.3.2)
 * runs in a window of 16 words kept in registers, each round renames the eight state words instead of moving
 * them (four names in turn), and the round constants T_j <<< (j mod 32) are literals. */
#define FF0(x, y, z) ((x) ^ (y) ^ (z))
#define FF1(x, y, z) (((x) & (y)) | (((x) | (y)) & (z)))
#define GG0(x, y, z) ((x) ^ (y) ^ (z))
#define GG1(x, y, z) ((((y) ^ (z)) & (x)) ^ (z))
#define EXPAND(W0, W7, W13, W3, W10) (P1((W0) ^ (W7) ^ ROTL((W13), 15)) ^ ROTL((W3), 7) ^ (W10))
#define SM3_RND(A, B, C, D, E, F, G, H, TJ, Wi, Wj, FF, GG)                                                     \
    do {                                                                                                       \
        const uint32_t a12 = ROTL(A, 12);                                                                      \
        const uint32_t ss1 = ROTL(a12 + E + (TJ), 7);                                                          \
        const uint32_t tt1 = FF(A, B, C) + D + (ss1 ^ a12) + (Wj);                                             \
        const uint32_t tt2 = GG(E, F, G) + H + ss1 + (Wi);                                                     \
        B = ROTL(B, 9);                                                                                        \
        D = tt1;                                                                                               \
        F = ROTL(F, 19);                                                                                       \
        H = P0(tt2);                                                                                           \
    } while (0)
#define R1(A, B, C, D, E, F, G, H, TJ, Wi, Wj) SM3_RND(A, B, C, D, E, F, G, H, TJ, Wi, Wj, FF0, GG0)
#define R2(A, B, C, D, E, F, G, H, TJ, Wi, Wj) SM3_RND(A, B, C, D, E, F, G, H, TJ, Wi, Wj, FF1, GG1)

static inline uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static void sm3_compress(uint32_t v[8], const uint8_t p[64]) {
    uint32_t A = v[0], B = v[1], C = v[2], D = v[3], E = v[4], F = v[5], G = v[6], H = v[7];
    uint32_t W00 = load_be32(p), W01 = load_be32(p + 4), W02 = load_be32(p + 8), W03 = load_be32(p + 12);
    uint32_t W04 = load_be32(p + 16), W05 = load_be32(p + 20), W06 = load_be32(p + 24), W07 = load_be32(p + 28);
    uint32_t W08 = load_be32(p + 32), W09 = load_be32(p + 36), W10 = load_be32(p + 40), W11 = load_be32(p + 44);
    uint32_t W12 = load_be32(p + 48), W13 = load_be32(p + 52), W14 = load_be32(p + 56), W15 = load_be32(p + 60);
    R1(A, B, C, D, E, F, G, H, 0x79CC4519u, W00, W00 ^ W04);
    W00 = EXPAND(W00, W07, W13, W03, W10);
    R1(D, A, B, C, H, E, F, G, 0xF3988A32u, W01, W01 ^ W05);
    W01 = EXPAND(W01, W08, W14, W04, W11);
    R1(C, D, A, B, G, H, E, F, 0xE7311465u, W02, W02 ^ W06);
    W02 = EXPAND(W02, W09, W15, W05, W12);
    R1(B, C, D, A, F, G, H, E, 0xCE6228CBu, W03, W03 ^ W07);
    W03 = EXPAND(W03, W10, W00, W06, W13);
    R1(A, B, C, D, E, F, G, H, 0x9CC45197u, W04, W04 ^ W08);
    W04 = EXPAND(W04, W11, W01, W07, W14);
    R1(D, A, B, C, H, E, F, G, 0x3988A32Fu, W05, W05 ^ W09);
    W05 = EXPAND(W05, W12, W02, W08, W15);
    R1(C, D, A, B, G, H, E, F, 0x7311465Eu, W06, W06 ^ W10);
    W06 = EXPAND(W06, W13, W03, W09, W00);
    R1(B, C, D, A, F, G, H, E, 0xE6228CBCu, W07, W07 ^ W11);
    W07 = EXPAND(W07, W14, W04, W10, W01);
    R1(A, B, C, D, E, F, G, H, 0xCC451979u, W08, W08 ^ W12);
    W08 = EXPAND(W08, W15, W05, W11, W02);
    R1(D, A, B, C, H, E, F, G, 0x988A32F3u, W09, W09 ^ W13);
    W09 = EXPAND(W09, W00, W06, W12, W03);
    R1(C, D, A, B, G, H, E, F, 0x311465E7u, W10, W10 ^ W14);
    W10 = EXPAND(W10, W01, W07, W13, W04);
    R1(B, C, D, A, F, G, H, E, 0x6228CBCEu, W11, W11 ^ W15);
    W11 = EXPAND(W11, W02, W08, W14, W05);
    R1(A, B, C, D, E, F, G, H, 0xC451979Cu, W12, W12 ^ W00);
    W12 = EXPAND(W12, W03, W09, W15, W06);
    R1(D, A, B, C, H, E, F, G, 0x88A32F39u, W13, W13 ^ W01);
    W13 = EXPAND(W13, W04, W10, W00, W07);
    R1(C, D, A, B, G, H, E, F, 0x11465E73u, W14, W14 ^ W02);
    W14 = EXPAND(W14, W05, W11, W01, W08);
    R1(B, C, D, A, F, G, H, E, 0x228CBCE6u, W15, W15 ^ W03);
    W15 = EXPAND(W15, W06, W12, W02, W09);
    R2(A, B, C, D, E, F, G, H, 0x9D8A7A87u, W00, W00 ^ W04);
    W00 = EXPAND(W00, W07, W13, W03, W10);
    R2(D, A, B, C, H, E, F, G, 0x3B14F50Fu, W01, W01 ^ W05);
    W01 = EXPAND(W01, W08, W14, W04, W11);
    R2(C, D, A, B, G, H, E, F, 0x7629EA1Eu, W02, W02 ^ W06);
    W02 = EXPAND(W02, W09, W15, W05, W12);
    R2(B, C, D, A, F, G, H, E, 0xEC53D43Cu, W03, W03 ^ W07);
    W03 = EXPAND(W03, W10, W00, W06, W13);
    R2(A, B, C, D, E, F, G, H, 0xD8A7A879u, W04, W04 ^ W08);
    W04 = EXPAND(W04, W11, W01, W07, W14);
    R2(D, A, B, C, H, E, F, G, 0xB14F50F3u, W05, W05 ^ W09);
    W05 = EXPAND(W05, W12, W02, W08, W15);
    R2(C, D, A, B, G, H, E, F, 0x629EA1E7u, W06, W06 ^ W10);
    W06 = EXPAND(W06, W13, W03, W09, W00);
    R2(B, C, D, A, F, G, H, E, 0xC53D43CEu, W07, W07 ^ W11);
    W07 = EXPAND(W07, W14, W04, W10, W01);
    R2(A, B, C, D, E, F, G, H, 0x8A7A879Du, W08, W08 ^ W12);
    W08 = EXPAND(W08, W15, W05, W11, W02);
    R2(D, A, B, C, H, E, F, G, 0x14F50F3Bu, W09, W09 ^ W13);
    W09 = EXPAND(W09, W00, W06, W12, W03);
    R2(C, D, A, B, G, H, E, F, 0x29EA1E76u, W10, W10 ^ W14);
    W10 = EXPAND(W10, W01, W07, W13, W04);
    R2(B, C, D, A, F, G, H, E, 0x53D43CECu, W11, W11 ^ W15);
    W11 = EXPAND(W11, W02, W08, W14, W05);
    R2(A, B, C, D, E, F, G, H, 0xA7A879D8u, W12, W12 ^ W00);
    W12 = EXPAND(W12, W03, W09, W15, W06);
    R2(D, A, B, C, H, E, F, G, 0x4F50F3B1u, W13, W13 ^ W01);
    W13 = EXPAND(W13, W04, W10, W00, W07);
    R2(C, D, A, B, G, H, E, F, 0x9EA1E762u, W14, W14 ^ W02);
    W14 = EXPAND(W14, W05, W11, W01, W08);
    R2(B, C, D, A, F, G, H, E, 0x3D43CEC5u, W15, W15 ^ W03);
    W15 = EXPAND(W15, W06, W12, W02, W09);
    R2(A, B, C, D, E, F, G, H, 0x7A879D8Au, W00, W00 ^ W04);
    W00 = EXPAND(W00, W07, W13, W03, W10);
    R2(D, A, B, C, H, E, F, G, 0xF50F3B14u, W01, W01 ^ W05);
    W01 = EXPAND(W01, W08, W14, W04, W11);
    R2(C, D, A, B, G, H, E, F, 0xEA1E7629u, W02, W02 ^ W06);
    W02 = EXPAND(W02, W09, W15, W05, W12);
    R2(B, C, D, A, F, G, H, E, 0xD43CEC53u, W03, W03 ^ W07);
    W03 = EXPAND(W03, W10, W00, W06, W13);
    R2(A, B, C, D, E, F, G, H, 0xA879D8A7u, W04, W04 ^ W08);
    W04 = EXPAND(W04, W11, W01, W07, W14);
    R2(D, A, B, C, H, E, F, G, 0x50F3B14Fu, W05, W05 ^ W09);
    W05 = EXPAND(W05, W12, W02, W08, W15);
    R2(C, D, A, B, G, H, E, F, 0xA1E7629Eu, W06, W06 ^ W10);
    W06 = EXPAND(W06, W13, W03, W09, W00);
    R2(B, C, D, A, F, G, H, E, 0x43CEC53Du, W07, W07 ^ W11);
    W07 = EXPAND(W07, W14, W04, W10, W01);
    R2(A, B, C, D, E, F, G, H, 0x879D8A7Au, W08, W08 ^ W12);
    W08 = EXPAND(W08, W15, W05, W11, W02);
    R2(D, A, B, C, H, E, F, G, 0x0F3B14F5u, W09, W09 ^ W13);
    W09 = EXPAND(W09, W00, W06, W12, W03);
    R2(C, D, A, B, G, H, E, F, 0x1E7629EAu, W10, W10 ^ W14);
    W10 = EXPAND(W10, W01, W07, W13, W04);
    R2(B, C, D, A, F, G, H, E, 0x3CEC53D4u, W11, W11 ^ W15);
    W11 = EXPAND(W11, W02, W08, W14, W05);
    R2(A, B, C, D, E, F, G, H, 0x79D8A7A8u, W12, W12 ^ W00);
    W12 = EXPAND(W12, W03, W09, W15, W06);
    R2(D, A, B, C, H, E, F, G, 0xF3B14F50u, W13, W13 ^ W01);
    W13 = EXPAND(W13, W04, W10, W00, W07);
    R2(C, D, A, B, G, H, E, F, 0xE7629EA1u, W14, W14 ^ W02);
    W14 = EXPAND(W14, W05, W11, W01, W08);
    R2(B, C, D, A, F, G, H, E, 0xCEC53D43u, W15, W15 ^ W03);
    W15 = EXPAND(W15, W06, W12, W02, W09);
    R2(A, B, C, D, E, F, G, H, 0x9D8A7A87u, W00, W00 ^ W04);
    W00 = EXPAND(W00, W07, W13, W03, W10);
    R2(D, A, B, C, H, E, F, G, 0x3B14F50Fu, W01, W01 ^ W05);
    W01 = EXPAND(W01, W08, W14, W04, W11);
    R2(C, D, A, B, G, H, E, F, 0x7629EA1Eu, W02, W02 ^ W06);
    W02 = EXPAND(W02, W09, W15, W05, W12);
    R2(B, C, D, A, F, G, H, E, 0xEC53D43Cu, W03, W03 ^ W07);
    W03 = EXPAND(W03, W10, W00, W06, W13);
    R2(A, B, C, D, E, F, G, H, 0xD8A7A879u, W04, W04 ^ W08);
    R2(D, A, B, C, H, E, F, G, 0xB14F50F3u, W05, W05 ^ W09);
    R2(C, D, A, B, G, H, E, F, 0x629EA1E7u, W06, W06 ^ W10);
    R2(B, C, D, A, F, G, H, E, 0xC53D43CEu, W07, W07 ^ W11);
    R2(A, B, C, D, E, F, G, H, 0x8A7A879Du, W08, W08 ^ W12);
    R2(D, A, B, C, H, E, F, G, 0x14F50F3Bu, W09, W09 ^ W13);
    R2(C, D, A, B, G, H, E, F, 0x29EA1E76u, W10, W10 ^ W14);
    R2(B, C, D, A, F, G, H, E, 0x53D43CECu, W11, W11 ^ W15);
    R2(A, B, C, D, E, F, G, H, 0xA7A879D8u, W12, W12 ^ W00);
    R2(D, A, B, C, H, E, F, G, 0x4F50F3B1u, W13, W13 ^ W01);
    R2(C, D, A, B, G, H, E, F, 0x9EA1E762u, W14, W14 ^ W02);
    R2(B, C, D, A, F, G, H, E, 0x3D43CEC5u, W15, W15 ^ W03);
    v[0] ^= A;
    v[1] ^= B;
    v[2] ^= C;
    v[3] ^= D;
    v[4] ^= E;
    v[5] ^= F;
    v[6] ^= G;
    v[7] ^= H;
}

static void sm3_update(sm3_ctx *c, const uint8_t *data, size_t len) {
    c->total += len;
    if (c->used) {
        size_t take = 64 - c->used < len ? 64 - c->used : len;
        memcpy(c->block + c->used, data, take);
        c->used += take;
        data += take;
        len -= take;
        if (c->used < 64) return;
        sm3_compress(c->v, c->block);
        c->used = 0;
    }
    while (len >= 64) {
        sm3_compress(c->v, data);
        data += 64;
        len -= 64;
    }
    if (len) {
        memcpy(c->block, data, len);
        c->used = len;
    }
}

static void sm3_final(sm3_ctx *c, uint8_t out[HASH_SIZE]) {
    uint64_t bits = c->total * 8;
    c->block[c->used++] = 0x80;
    if (c->used > 56) {
        memset(c->block + c->used, 0, 64 - c->used);
        sm3_compress(c->v, c->block);
        c->used = 0;
    }
    memset(c->block + c->used, 0, 56 - c->used);
    for (int i = 0; i < 8; i++) c->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    sm3_compress(c->v, c->block);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->v[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->v[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->v[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->v[i];
    }
}

/* H(prefix || a || b) for 32-byte a and b (RFC 9162 node hash; the sparse tree's leaf hash with key, value) */
static void sm3_pair(uint8_t prefix, const uint8_t *a, const uint8_t *b, uint8_t out[HASH_SIZE]) {
    sm3_ctx c;
    sm3_init(&c);
    sm3_update(&c, &prefix, 1);
    sm3_update(&c, a, HASH_SIZE);
    sm3_update(&c, b, HASH_SIZE);
    sm3_final(&c, out);
}

static PyObject *native_sm3(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    uint8_t out[HASH_SIZE];
    sm3_ctx c;
    sm3_init(&c);
    if (view.len > 4096) {
        Py_BEGIN_ALLOW_THREADS sm3_update(&c, view.buf, (size_t)view.len);
        Py_END_ALLOW_THREADS
    } else {
        sm3_update(&c, view.buf, (size_t)view.len);
    }
    sm3_final(&c, out);
    PyBuffer_Release(&view);
    return PyBytes_FromStringAndSize((const char *)out, HASH_SIZE);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Merkle proofs
 */

/* A 32-byte bytes object's data, or NULL (no exception set) for anything else. */
static const uint8_t *hash_of(PyObject *o) {
    if (!PyBytes_CheckExact(o) || PyBytes_GET_SIZE(o) != HASH_SIZE) return NULL;
    return (const uint8_t *)PyBytes_AS_STRING(o);
}

/* A non-negative exact int below 2**63, or -1 (no exception set). */
static long long index_of(PyObject *o) {
    if (!PyLong_CheckExact(o)) return -1;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || v < 0) {
        PyErr_Clear();
        return -1;
    }
    return v;
}

static int bit_length(uint64_t x) { return x ? 64 - __builtin_clzll(x) : 0; }

/* inclusion_root(leaf_index, tree_size, leaf_hash, proof) -> root | None: RFC 9162 §2.1.3.2 (transparency-dev
 * merkle proof/verify.go: decompInclProof, chainInner, chainBorderRight) with SM3 and the RFC's 0x01 node prefix.
 * None for anything the reference would refuse or that is not plainly shaped (it then runs and says why). */
static PyObject *native_inclusion_root(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "inclusion_root(leaf_index, tree_size, leaf_hash, proof)");
        return NULL;
    }
    long long index = index_of(args[0]), size = index_of(args[1]);
    const uint8_t *leaf = hash_of(args[2]);
    PyObject *proof = args[3];
    if (index < 0 || size < 0 || index >= size || leaf == NULL || !(PyTuple_CheckExact(proof) || PyList_CheckExact(proof)))
        Py_RETURN_NONE;
    uint64_t i = (uint64_t)index, n = (uint64_t)size;
    int inner = bit_length(i ^ (n - 1));
    int border = __builtin_popcountll(inner >= 64 ? 0 : i >> inner);
    Py_ssize_t count = PySequence_Fast_GET_SIZE(proof);
    if (count != inner + border) Py_RETURN_NONE;
    PyObject **items = PySequence_Fast_ITEMS(proof);
    uint8_t x[HASH_SIZE], next[HASH_SIZE];
    memcpy(x, leaf, HASH_SIZE);
    for (Py_ssize_t k = 0; k < count; k++) {
        const uint8_t *p = hash_of(items[k]);
        if (p == NULL) Py_RETURN_NONE;
        if (k < inner && ((i >> k) & 1) == 0)
            sm3_pair(0x01, x, p, next);
        else
            sm3_pair(0x01, p, x, next);
        memcpy(x, next, HASH_SIZE);
    }
    return PyBytes_FromStringAndSize((const char *)x, HASH_SIZE);
}

static uint8_t smt_defaults[SMT_DEPTH + 1][HASH_SIZE]; /* core.smt.default_hashes(SM3) */

static void smt_init_defaults(void) {
    memset(smt_defaults[SMT_DEPTH], 0, HASH_SIZE);
    for (int d = SMT_DEPTH - 1; d >= 0; d--) sm3_pair(0x01, smt_defaults[d + 1], smt_defaults[d + 1], smt_defaults[d]);
}

static int key_bit(const uint8_t *key, int depth) { /* the branch taken below depth (bit ``depth``, MSB first) */
    return (key[depth >> 3] >> (7 - (depth & 7))) & 1;
}

/* x at ``depth`` up to ``stop`` through default siblings (core.smt._up_defaults) */
static void smt_up_defaults(uint8_t x[HASH_SIZE], const uint8_t *key, int depth, int stop) {
    uint8_t next[HASH_SIZE];
    while (depth > stop) {
        if (memcmp(x, smt_defaults[depth], HASH_SIZE) == 0) {
            memcpy(x, smt_defaults[stop], HASH_SIZE);
            return;
        }
        if (key_bit(key, depth - 1))
            sm3_pair(0x01, smt_defaults[depth], x, next);
        else
            sm3_pair(0x01, x, smt_defaults[depth], next);
        memcpy(x, next, HASH_SIZE);
        depth -= 1;
    }
}

/* sparse_root(key, value_hash | None, depths, siblings) -> root | None: the root a compressed sparse Merkle proof
 * (core.smt.SparseProof: ascending depths 1..256, one sibling each) leads to from key -> value_hash. None when the
 * shapes are not what SparseProof guarantees or a listed sibling is a default hash (the reference refuses those). */
static PyObject *native_sparse_root(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "sparse_root(key, value_hash, depths, siblings)");
        return NULL;
    }
    const uint8_t *key = hash_of(args[0]);
    PyObject *depths = args[2], *siblings = args[3];
    if (key == NULL || !PyTuple_CheckExact(depths) || !PyTuple_CheckExact(siblings) ||
        PyTuple_GET_SIZE(depths) != PyTuple_GET_SIZE(siblings))
        Py_RETURN_NONE;
    uint8_t x[HASH_SIZE], next[HASH_SIZE];
    if (args[1] == Py_None) {
        memcpy(x, smt_defaults[SMT_DEPTH], HASH_SIZE);
    } else {
        const uint8_t *value = hash_of(args[1]);
        if (value == NULL) Py_RETURN_NONE;
        sm3_pair(0x00, key, value, x);
    }
    Py_ssize_t n = PyTuple_GET_SIZE(depths);
    int depth = SMT_DEPTH, previous = SMT_DEPTH + 1;
    for (Py_ssize_t k = n - 1; k >= 0; k--) {
        PyObject *d = PyTuple_GET_ITEM(depths, k);
        long long listed = index_of(d);
        const uint8_t *sibling = hash_of(PyTuple_GET_ITEM(siblings, k));
        if (listed < 1 || listed > SMT_DEPTH || listed >= previous || sibling == NULL) Py_RETURN_NONE;
        if (memcmp(sibling, smt_defaults[listed], HASH_SIZE) == 0) Py_RETURN_NONE;
        previous = (int)listed;
        smt_up_defaults(x, key, depth, (int)listed);
        if (key_bit(key, (int)listed - 1))
            sm3_pair(0x01, sibling, x, next);
        else
            sm3_pair(0x01, x, sibling, next);
        memcpy(x, next, HASH_SIZE);
        depth = (int)listed - 1;
    }
    smt_up_defaults(x, key, depth, 0);
    return PyBytes_FromStringAndSize((const char *)x, HASH_SIZE);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Hex
 */

static int hex_value(unsigned int c) { /* lower-case only, as the bundle format says */
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    return -1;
}

/* 64 lower-case hex digits -> new 32-byte bytes, or NULL without an exception */
static PyObject *hash_from_hex(PyObject *s) {
    if (!PyUnicode_CheckExact(s) || PyUnicode_GET_LENGTH(s) != 2 * HASH_SIZE || !PyUnicode_IS_ASCII(s)) return NULL;
    const unsigned char *p = PyUnicode_1BYTE_DATA(s);
    uint8_t out[HASH_SIZE];
    for (int k = 0; k < HASH_SIZE; k++) {
        int hi = hex_value(p[2 * k]), lo = hex_value(p[2 * k + 1]);
        if (hi < 0 || lo < 0) return NULL;
        out[k] = (uint8_t)(hi << 4 | lo);
    }
    return PyBytes_FromStringAndSize((const char *)out, HASH_SIZE);
}

/* hashes_from_hex(list) -> tuple of 32-byte bytes | None */
static PyObject *native_hashes_from_hex(PyObject *self, PyObject *arg) {
    if (!PyList_CheckExact(arg)) Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(arg);
    PyObject *out = PyTuple_New(n);
    if (out == NULL) return NULL;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *h = hash_from_hex(PyList_GET_ITEM(arg, k));
        if (h == NULL) {
            Py_DECREF(out);
            if (PyErr_Occurred()) return NULL;
            Py_RETURN_NONE;
        }
        PyTuple_SET_ITEM(out, k, h);
    }
    return out;
}

/* hash_from_hex(str) -> 32-byte bytes | None */
static PyObject *native_hash_from_hex(PyObject *self, PyObject *arg) {
    PyObject *h = hash_from_hex(arg);
    if (h == NULL && !PyErr_Occurred()) Py_RETURN_NONE;
    return h;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Strict JSON decoding (core.canonical.decode): RFC 8259 grammar; integers only, within the I-JSON safe range; no
 * duplicate object keys; no lone surrogates (escaped or not); nesting at most MAX_DEPTH. Anything else declines.
 */

typedef struct {
    const uint8_t *p, *end;
    PyObject *memo; /* dict: key strings seen, shared (what json's scanner does) */
    uint8_t *buf;   /* scratch for strings with escapes */
    size_t cap;
} parser;

static PyObject *decline(void) {
    PyErr_SetNone(Decline);
    return NULL;
}

static void skip_ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static int parse_hex4(const uint8_t *p, unsigned int *out) {
    unsigned int v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned int c = p[k];
        int d;
        if (c >= '0' && c <= '9') d = (int)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (int)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (int)(c - 'A' + 10);
        else return -1;
        v = v << 4 | (unsigned int)d;
    }
    *out = v;
    return 0;
}

static int ensure(parser *ps, size_t need) {
    if (need <= ps->cap) return 0;
    size_t cap = ps->cap ? ps->cap : 256;
    while (cap < need) cap *= 2;
    uint8_t *b = PyMem_Realloc(ps->buf, cap);
    if (b == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    ps->buf = b;
    ps->cap = cap;
    return 0;
}

static PyObject *ascii_string(const uint8_t *s, Py_ssize_t n);

/* at the opening quote; returns a new str */
static PyObject *parse_string(parser *ps) {
    const uint8_t *start = ++ps->p, *q = start;
    int ascii = 1;
    while (q < ps->end && *q != '"' && *q != '\\') {
        if (*q < 0x20) return decline();
        if (*q >= 0x80) ascii = 0;
        q++;
    }
    if (q >= ps->end) return decline();
    if (*q == '"') { /* no escapes: the common case */
        ps->p = q + 1;
        if (ascii) return ascii_string(start, q - start);
        PyObject *s = PyUnicode_DecodeUTF8((const char *)start, q - start, "strict");
        if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            PyErr_Clear();
            return decline();
        }
        return s;
    }
    /* escapes: unescape into the scratch buffer as UTF-8 (an escape is never longer than what it stands for) */
    size_t len = 0;
    if (ensure(ps, (size_t)(ps->end - start)) < 0) return NULL;
    memcpy(ps->buf, start, (size_t)(q - start));
    len = (size_t)(q - start);
    while (1) {
        if (q >= ps->end) return decline();
        uint8_t c = *q;
        if (c == '"') break;
        if (c < 0x20) return decline();
        if (c >= 0x80) ascii = 0;
        if (c != '\\') {
            ps->buf[len++] = c;
            q++;
            continue;
        }
        if (q + 1 >= ps->end) return decline();
        uint8_t e = q[1];
        q += 2;
        switch (e) {
            case '"': ps->buf[len++] = '"'; break;
            case '\\': ps->buf[len++] = '\\'; break;
            case '/': ps->buf[len++] = '/'; break;
            case 'b': ps->buf[len++] = '\b'; break;
            case 'f': ps->buf[len++] = '\f'; break;
            case 'n': ps->buf[len++] = '\n'; break;
            case 'r': ps->buf[len++] = '\r'; break;
            case 't': ps->buf[len++] = '\t'; break;
            case 'u': {
                unsigned int u, lo;
                if (ps->end - q < 4 || parse_hex4(q, &u) < 0) return decline();
                q += 4;
                if (u >= 0xDC00 && u <= 0xDFFF) return decline(); /* lone low surrogate */
                if (u >= 0xD800 && u <= 0xDBFF) {
                    if (ps->end - q < 6 || q[0] != '\\' || q[1] != 'u' || parse_hex4(q + 2, &lo) < 0 || lo < 0xDC00 ||
                        lo > 0xDFFF)
                        return decline(); /* lone high surrogate */
                    q += 6;
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                }
                if (u >= 0x80) ascii = 0;
                if (u < 0x80) {
                    ps->buf[len++] = (uint8_t)u;
                } else if (u < 0x800) {
                    ps->buf[len++] = (uint8_t)(0xC0 | u >> 6);
                    ps->buf[len++] = (uint8_t)(0x80 | (u & 0x3F));
                } else if (u < 0x10000) {
                    ps->buf[len++] = (uint8_t)(0xE0 | u >> 12);
                    ps->buf[len++] = (uint8_t)(0x80 | ((u >> 6) & 0x3F));
                    ps->buf[len++] = (uint8_t)(0x80 | (u & 0x3F));
                } else {
                    ps->buf[len++] = (uint8_t)(0xF0 | u >> 18);
                    ps->buf[len++] = (uint8_t)(0x80 | ((u >> 12) & 0x3F));
                    ps->buf[len++] = (uint8_t)(0x80 | ((u >> 6) & 0x3F));
                    ps->buf[len++] = (uint8_t)(0x80 | (u & 0x3F));
                }
                break;
            }
            default: return decline();
        }
    }
    ps->p = q + 1;
    if (ascii) return ascii_string(ps->buf, (Py_ssize_t)len);
    PyObject *s = PyUnicode_DecodeUTF8((const char *)ps->buf, (Py_ssize_t)len, "strict");
    if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        return decline();
    }
    return s;
}

static PyObject *parse_value(parser *ps, int depth);

static PyObject *ascii_string(const uint8_t *s, Py_ssize_t n) {
    PyObject *u = PyUnicode_New(n, 127);
    if (u != NULL) memcpy(PyUnicode_1BYTE_DATA(u), s, (size_t)n);
    return u;
}

static PyObject *parse_number(parser *ps) {
    const uint8_t *q = ps->p;
    int negative = 0;
    if (*q == '-') {
        negative = 1;
        q++;
    }
    const uint8_t *digits = q;
    while (q < ps->end && *q >= '0' && *q <= '9') q++;
    Py_ssize_t n = q - digits;
    if (n == 0 || (n > 1 && digits[0] == '0')) return decline();
    if (q < ps->end && (*q == '.' || *q == 'e' || *q == 'E')) return decline(); /* floats are refused */
    if (n > 16) return decline();                                               /* beyond 2**53 - 1 */
    long long v = 0;
    for (Py_ssize_t k = 0; k < n; k++) v = v * 10 + (digits[k] - '0');
    if (v > MAX_SAFE_INTEGER) return decline();
    ps->p = q;
    return PyLong_FromLongLong(negative ? -v : v);
}

static PyObject *parse_object(parser *ps, int depth) {
    PyObject *obj = PyDict_New();
    if (obj == NULL) return NULL;
    ps->p++; /* { */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return obj;
    }
    while (1) {
        if (ps->p >= ps->end || *ps->p != '"') goto declined;
        PyObject *key = parse_string(ps);
        if (key == NULL) goto fail;
        PyObject *memoised = PyDict_SetDefault(ps->memo, key, key);
        if (memoised == NULL) {
            Py_DECREF(key);
            goto fail;
        }
        Py_INCREF(memoised);
        Py_DECREF(key);
        key = memoised;
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
            Py_DECREF(key);
            goto declined;
        }
        ps->p++;
        skip_ws(ps);
        PyObject *value = parse_value(ps, depth + 1);
        if (value == NULL) {
            Py_DECREF(key);
            goto fail;
        }
        /* one lookup; the key was new exactly when the dict grew (identity of the values cannot tell: small ints
         * and interned strings are shared) */
        Py_ssize_t before = PyDict_GET_SIZE(obj);
        PyObject *stored = PyDict_SetDefault(obj, key, value); /* borrowed */
        int duplicate = stored != NULL && PyDict_GET_SIZE(obj) == before;
        Py_DECREF(key);
        Py_DECREF(value);
        if (stored == NULL) goto fail;
        if (duplicate) goto declined;
        skip_ws(ps);
        if (ps->p >= ps->end) goto declined;
        if (*ps->p == ',') {
            ps->p++;
            skip_ws(ps);
            continue;
        }
        if (*ps->p == '}') {
            ps->p++;
            return obj;
        }
        goto declined;
    }
declined:
    Py_DECREF(obj);
    return decline();
fail:
    Py_DECREF(obj);
    return NULL;
}

static PyObject *parse_array(parser *ps, int depth) {
    PyObject *list = PyList_New(0);
    if (list == NULL) return NULL;
    ps->p++; /* [ */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return list;
    }
    while (1) {
        PyObject *value = parse_value(ps, depth + 1);
        if (value == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        int rc = PyList_Append(list, value);
        Py_DECREF(value);
        if (rc < 0) {
            Py_DECREF(list);
            return NULL;
        }
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            skip_ws(ps);
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            return list;
        }
        Py_DECREF(list);
        return decline();
    }
}

static int literal(parser *ps, const char *word, size_t n) {
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return 0;
    ps->p += n;
    return 1;
}

static PyObject *parse_value(parser *ps, int depth) {
    if (ps->p >= ps->end) return decline();
    switch (*ps->p) {
        case '{':
            if (depth > MAX_DEPTH) return decline();
            return parse_object(ps, depth);
        case '[':
            if (depth > MAX_DEPTH) return decline();
            return parse_array(ps, depth);
        case '"': return parse_string(ps);
        case 't':
            if (literal(ps, "true", 4)) Py_RETURN_TRUE;
            return decline();
        case 'f':
            if (literal(ps, "false", 5)) Py_RETURN_FALSE;
            return decline();
        case 'n':
            if (literal(ps, "null", 4)) Py_RETURN_NONE;
            return decline();
        default:
            if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) return parse_number(ps);
            return decline();
    }
}

/* decode(bytes) -> value; raises Decline for anything the fast path does not accept */
static PyObject *native_decode(PyObject *self, PyObject *arg) {
    if (!PyBytes_CheckExact(arg) || PyBytes_GET_SIZE(arg) > 64 * 1024 * 1024) return decline();
    parser ps;
    ps.p = (const uint8_t *)PyBytes_AS_STRING(arg);
    ps.end = ps.p + PyBytes_GET_SIZE(arg);
    ps.buf = NULL;
    ps.cap = 0;
    ps.memo = PyDict_New();
    if (ps.memo == NULL) return NULL;
    skip_ws(&ps);
    PyObject *value = parse_value(&ps, 0);
    if (value != NULL) {
        skip_ws(&ps);
        if (ps.p != ps.end) {
            Py_CLEAR(value);
            decline();
        }
    }
    PyMem_Free(ps.buf);
    Py_DECREF(ps.memo);
    return value;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Canonical encoding (core.canonical.encode, RFC 8785 restricted to licledger's values): exact dict (str keys in
 * the Basic Multilingual Plane, where code-point order is UTF-16 order, RFC 8785 §3.2.3), list, tuple, str, int in
 * the safe range, bool, None, nested at most MAX_DEPTH. Strings are escaped as JSON.stringify does (§3.2.2.2).
 * Anything else (floats, big integers, astral keys, lone surrogates, other types) returns None for the reference.
 */

typedef struct {
    char *data;
    size_t len, cap;
} out_buf;

static int out_reserve(out_buf *o, size_t extra) {
    if (o->len + extra <= o->cap) return 0;
    size_t cap = o->cap ? o->cap : 1024;
    while (cap < o->len + extra) cap *= 2;
    char *d = PyMem_Realloc(o->data, cap);
    if (d == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    o->data = d;
    o->cap = cap;
    return 0;
}

static int out_put(out_buf *o, const char *s, size_t n) {
    if (out_reserve(o, n) < 0) return -1;
    memcpy(o->data + o->len, s, n);
    o->len += n;
    return 0;
}

enum { ENC_OK = 0, ENC_ERROR = -1, ENC_DECLINE = 1 };

static int encode_string(out_buf *o, PyObject *s) {
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n); /* fails on lone surrogates */
    if (u == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            PyErr_Clear();
            return ENC_DECLINE;
        }
        return ENC_ERROR;
    }
    if (out_reserve(o, (size_t)n * 6 + 2) < 0) return ENC_ERROR;
    char *d = o->data + o->len;
    *d++ = '"';
    for (Py_ssize_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)u[k];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *d++ = (char)c;
            continue;
        }
        *d++ = '\\';
        switch (c) {
            case '"': *d++ = '"'; break;
            case '\\': *d++ = '\\'; break;
            case '\b': *d++ = 'b'; break;
            case '\f': *d++ = 'f'; break;
            case '\n': *d++ = 'n'; break;
            case '\r': *d++ = 'r'; break;
            case '\t': *d++ = 't'; break;
            default:
                *d++ = 'u';
                *d++ = '0';
                *d++ = '0';
                *d++ = "0123456789abcdef"[c >> 4];
                *d++ = "0123456789abcdef"[c & 15];
        }
    }
    *d++ = '"';
    o->len = (size_t)(d - o->data);
    return ENC_OK;
}

static int encode_value(out_buf *o, PyObject *v, int depth);

static int encode_dict(out_buf *o, PyObject *v, int depth) {
    Py_ssize_t n = PyDict_GET_SIZE(v);
    if (depth > MAX_DEPTH || (n && depth == MAX_DEPTH)) return ENC_DECLINE; /* its items would be too deep */
    if (n == 0) return out_put(o, "{}", 2) < 0 ? ENC_ERROR : ENC_OK;
    PyObject *keys = PyDict_Keys(v);
    if (keys == NULL) return ENC_ERROR;
    int rc = ENC_OK;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *key = PyList_GET_ITEM(keys, k);
        if (!PyUnicode_CheckExact(key) || PyUnicode_KIND(key) == PyUnicode_4BYTE_KIND) {
            rc = ENC_DECLINE;
            goto done;
        }
    }
    if (PyList_Sort(keys) < 0) {
        rc = ENC_ERROR;
        goto done;
    }
    if (out_put(o, "{", 1) < 0) {
        rc = ENC_ERROR;
        goto done;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *key = PyList_GET_ITEM(keys, k);
        if (k && out_put(o, ",", 1) < 0) {
            rc = ENC_ERROR;
            goto done;
        }
        if ((rc = encode_string(o, key)) != ENC_OK) goto done;
        if (out_put(o, ":", 1) < 0) {
            rc = ENC_ERROR;
            goto done;
        }
        PyObject *item = PyDict_GetItemWithError(v, key); /* borrowed */
        if (item == NULL) {
            rc = PyErr_Occurred() ? ENC_ERROR : ENC_DECLINE; /* changed under us */
            goto done;
        }
        Py_INCREF(item);
        rc = encode_value(o, item, depth + 1);
        Py_DECREF(item);
        if (rc != ENC_OK) goto done;
    }
    if (PyDict_GET_SIZE(v) != n) {
        rc = ENC_DECLINE;
        goto done;
    }
    rc = out_put(o, "}", 1) < 0 ? ENC_ERROR : ENC_OK;
done:
    Py_DECREF(keys);
    return rc;
}

static int encode_sequence(out_buf *o, PyObject *v, int depth) {
    PyObject *fast = PySequence_Fast(v, "not a sequence"); /* a list or tuple: itself, new reference */
    if (fast == NULL) return ENC_ERROR;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    int rc = ENC_OK;
    if (depth > MAX_DEPTH || (n && depth == MAX_DEPTH)) {
        rc = ENC_DECLINE;
        goto done;
    }
    if (out_put(o, "[", 1) < 0) {
        rc = ENC_ERROR;
        goto done;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        if (PySequence_Fast_GET_SIZE(fast) != n) { /* a list changed under us */
            rc = ENC_DECLINE;
            goto done;
        }
        if (k && out_put(o, ",", 1) < 0) {
            rc = ENC_ERROR;
            goto done;
        }
        PyObject *item = PySequence_Fast_GET_ITEM(fast, k);
        Py_INCREF(item);
        rc = encode_value(o, item, depth + 1);
        Py_DECREF(item);
        if (rc != ENC_OK) goto done;
    }
    rc = out_put(o, "]", 1) < 0 ? ENC_ERROR : ENC_OK;
done:
    Py_DECREF(fast);
    return rc;
}

static int encode_value(out_buf *o, PyObject *v, int depth) {
    if (v == Py_None) return out_put(o, "null", 4) < 0 ? ENC_ERROR : ENC_OK;
    if (v == Py_True) return out_put(o, "true", 4) < 0 ? ENC_ERROR : ENC_OK;
    if (v == Py_False) return out_put(o, "false", 5) < 0 ? ENC_ERROR : ENC_OK;
    if (PyUnicode_CheckExact(v)) return encode_string(o, v);
    if (PyLong_CheckExact(v)) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (x == -1 && PyErr_Occurred()) return ENC_ERROR;
        if (overflow || x > MAX_SAFE_INTEGER || x < -MAX_SAFE_INTEGER) return ENC_DECLINE;
        char digits[32];
        int n = snprintf(digits, sizeof digits, "%lld", x);
        return out_put(o, digits, (size_t)n) < 0 ? ENC_ERROR : ENC_OK;
    }
    if (PyDict_CheckExact(v)) {
        if (Py_EnterRecursiveCall(" in canonical encode")) return ENC_ERROR;
        int rc = encode_dict(o, v, depth);
        Py_LeaveRecursiveCall();
        return rc;
    }
    if (PyList_CheckExact(v) || PyTuple_CheckExact(v)) {
        if (Py_EnterRecursiveCall(" in canonical encode")) return ENC_ERROR;
        int rc = encode_sequence(o, v, depth);
        Py_LeaveRecursiveCall();
        return rc;
    }
    return ENC_DECLINE;
}

/* encode(value) -> bytes | None */
static PyObject *native_encode(PyObject *self, PyObject *arg) {
    out_buf o = {NULL, 0, 0};
    int rc = encode_value(&o, arg, 0);
    PyObject *result = NULL;
    if (rc == ENC_OK)
        result = PyBytes_FromStringAndSize(o.data ? o.data : "", (Py_ssize_t)o.len);
    else if (rc == ENC_DECLINE)
        result = Py_NewRef(Py_None);
    PyMem_Free(o.data);
    return result;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Check characters (core.codes)
 */

/* The ASCII text of an exact str, or NULL (no exception) */
static const unsigned char *ascii_of(PyObject *s, Py_ssize_t *n) {
    if (!PyUnicode_CheckExact(s) || !PyUnicode_IS_ASCII(s)) return NULL;
    *n = PyUnicode_GET_LENGTH(s);
    return PyUnicode_1BYTE_DATA(s);
}

static const char USCC_CHARSET[] = "0123456789ABCDEFGHJKLMNPQRTUWXY"; /* GB 32100-2015 table 2 */
static const int USCC_WEIGHTS[17] = {1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28};
static signed char uscc_value[128];

/* The GB 32100-2015 check character of 17 ASCII characters of the code set, or 0 if one is not in it; with
 * ``division_digits``, also 0 unless positions 3-8 (the registration authority's division code) are digits. */
static char uscc_check_of(const unsigned char *s, int division_digits) {
    int total = 0;
    for (int k = 0; k < 17; k++) {
        int v = uscc_value[s[k]]; /* s is ASCII: s[k] < 128 */
        if (v < 0 || (division_digits && k >= 2 && k < 8 && v > 9)) return 0;
        total += v * USCC_WEIGHTS[k];
    }
    return USCC_CHARSET[(31 - total % 31) % 31];
}

static PyObject *native_uscc_check_char(PyObject *self, PyObject *arg) {
    Py_ssize_t n;
    const unsigned char *s = ascii_of(arg, &n);
    char check = s != NULL && n == 17 ? uscc_check_of(s, 0) : 0;
    if (!check) Py_RETURN_NONE;
    return PyUnicode_FromStringAndSize(&check, 1);
}

/* GB 32100-2015: 18 characters of the code set (no I, O, S, V, Z), six digits at positions 3-8 (the registration
 * authority's division code), and the check character. */
static int uscc_ok(const unsigned char *s, Py_ssize_t n) {
    if (n != 18) return 0;
    char check = uscc_check_of(s, 1);
    return check && s[17] == (unsigned char)check;
}

static PyObject *native_uscc_valid(PyObject *self, PyObject *arg) {
    Py_ssize_t n;
    const unsigned char *s = ascii_of(arg, &n);
    if (s != NULL && uscc_ok(s, n)) Py_RETURN_TRUE;
    Py_RETURN_NONE;
}

static int alnum36(unsigned char c) { /* 0-9 A-Z -> 0..35, else -1 */
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
    return -1;
}

static int mod37_36_step(int p, int a) {
    int t = (p + a) % 36;
    return (t ? t : 36) * 2 % 37;
}

/* license_id_valid(type_code, issuer_uscc, serial, version, check) -> True | None: every check of
 * core.codes.LicenseId.__post_init__ (GB/T 36904-2018 with ISO/IEC 7064 MOD 37,36) */
static PyObject *native_license_id_valid(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "license_id_valid(type_code, issuer_uscc, serial, version, check)");
        return NULL;
    }
    Py_ssize_t nt, ni, ns, nc;
    const unsigned char *t = ascii_of(args[0], &nt), *iss = ascii_of(args[1], &ni), *ser = ascii_of(args[2], &ns);
    const unsigned char *chk = ascii_of(args[4], &nc);
    long long version = index_of(args[3]);
    if (t == NULL || iss == NULL || ser == NULL || chk == NULL || nc != 1 || version < 1 || version > 999)
        Py_RETURN_NONE;
    /* type code: a definer's USCC and three digits; issuer: a USCC; serial: [0-9A-Z]{1,64} */
    if (nt != 21 || !uscc_ok(t, 18) || !uscc_ok(iss, ni) || ns < 1 || ns > 64) Py_RETURN_NONE;
    for (int k = 18; k < 21; k++)
        if (t[k] < '0' || t[k] > '9') Py_RETURN_NONE;
    int p = 36;
    for (Py_ssize_t k = 0; k < nt; k++) p = mod37_36_step(p, alnum36(t[k]));
    for (Py_ssize_t k = 0; k < ni; k++) p = mod37_36_step(p, alnum36(iss[k]));
    for (Py_ssize_t k = 0; k < ns; k++) {
        int a = alnum36(ser[k]);
        if (a < 0) Py_RETURN_NONE;
        p = mod37_36_step(p, a);
    }
    int digits[3] = {(int)(version / 100), (int)(version / 10 % 10), (int)(version % 10)};
    for (int k = 0; k < 3; k++) p = mod37_36_step(p, digits[k]);
    if (chk[0] != (unsigned char)"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[(37 - p) % 36]) Py_RETURN_NONE;
    Py_RETURN_TRUE;
}

static PyObject *native_mod11_2(PyObject *self, PyObject *arg) {
    Py_ssize_t n;
    const unsigned char *s = ascii_of(arg, &n);
    if (s == NULL) Py_RETURN_NONE;
    int total = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (s[k] < '0' || s[k] > '9') Py_RETURN_NONE;
        total = (total + (s[k] - '0')) * 2 % 11;
    }
    int value = (12 - total) % 11;
    return PyUnicode_FromStringAndSize(value == 10 ? "X" : &"0123456789"[value], 1);
}

static PyObject *native_mod37_36_state(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "mod37_36_state(text, state)");
        return NULL;
    }
    Py_ssize_t n;
    const unsigned char *s = ascii_of(args[0], &n);
    long long p = index_of(args[1]);
    if (s == NULL || p < 0 || p > 36) Py_RETURN_NONE;
    int state = (int)p;
    for (Py_ssize_t k = 0; k < n; k++) {
        int a = alnum36(s[k]);
        if (a < 0) Py_RETURN_NONE;
        state = mod37_36_step(state, a);
    }
    return PyLong_FromLong(state);
}

/* ---------------------------------------------------------------------------------------------------------------
 * The module
 */

static PyMethodDef methods[] = {
    {"sm3", native_sm3, METH_O, "sm3(data) -> 32-byte digest (GB/T 32905-2016)."},
    {"inclusion_root", (PyCFunction)(void (*)(void))native_inclusion_root, METH_FASTCALL,
     "inclusion_root(leaf_index, tree_size, leaf_hash, proof) -> root | None (RFC 9162 §2.1.3.2, SM3)."},
    {"sparse_root", (PyCFunction)(void (*)(void))native_sparse_root, METH_FASTCALL,
     "sparse_root(key, value_hash | None, depths, siblings) -> root | None (core.smt, SM3)."},
    {"hashes_from_hex", native_hashes_from_hex, METH_O,
     "hashes_from_hex(list of str) -> tuple of 32-byte bytes | None (64 lower-case hex digits each)."},
    {"hash_from_hex", native_hash_from_hex, METH_O, "hash_from_hex(str) -> 32-byte bytes | None."},
    {"decode", native_decode, METH_O, "decode(bytes) -> value; raises Decline where core.canonical.decode decides."},
    {"encode", native_encode, METH_O, "encode(value) -> canonical bytes | None (core.canonical.encode decides)."},
    {"uscc_check_char", native_uscc_check_char, METH_O, "uscc_check_char(first17) -> str | None (GB 32100-2015)."},
    {"mod11_2", native_mod11_2, METH_O, "mod11_2(digits) -> str | None (ISO 7064 MOD 11-2)."},
    {"uscc_valid", native_uscc_valid, METH_O, "uscc_valid(text) -> True | None (GB 32100-2015)."},
    {"license_id_valid", (PyCFunction)(void (*)(void))native_license_id_valid, METH_FASTCALL,
     "license_id_valid(type_code, issuer_uscc, serial, version, check) -> True | None (GB/T 36904-2018)."},
    {"mod37_36_state", (PyCFunction)(void (*)(void))native_mod37_36_state, METH_FASTCALL,
     "mod37_36_state(text, state) -> int | None (ISO/IEC 7064 MOD 37,36)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "core._native", "Native fast paths with pure-Python references (see core/native.py).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) {
    smt_init_defaults();
    memset(uscc_value, -1, sizeof uscc_value);
    for (int k = 0; USCC_CHARSET[k]; k++) uscc_value[(unsigned char)USCC_CHARSET[k]] = (signed char)k;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Decline = PyErr_NewException("core._native.Decline", PyExc_Exception, NULL);
    if (Decline == NULL || PyModule_AddObjectRef(m, "Decline", Decline) < 0 ||
        PyModule_AddStringConstant(m, "SOURCE_SHA256", LICLEDGER_NATIVE_SOURCE) < 0) {
        Py_XDECREF(Decline);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
