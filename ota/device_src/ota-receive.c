/* ota-receive: the SEG records of an update stream (ota/protocol.py) into the inactive slot, each
 * segment hashed as it is written and checked against the signed manifest's value, in one
 * process for the whole stream.
 *
 * The shell agent (fleetforge-ota) keeps the state machine; this program only moves and checks
 * bytes. Without it the agent writes each segment with dd and hashes it again with sha256sum or
 * openssl: a second read of every byte and a process per segment, which on a slow board (or
 * under emulation) costs as much as the transfer itself.
 *
 *   ota-receive --probe
 *       exit 0 when libcrypto loads and hashes correctly (the agent checks once per boot)
 *   ota-receive --verify MANIFEST SIG KEY...
 *       the KEYs (PEM public keys) under which SIG is a valid Ed25519 signature of MANIFEST's
 *       bytes, one per line (none: no key signed it); exit 3 when libcrypto cannot check, and the
 *       agent asks `openssl pkeyutl` instead (the same check, at the price of loading OpenSSL's
 *       whole command line program: a tenth of a second under emulation)
 *   ota-receive --commit FILE
 *       make FILE.tmp FILE durably: fsync it, rename it over FILE, fsync the folder (the agent's
 *       every state change; one process instead of busybox's sync, mv and sync)
 *   ota-receive TARGET ACTIVE SEGMENT_SIZE ROOTFS_SIZE FIRST HASHES PROGRESS ID < stream
 *       reads SEG records for segments FIRST.. from stdin; HASHES holds one hex SHA-256 per line,
 *       for every segment of the manifest in order. After each segment is verified and on the
 *       medium, PROGRESS is rewritten durably (as --commit does) to "ID NEXT": the agent reads it
 *       as its SEG_DONE for the download ID (no process per segment to persist it).
 *       On stdout, one line each (flushed):
 *         VERIFIED i        segment i hashed to the manifest's value, is on the medium (fsync)
 *                           and recorded in PROGRESS
 *         NEXT <record>     the first line that is not a SEG record (the agent goes on from it)
 *         EOF               the stream ended between records
 *         ERR <reason>      a refusal (exit status 1); the agent reports it
 *
 * Segment bytes reach the slot through one aligned staging block, written with O_DIRECT where the
 * medium takes it: copying every byte into the page cache cost as much as hashing it (under
 * emulation, and on a slow board's memory bus), the device's DMA moves it instead. A medium or
 * file system without O_DIRECT gets ordinary writes; the fsync after each segment covers both.
 *
 * SHA-256 comes from the device's own libcrypto (OpenSSL, loaded at run time: the same library
 * its `openssl` verifies signatures with, using the CPU's SHA instructions where it has them).
 * Header lines are read a byte at a time so that nothing after the last SEG record is consumed:
 * the agent reads the ART records and END itself.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK (1u << 20)
#define DIRECT_ALIGN 4096u /* offsets, lengths and buffer of an O_DIRECT write: any sector size up to 4 KiB */
#define LINE_MAX_LEN 256

/* The libcrypto entry points used: stable across OpenSSL 1.1.1 and 3.x. */
typedef struct evp_md_ctx EVP_MD_CTX;
typedef struct evp_md EVP_MD;
typedef struct evp_pkey EVP_PKEY;
typedef struct bio BIO;
static EVP_MD_CTX *(*md_ctx_new)(void);
static const EVP_MD *(*md_sha256)(void);
static int (*digest_init)(EVP_MD_CTX *, const EVP_MD *, void *);
static int (*digest_update)(EVP_MD_CTX *, const void *, size_t);
static int (*digest_final)(EVP_MD_CTX *, unsigned char *, unsigned int *);
/* Signature checks (--verify). Keys are parsed from memory: a FILE of this program's C library
 * must not reach libcrypto's. */
static void (*md_ctx_free)(EVP_MD_CTX *);
static BIO *(*bio_new_mem_buf)(const void *, int);
static int (*bio_free)(BIO *);
static EVP_PKEY *(*pem_read_bio_pubkey)(BIO *, EVP_PKEY **, void *, void *);
static int (*pkey_id)(const EVP_PKEY *);
static void (*pkey_free)(EVP_PKEY *);
static int (*digest_verify_init)(EVP_MD_CTX *, void *, const EVP_MD *, void *, EVP_PKEY *);
static int (*digest_verify)(EVP_MD_CTX *, const unsigned char *, size_t, const unsigned char *, size_t);
#define EVP_PKEY_ED25519 1087 /* NID_ED25519 */

