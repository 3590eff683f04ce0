/*
 * bf_frame.h - firmware_bridge framing, CRC and command parsing (pure C99).
 *
 * No Arduino dependency: the sketch includes it, and the host test program
 * (test_vectors.c) compiles it with the host C compiler so the test suite can
 * compare its frames byte for byte with the Python parser and encoder.
 *
 * Frame (multi-byte fields little-endian), see PROTOCOL.md:
 *
 *   offset  size    field
 *   0       2       sync 0xEB 0x90
 *   2       1       version (1)
 *   3       2       counter: index of the first sample since START, mod 65536
 *   5       1       channel count C (1..8)
 *   6       1       samples per frame S (1..16)
 *   7       2*C*S   samples, u16, sample-major (s0c0 s0c1 .. s1c0 ..)
 *   7+2CS   2       CRC-16/CCITT-FALSE of bytes 2 .. 6+2CS
 */
#ifndef BF_FRAME_H
#define BF_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define BF_SYNC0 0xEBu
#define BF_SYNC1 0x90u
#define BF_VERSION 1u
#define BF_HEADER_LEN 7u
#define BF_CRC_LEN 2u
#define BF_MAX_CHANNELS 8u
#define BF_MAX_SAMPLES_PER_FRAME 16u
#define BF_FRAME_LEN(channels, per_frame) (BF_HEADER_LEN + 2u * (channels) * (per_frame) + BF_CRC_LEN)

/*
 * CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR;
 * CRC of "123456789" = 0x29B1). Four bits at a time with a 16-entry table:
 * 32 bytes of constants instead of 512, which matters on an AVR with 2 KB of
 * RAM, for a cost of two table steps per byte.
 */
static const uint16_t bf_crc_nibble_table[16] = {
    0x0000u, 0x1021u, 0x2042u, 0x3063u, 0x4084u, 0x50A5u, 0x60C6u, 0x70E7u,
    0x8108u, 0x9129u, 0xA14Au, 0xB16Bu, 0xC18Cu, 0xD1ADu, 0xE1CEu, 0xF1EFu,
};

#define BF_CRC_INIT 0xFFFFu

static inline uint16_t bf_crc16_update(uint16_t crc, uint8_t byte)
{
    crc = (uint16_t)((uint16_t)(crc << 4) ^ bf_crc_nibble_table[((crc >> 12) ^ (byte >> 4)) & 0x0Fu]);
    crc = (uint16_t)((uint16_t)(crc << 4) ^ bf_crc_nibble_table[((crc >> 12) ^ (byte & 0x0Fu)) & 0x0Fu]);
    return crc;
}

static inline uint16_t bf_crc16(const uint8_t *data, size_t length)
{
    uint16_t crc = BF_CRC_INIT;
    size_t i;
    for (i = 0; i < length; ++i) {
        crc = bf_crc16_update(crc, data[i]);
    }
    return crc;
}

/*
 * Build one frame into out[0 .. capacity).
 *   counter            index of the frame's first sample since START (mod 65536)
 *   channels           1..BF_MAX_CHANNELS
 *   per_frame          1..BF_MAX_SAMPLES_PER_FRAME
 *   samples            channels * per_frame codes, sample-major:
 *                      samples[s * channels + c]
 * Returns the frame length, or 0 if the geometry is out of range or the
 * buffer is too small.
 */
static inline size_t bf_encode_frame(uint8_t *out, size_t capacity, uint16_t counter, uint8_t channels,
                                     uint8_t per_frame, const uint16_t *samples)
{
    size_t length, n, i, pos;
    if (channels < 1u || channels > BF_MAX_CHANNELS || per_frame < 1u || per_frame > BF_MAX_SAMPLES_PER_FRAME) {
        return 0;
    }
    length = BF_FRAME_LEN((size_t)channels, (size_t)per_frame);
    if (capacity < length) {
        return 0;
    }
    out[0] = BF_SYNC0;
    out[1] = BF_SYNC1;
    out[2] = BF_VERSION;
    out[3] = (uint8_t)(counter & 0xFFu);
    out[4] = (uint8_t)(counter >> 8);
    out[5] = channels;
    out[6] = per_frame;
    n = (size_t)channels * per_frame;
    pos = BF_HEADER_LEN;
    for (i = 0; i < n; ++i) {
        out[pos++] = (uint8_t)(samples[i] & 0xFFu);
        out[pos++] = (uint8_t)(samples[i] >> 8);
    }
    {
        uint16_t crc = bf_crc16(out + 2, pos - 2);
        out[pos++] = (uint8_t)(crc & 0xFFu);
        out[pos++] = (uint8_t)(crc >> 8);
    }
    return pos;
}

