/*
 * test_vectors.c - host program exercising bf_frame.h for the test suite.
 *
 * Reads commands on standard input, one per line, and prints one line each:
 *
 *   frame <counter> <channels> <per_frame> <v0> <v1> ...   -> frame bytes as hex
 *   crc <hex bytes>                                        -> CRC as 4 hex digits
 *   cmd <text>                                             -> "<NAME> <argument>"
 *   spf <rate_hz>                                          -> samples per frame
 *
 * Build: cc -std=c99 -Wall -Wextra -pedantic -o test_vectors test_vectors.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf_frame.h"

#define LINE_MAX_LEN 4096

static void print_hex(const uint8_t *bytes, size_t length)
{
    size_t i;
    for (i = 0; i < length; ++i) {
        printf("%02x", bytes[i]);
    }
    printf("\n");
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void do_frame(char *args)
{
    uint16_t samples[BF_MAX_CHANNELS * BF_MAX_SAMPLES_PER_FRAME];
    uint8_t frame[BF_FRAME_LEN(BF_MAX_CHANNELS, BF_MAX_SAMPLES_PER_FRAME)];
    char *end;
    unsigned long counter = strtoul(args, &end, 10);
    unsigned long channels = strtoul(end, &end, 10);
    unsigned long per_frame = strtoul(end, &end, 10);
    size_t n = 0, length;
    while (n < sizeof samples / sizeof samples[0]) {
        char *next;
        unsigned long value = strtoul(end, &next, 10);
        if (next == end) break;
        samples[n++] = (uint16_t)value;
        end = next;
    }
    if (n != channels * per_frame) {
        printf("error: %lu values expected, %lu given\n", channels * per_frame, (unsigned long)n);
        return;
    }
    length = bf_encode_frame(frame, sizeof frame, (uint16_t)counter, (uint8_t)channels, (uint8_t)per_frame, samples);
    if (length == 0) {
        printf("error: geometry out of range\n");
        return;
    }
    print_hex(frame, length);
}

static void do_crc(const char *args)
{
    uint8_t bytes[LINE_MAX_LEN / 2];
    size_t n = 0;
    while (*args == ' ') ++args;
    while (args[0] && args[1] && hex_value(args[0]) >= 0 && hex_value(args[1]) >= 0) {
        bytes[n++] = (uint8_t)(hex_value(args[0]) * 16 + hex_value(args[1]));
        args += 2;
    }
    printf("%04x\n", bf_crc16(bytes, n));
}

static void do_cmd(const char *args)
{
    static const char *names[] = {"NONE", "ID", "INFO", "START", "STOP", "RATE", "CH", "UNKNOWN"};
    long argument;
    bf_command command = bf_parse_command(args, &argument);
    printf("%s %ld\n", names[command], argument);
}

int main(void)
{
    static char line[LINE_MAX_LEN];
    while (fgets(line, sizeof line, stdin)) {
        size_t length = strlen(line);
        while (length && (line[length - 1] == '\n' || line[length - 1] == '\r')) line[--length] = '\0';
        if (strncmp(line, "frame ", 6) == 0) {
            do_frame(line + 6);
        } else if (strncmp(line, "crc", 3) == 0) {
            do_crc(line + 3);
        } else if (strncmp(line, "cmd ", 4) == 0) {
            do_cmd(line + 4);
        } else if (strncmp(line, "spf ", 4) == 0) {
            printf("%u\n", (unsigned)bf_samples_per_frame((uint16_t)strtoul(line + 4, NULL, 10)));
        } else {
            printf("error: unknown request\n");
        }
    }
    return 0;
}