static void fail(const char *format, ...) {
    va_list args;
    fputs("ERR ", stdout);
    va_start(args, format);
    vprintf(format, args);
    va_end(args);
    fputc('\n', stdout);
    fflush(stdout);
    exit(1);
}

static int load_libcrypto(void) {
    static const char *const names[] = {"libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so"};
    void *lib = NULL;
    for (size_t i = 0; i < sizeof names / sizeof *names && !lib; i++)
        lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        return 0;
    *(void **)&md_ctx_new = dlsym(lib, "EVP_MD_CTX_new");
    *(void **)&md_sha256 = dlsym(lib, "EVP_sha256");
    *(void **)&digest_init = dlsym(lib, "EVP_DigestInit_ex");
    *(void **)&digest_update = dlsym(lib, "EVP_DigestUpdate");
    *(void **)&digest_final = dlsym(lib, "EVP_DigestFinal_ex");
    *(void **)&md_ctx_free = dlsym(lib, "EVP_MD_CTX_free");
    *(void **)&bio_new_mem_buf = dlsym(lib, "BIO_new_mem_buf");
    *(void **)&bio_free = dlsym(lib, "BIO_free");
    *(void **)&pem_read_bio_pubkey = dlsym(lib, "PEM_read_bio_PUBKEY");
    *(void **)&pkey_free = dlsym(lib, "EVP_PKEY_free");
    *(void **)&digest_verify_init = dlsym(lib, "EVP_DigestVerifyInit");
    *(void **)&digest_verify = dlsym(lib, "EVP_DigestVerify");
    *(void **)&pkey_id = dlsym(lib, "EVP_PKEY_get_id"); /* OpenSSL 3 */
    if (!pkey_id)
        *(void **)&pkey_id = dlsym(lib, "EVP_PKEY_id"); /* 1.1.1 */
    return md_ctx_new && md_sha256 && digest_init && digest_update && digest_final;
}

static int can_verify(void) {
    return md_ctx_free && bio_new_mem_buf && bio_free && pem_read_bio_pubkey && pkey_id &&
           pkey_free && digest_verify_init && digest_verify;
}

/* A whole file into memory (at most `limit` bytes; NULL: unreadable or larger). */
static unsigned char *slurp(const char *path, size_t limit, size_t *size) {
    FILE *in = fopen(path, "rb");
    if (!in)
        return NULL;
    unsigned char *data = malloc(limit + 1);
    size_t n = data ? fread(data, 1, limit + 1, in) : 0;
    int bad = !data || ferror(in) || n > limit;
    fclose(in);
    if (bad) {
        free(data);
        return NULL;
    }
    *size = n;
    return data;
}

/* 1 when `signature` is a valid Ed25519 signature of `message` under the PEM public key in
 * `key_file`; 0 for anything else (not Ed25519, unreadable, malformed, another signer). */
static int ed25519_verifies(const char *key_file, const unsigned char *message, size_t message_size,
                            const unsigned char *signature, size_t signature_size) {
    size_t pem_size;
    unsigned char *pem = slurp(key_file, 1 << 16, &pem_size);
    if (!pem)
        return 0;
    int ok = 0;
    BIO *bio = bio_new_mem_buf(pem, (int)pem_size);
    EVP_PKEY *key = bio ? pem_read_bio_pubkey(bio, NULL, NULL, NULL) : NULL;
    EVP_MD_CTX *ctx = key ? md_ctx_new() : NULL;
    if (ctx && pkey_id(key) == EVP_PKEY_ED25519 &&
        digest_verify_init(ctx, NULL, NULL, NULL, key) == 1)
        ok = digest_verify(ctx, signature, signature_size, message, message_size) == 1;
    if (ctx)
        md_ctx_free(ctx);
    if (key)
        pkey_free(key);
    if (bio)
        bio_free(bio);
    free(pem);
    return ok;
}