/* Text commands, one per line, case-insensitive. */
typedef enum {
    BF_CMD_NONE = 0, /* empty line */
    BF_CMD_ID,       /* -> "BFB 1 <board>" */
    BF_CMD_INFO,     /* -> "INFO fs=<hz> ch=<n> bits=<b> spf=<s> vref_mv=<mv>" */
    BF_CMD_START,    /* -> "OK START", then frames; the counter restarts at 0 */
    BF_CMD_STOP,     /* -> "OK STOP" */
    BF_CMD_RATE,     /* RATE <hz> -> "OK RATE <hz>" or "ERR ..." (only when stopped) */
    BF_CMD_CH,       /* CH <n>    -> "OK CH <n>" or "ERR ..." (only when stopped) */
    BF_CMD_UNKNOWN
} bf_command;

static inline char bf_upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

/* True if the word at *text equals keyword (case-insensitive) and ends there. */
static inline int bf_word_is(const char *text, const char *keyword, const char **after)
{
    while (*keyword) {
        if (bf_upper(*text) != *keyword) {
            return 0;
        }
        ++text;
        ++keyword;
    }
    if (*text != '\0' && *text != ' ' && *text != '\t' && *text != '\r') {
        return 0;
    }
    *after = text;
    return 1;
}

/*
 * Parse one command line (without its newline). For RATE and CH, *argument
 * receives the number (-1 when missing or not a number).
 */
static inline bf_command bf_parse_command(const char *line, long *argument)
{
    const char *rest = line;
    bf_command command;
    *argument = -1;
    while (*rest == ' ' || *rest == '\t') {
        ++rest;
    }
    if (*rest == '\0' || *rest == '\r') {
        return BF_CMD_NONE;
    }
    if (bf_word_is(rest, "ID", &rest)) {
        return BF_CMD_ID;
    }
    if (bf_word_is(rest, "INFO", &rest)) {
        return BF_CMD_INFO;
    }
    if (bf_word_is(rest, "START", &rest)) {
        return BF_CMD_START;
    }
    if (bf_word_is(rest, "STOP", &rest)) {
        return BF_CMD_STOP;
    }
    if (bf_word_is(rest, "RATE", &rest)) {
        command = BF_CMD_RATE;
    } else if (bf_word_is(rest, "CH", &rest)) {
        command = BF_CMD_CH;
    } else {
        return BF_CMD_UNKNOWN;
    }
    while (*rest == ' ' || *rest == '\t') {
        ++rest;
    }
    if (*rest >= '0' && *rest <= '9') {
        long value = 0;
        while (*rest >= '0' && *rest <= '9' && value < 100000L) {
            value = value * 10 + (*rest - '0');
            ++rest;
        }
        if (*rest == '\0' || *rest == ' ' || *rest == '\r') {
            *argument = value;
        }
    }
    return command;
}

/* Samples per frame for a rate: frames of about 10 ms (1 at or below 100 Hz). */
static inline uint8_t bf_samples_per_frame(uint16_t rate_hz)
{
    uint16_t per_frame = (uint16_t)(rate_hz / 100u);
    if (per_frame < 1u) {
        per_frame = 1u;
    }
    if (per_frame > BF_MAX_SAMPLES_PER_FRAME) {
        per_frame = BF_MAX_SAMPLES_PER_FRAME;
    }
    return (uint8_t)per_frame;
}

#endif /* BF_FRAME_H */