static int verify(int count, char **argv) {
    size_t message_size, signature_size;
    if (!load_libcrypto() || !can_verify()) {
        fprintf(stderr, "ota-receive: libcrypto cannot check signatures here\n");
        return 3;
    }
    unsigned char *message = slurp(argv[0], (size_t)64 << 20, &message_size);
    unsigned char *signature = slurp(argv[1], 1024, &signature_size);
    if (!message || !signature)
        return 0; /* nothing verifies: the agent names the reason */
    for (int i = 2; i < count; i++)
        if (ed25519_verifies(argv[i], message, message_size, signature, signature_size))
            printf("%s\n", argv[i]);
    return fflush(stdout) == 0 ? 0 : 3;
}

static void hex(const unsigned char *digest, char *out) {
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", digest[i]);
}

static int sha256_hex(EVP_MD_CTX *ctx, const void *data, size_t length, char *out) {
    unsigned char digest[32];
    unsigned int size = 0;
    if (!digest_init(ctx, md_sha256(), NULL) || !digest_update(ctx, data, length) ||
        !digest_final(ctx, digest, &size) || size != 32)
        return 0;
    hex(digest, out);
    return 1;
}

static int probe(void) {
    EVP_MD_CTX *ctx;
    char got[65];
    if (!load_libcrypto() || !(ctx = md_ctx_new()))
        return 1;
    return !(sha256_hex(ctx, "abc", 3, got) &&
             strcmp(got, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
}

/* One header line from stdin without reading past it. 0 at end of input before any byte. */
static int read_line(char *line) {
    size_t n = 0;
    for (;;) {
        char c;
        ssize_t got = read(0, &c, 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (n == 0)
                return 0;
            fail("the update stream ended inside a record header (connection lost?): rerun the same deploy to resume");
        }
        if (c == '\n')
            break;
        if (n + 1 >= LINE_MAX_LEN)
            fail("receive: record header too long");
        line[n++] = c;
    }
    line[n] = '\0';
    return 1;
}

/* A decimal number of at most 15 digits (the agent's is_number), the whole word. */
static int number(const char *word, uint64_t *value) {
    size_t n = strlen(word);
    if (n == 0 || n > 15 || strspn(word, "0123456789") != n)
        return 0;
    *value = strtoull(word, NULL, 10);
    return 1;
}

/* Splits `line` in place into at most `max` words; returns how many. */
static int words(char *line, char **word, int max) {
    int n = 0;
    for (char *save = NULL, *w = strtok_r(line, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        if (n == max)
            return max + 1;
        word[n++] = w;
    }
    return n;
}

static void write_all(int fd, const unsigned char *data, size_t length, uint64_t offset) {
    while (length) {
        ssize_t done = pwrite(fd, data, length, (off_t)offset);
        if (done < 0 && errno == EINTR)
            continue;
        if (done <= 0)
            fail("cannot write the inactive slot: %s: check the medium (dmesg), then rerun the same deploy to resume", strerror(errno));
        data += done;
        length -= (size_t)done;
        offset += (uint64_t)done;
    }
}

/* The inactive slot, written a staging block at a time: `block` holds the `fill` bytes that go at
 * `offset`. `direct` is an O_DIRECT descriptor of the same slot, or -1 (ordinary writes only). */
struct slot {
    int fd, direct;
    unsigned char *block;
    size_t fill;
    uint64_t offset;
};

static void slot_flush(struct slot *slot) {
    if (!slot->fill)
        return;
    int fd = slot->fd;
    /* A part block (a segment's unaligned tail) goes through the page cache. */
    if (slot->direct >= 0 && slot->fill % DIRECT_ALIGN == 0 && slot->offset % DIRECT_ALIGN == 0) {
        ssize_t done;
        do
            done = pwrite(slot->direct, slot->block, slot->fill, (off_t)slot->offset);
        while (done < 0 && errno == EINTR);
        if (done == (ssize_t)slot->fill) {
            slot->offset += slot->fill;
            slot->fill = 0;
            return;
        }
        if (done < 0 && errno != EINVAL)
            fail("cannot write the inactive slot: %s: check the medium (dmesg), then rerun the same deploy to resume", strerror(errno));
        /* EINVAL: the medium wants other alignment; a short write: finish through the page
         * cache (rewriting the same bytes is harmless). Ordinary writes from here on. */
        close(slot->direct);
        slot->direct = -1;
    }
    write_all(fd, slot->block, slot->fill, slot->offset);
    slot->offset += slot->fill;
    slot->fill = 0;
}

/* Room for the next bytes at the end of the staging block (flushing it when full). */
static size_t slot_room(struct slot *slot) {
    if (slot->fill == BLOCK)
        slot_flush(slot);
    return BLOCK - slot->fill;
}

static uint64_t device_size(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0)
        return 0;
    if (S_ISBLK(st.st_mode)) {
        off_t end = lseek(fd, 0, SEEK_END);
        return end < 0 ? 0 : (uint64_t)end;
    }
    return (uint64_t)st.st_size;
}

static int commit(const char *file) {
    char tmp[4096], dir[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", file) >= (int)sizeof tmp ||
        snprintf(dir, sizeof dir, "%s", file) >= (int)sizeof dir)
        return 1;
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    int fd = open(tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0 || close(fd) != 0 || rename(tmp, file) != 0) {
        fprintf(stderr, "ota-receive: cannot commit %s: %s\n", file, strerror(errno));
        return 1;
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0 || fsync(fd) != 0 || close(fd) != 0) {
        fprintf(stderr, "ota-receive: cannot sync %s: %s\n", dir, strerror(errno));
        return 1;
    }
    return 0;
}

/* PROGRESS <- "ID NEXT", durably. */
static void record_progress(const char *progress, const char *id, uint64_t next) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", progress) >= (int)sizeof tmp)
        fail("receive: progress path too long");
    FILE *out = fopen(tmp, "w");
    if (!out || fprintf(out, "%s %" PRIu64 "\n", id, next) < 0 || fclose(out) != 0)
        fail("cannot record the download's progress in %s: %s: free space on /persist (or check the medium), then rerun the same deploy to resume", progress, strerror(errno));
    if (commit(progress) != 0)
        fail("cannot record the download's progress in %s: free space on /persist (or check the medium), then rerun the same deploy to resume", progress);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--probe") == 0)
        return probe();
    if (argc == 3 && strcmp(argv[1], "--commit") == 0)
        return commit(argv[2]);
    if (argc >= 4 && strcmp(argv[1], "--verify") == 0)
        return verify(argc - 2, argv + 2);
    if (argc != 9) {
        fprintf(stderr, "usage: ota-receive --probe | --commit FILE | --verify MANIFEST SIG KEY... | TARGET ACTIVE SEGMENT_SIZE ROOTFS_SIZE FIRST HASHES PROGRESS ID\n");
        return 2;
    }
    uint64_t seg_size, rootfs_size, next;
    if (!number(argv[3], &seg_size) || !number(argv[4], &rootfs_size) || !number(argv[5], &next) ||
        seg_size == 0)
        fail("receive: bad arguments");
    if (!load_libcrypto())
        fail("no libcrypto on this device: rebuild its image with feature/ota (it brings OpenSSL)");
    EVP_MD_CTX *ctx = md_ctx_new();
    void *block = NULL;
    struct slot slot = {open(argv[1], O_WRONLY), -1, NULL, 0, 0};
    /* Every staging block then starts on a DIRECT_ALIGN boundary of the slot. */
    if (seg_size % DIRECT_ALIGN == 0)
        slot.direct = open(argv[1], O_WRONLY | O_DIRECT);
    int active = open(argv[2], O_RDONLY);
    FILE *hashes = fopen(argv[6], "r");
    if (posix_memalign(&block, DIRECT_ALIGN, BLOCK) == 0)
        slot.block = block;
    if (!ctx || slot.fd < 0 || active < 0 || !hashes || !slot.block)
        fail("cannot open the slots or the segment hashes: %s: rerun the same deploy; if it fails again: fleetforge ota.recover", strerror(errno));
    char want[80];
    for (uint64_t skip = 0; skip < next; skip++)
        if (!fgets(want, sizeof want, hashes))
            fail("receive: segment %" PRIu64 " is not in the manifest", next);
    uint64_t active_size = device_size(active);
    uint64_t segments = (rootfs_size + seg_size - 1) / seg_size;

    char line[LINE_MAX_LEN], record[LINE_MAX_LEN], *word[4];
    while (read_line(line)) {
        memcpy(record, line, sizeof line);
        int n = words(line, word, 3);
        if (n < 1 || strcmp(word[0], "SEG") != 0) {
            printf("NEXT %s\n", record);
            fflush(stdout);
            return 0;
        }
        uint64_t index, pieces;
        if (n != 3 || !number(word[1], &index) || !number(word[2], &pieces))
            fail("receive: bad segment record");
        if (index != next)
            fail("receive: segment %" PRIu64 " sent, segment %" PRIu64 " expected", index, next);
        if (index >= segments)
            fail("receive: segment %" PRIu64 " is not in the manifest", index);
        uint64_t start = index * seg_size;
        uint64_t length = rootfs_size - start < seg_size ? rootfs_size - start : seg_size;
        uint64_t pos = start;
        slot.offset = start;
        slot.fill = 0;
        if (!digest_init(ctx, md_sha256(), NULL))
            fail("libcrypto cannot hash: rerun the same deploy to resume");
        for (; pieces > 0; pieces--) {
            if (!read_line(line))
                fail("the update stream ended inside segment %" PRIu64 " (connection lost?): rerun the same deploy to resume", index);
            n = words(line, word, 3);
            uint64_t a, b;
            if (n == 2 && strcmp(word[0], "L") == 0) {
                if (!number(word[1], &a) || pos + a - start > length)
                    fail("receive: bad piece length");
                while (a) {
                    size_t room = slot_room(&slot), want = a < room ? (size_t)a : room;
                    unsigned char *at = slot.block + slot.fill;
                    ssize_t got = read(0, at, want);
                    if (got < 0 && errno == EINTR)
                        continue;
                    if (got <= 0)
                        fail("the update stream ended inside segment %" PRIu64 " (connection lost?): rerun the same deploy to resume", index);
                    digest_update(ctx, at, (size_t)got);
                    slot.fill += (size_t)got;
                    pos += (uint64_t)got;
                    a -= (uint64_t)got;
                }
            } else if (n == 3 && strcmp(word[0], "C") == 0) {
                if (!number(word[1], &a) || !number(word[2], &b) || a + b > active_size ||
                    pos + b - start > length)
                    fail("receive: bad copy piece");
                while (b) {
                    size_t room = slot_room(&slot), want = b < room ? (size_t)b : room;
                    unsigned char *at = slot.block + slot.fill;
                    ssize_t got = pread(active, at, want, (off_t)a);
                    if (got < 0 && errno == EINTR)
                        continue;
                    if (got <= 0)
                        fail("cannot read the booted slot: %s: check the medium (dmesg), then rerun the same deploy", got < 0 ? strerror(errno) : "short read");
                    digest_update(ctx, at, (size_t)got);
                    slot.fill += (size_t)got;
                    pos += (uint64_t)got;
                    a += (uint64_t)got;
                    b -= (uint64_t)got;
                }
            } else {
                fail("receive: bad piece '%s'", n > 0 ? word[0] : "");
            }
        }
        slot_flush(&slot);
        if (pos - start != length)
            fail("receive: segment %" PRIu64 " has %" PRIu64 " bytes, the manifest %" PRIu64, index,
                 pos - start, length);
        unsigned char digest[32];
        unsigned int size = 0;
        char got[65];
        if (!digest_final(ctx, digest, &size) || size != 32)
            fail("libcrypto cannot hash: rerun the same deploy to resume");
        hex(digest, got);
        if (!fgets(want, sizeof want, hashes))
            fail("receive: segment %" PRIu64 " is not in the manifest", index);
        want[strcspn(want, "\n")] = '\0';
        if (strcmp(got, want) != 0)
            fail("segment %" PRIu64 " does not match the signed manifest (corrupted bundle?): rebuild or re-download the bundle", index);
        /* It counts only once it is on the medium: the agent records it right after this line. */
        if (fsync(slot.fd) != 0)
            fail("cannot sync the inactive slot: %s: check the medium (dmesg), then rerun the same deploy to resume", strerror(errno));
        record_progress(argv[7], argv[8], index + 1);
        printf("VERIFIED %" PRIu64 "\n", index);
        fflush(stdout);
        next = index + 1;
    }
    puts("EOF");
    fflush(stdout);
    return 0;
}
