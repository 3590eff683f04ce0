/*
 * firmware_bridge.ino - sEMG acquisition sketch for the biofeedback toolkit.
 *
 * Reads 1-6 analog inputs (A0..A5) at a rate paced by a hardware timer (never
 * by delay()), and sends firmware_bridge frames (see PROTOCOL.md): each frame
 * carries a 16-bit sample counter and a CRC, so the host knows exactly which
 * samples it received and which were lost.
 *
 * Boards:
 *   - AVR (Uno, Nano, Leonardo-class ATmega328P/32U4): Timer1 compare match
 *     starts a chain of ADC conversions driven by the ADC interrupt, so the
 *     sampling instant is set by the timer and the CPU is free in between.
 *   - ESP32 (Arduino core): an esp_timer periodic callback reads the inputs.
 *   - RP2040 (arduino-pico core): a repeating hardware-alarm timer callback.
 *   - Anything else: a micros()-scheduled loop (rate exact on average, jitter
 *     of one loop pass); prefer a board above for measurements.
 *
 * Rates: 100..1000 Hz; 500 Hz by default; 1000 Hz only with 1 or 2 channels.
 * Serial: 115200 baud, 8N1. Commands (one line each): ID, INFO, START, STOP,
 * RATE <hz>, CH <n>.
 *
 * Sampling and sending are decoupled by a ring buffer of samples; each sample
 * keeps the counter value it was taken at, so if the serial link cannot keep
 * up the ring overflows, samples are dropped whole, and the next frame's
 * counter shows the host exactly how many.
 */

#include <Arduino.h>
#include "bf_frame.h"

#ifndef BF_BOARD_NAME
#if defined(ARDUINO_ARCH_AVR)
#define BF_BOARD_NAME "avr"
#elif defined(ARDUINO_ARCH_ESP32)
#define BF_BOARD_NAME "esp32"
#elif defined(ARDUINO_ARCH_RP2040)
#define BF_BOARD_NAME "rp2040"
#else
#define BF_BOARD_NAME "generic"
#endif
#endif

#define BF_BAUD 115200UL
#define BF_DEFAULT_RATE 500u
#define BF_DEFAULT_CHANNELS 2u
#define BF_MAX_ANALOG 6u
#define BF_MIN_RATE 100u
#define BF_MAX_RATE 1000u
#define BF_MAX_CHANNELS_AT_1KHZ 2u

#if defined(ARDUINO_ARCH_AVR)
#define BF_ADC_BITS 10u
#define BF_VREF_MV 5000u
#define BF_RING_SAMPLES 32u /* 32 x (6 x 2 + 2) bytes = 448 bytes of the Uno's 2 KB */
#else
#define BF_ADC_BITS 12u
#define BF_VREF_MV 3300u
#define BF_RING_SAMPLES 128u
#endif

static const uint8_t analog_pins[BF_MAX_ANALOG] = {A0, A1, A2, A3, A4, A5};

static uint16_t rate_hz = BF_DEFAULT_RATE;
static uint8_t n_channels = BF_DEFAULT_CHANNELS;
static uint8_t per_frame = 5;
static volatile bool streaming = false;

/* Ring of samples: written by the sampling interrupt, read by loop(). */
static volatile uint16_t ring_values[BF_RING_SAMPLES][BF_MAX_ANALOG];
static volatile uint16_t ring_index[BF_RING_SAMPLES];
static volatile uint8_t ring_head = 0; /* next slot to write (interrupt only) */
static volatile uint8_t ring_tail = 0; /* next slot to read (loop only) */
static volatile uint16_t sample_counter = 0; /* index of the next sample since START */

/* Called once per sample, in interrupt context, with the channel values. */
static inline void store_sample(const uint16_t *values)
{
    uint8_t next = (uint8_t)((ring_head + 1u) % BF_RING_SAMPLES);
    if (next != ring_tail) {
        uint8_t c;
        for (c = 0; c < n_channels; ++c) {
            ring_values[ring_head][c] = values[c];
        }
        ring_index[ring_head] = sample_counter;
        ring_head = next;
    }
    /* The counter advances even when the ring is full: a dropped sample
       leaves a hole in the indices that the host reports as a gap. */
    sample_counter++;
}

/* ------------------------------------------------------------------------ */
#if defined(ARDUINO_ARCH_AVR)

static volatile uint8_t adc_channel = 0;
static volatile uint16_t adc_values[BF_MAX_ANALOG];

static uint8_t adc_input_of(uint8_t pin)
{
#if defined(analogPinToChannel)
    return (uint8_t)analogPinToChannel(pin); /* ATmega32U4 and others with a pin map */
#else
    return (uint8_t)(pin >= A0 ? pin - A0 : pin); /* ATmega328P: A0..A5 are ADC0..ADC5 */
#endif
}

static void adc_select(uint8_t channel)
{
    uint8_t input = adc_input_of(analog_pins[channel]);
    uint8_t mux = (uint8_t)(input & 0x07u);
#if defined(MUX5)
    if (input & 0x08u) {
        ADCSRB |= _BV(MUX5);
    } else {
        ADCSRB &= (uint8_t)~_BV(MUX5);
    }
#endif
    ADMUX = (uint8_t)(_BV(REFS0) | mux); /* AVcc reference, right-adjusted */
}

static void sampler_start(void)
{
    uint32_t ticks = (F_CPU / 8UL) / rate_hz; /* prescaler 8: 2 MHz at 16 MHz */
    noInterrupts();
    TCCR1A = 0;
    TCCR1B = 0;
    TCNT1 = 0;
    OCR1A = (uint16_t)(ticks - 1u);
    TCCR1B = _BV(WGM12) | _BV(CS11); /* CTC mode, clk/8 */
    TIMSK1 |= _BV(OCIE1A);
    /* ADC on, interrupt on, clock/64 (250 kHz at 16 MHz: 52 us per conversion,
       6 channels in ~0.3 ms, inside the 1 ms period of the fastest rate). */
    ADCSRA = _BV(ADEN) | _BV(ADIE) | _BV(ADPS2) | _BV(ADPS1);
    interrupts();
}

static void sampler_stop(void)
{
    TIMSK1 &= (uint8_t)~_BV(OCIE1A);
}

ISR(TIMER1_COMPA_vect)
{
    /* The timer fixes the sampling instant; the conversions chain from here. */
    adc_channel = 0;
    adc_select(0);
    ADCSRA |= _BV(ADSC);
}

ISR(ADC_vect)
{
    uint16_t value = ADC;
    adc_values[adc_channel] = value;
    adc_channel++;
    if (adc_channel < n_channels) {
        adc_select(adc_channel);
        ADCSRA |= _BV(ADSC);
    } else {
        uint16_t copy[BF_MAX_ANALOG];
        uint8_t c;
        for (c = 0; c < n_channels; ++c) {
            copy[c] = adc_values[c];
        }
        store_sample(copy);
    }
}

/* ------------------------------------------------------------------------ */
#elif defined(ARDUINO_ARCH_ESP32)
#include "esp_timer.h"

static esp_timer_handle_t sample_timer = NULL;

static void sample_callback(void *unused)
{
    uint16_t values[BF_MAX_ANALOG];
    uint8_t c;
    (void)unused;
    for (c = 0; c < n_channels; ++c) {
        values[c] = (uint16_t)analogRead(analog_pins[c]);
    }
    store_sample(values);
}

static void sampler_start(void)
{
    if (sample_timer == NULL) {
        esp_timer_create_args_t args = {};
        args.callback = &sample_callback;
        args.name = "bf_sample";
        esp_timer_create(&args, &sample_timer);
    }
    analogReadResolution(BF_ADC_BITS);
    esp_timer_start_periodic(sample_timer, 1000000ULL / rate_hz);
}

static void sampler_stop(void)
{
    if (sample_timer != NULL) {
        esp_timer_stop(sample_timer);
    }
}

/* ------------------------------------------------------------------------ */
#elif defined(ARDUINO_ARCH_RP2040)
#include <pico/time.h>

static struct repeating_timer sample_timer;
static bool timer_running = false;

static bool sample_callback(struct repeating_timer *unused)
{
    uint16_t values[BF_MAX_ANALOG];
    uint8_t c;
    (void)unused;
    for (c = 0; c < n_channels; ++c) {
        values[c] = (uint16_t)analogRead(analog_pins[c]);
    }
    store_sample(values);
    return true;
}

static void sampler_start(void)
{
    analogReadResolution(BF_ADC_BITS);
    /* A negative period keeps the interval from one start to the next. */
    timer_running = add_repeating_timer_us(-(int64_t)(1000000L / rate_hz), sample_callback, NULL, &sample_timer);
}

static void sampler_stop(void)
{
    if (timer_running) {
        cancel_repeating_timer(&sample_timer);
        timer_running = false;
    }
}

/* ------------------------------------------------------------------------ */
#else

static uint32_t next_due_us = 0;
static bool generic_running = false;

static void sampler_start(void)
{
    next_due_us = micros();
    generic_running = true;
}

static void sampler_stop(void)
{
    generic_running = false;
}

static void generic_poll(void)
{
    uint32_t period = 1000000UL / rate_hz;
    while (generic_running && (int32_t)(micros() - next_due_us) >= 0) {
        uint16_t values[BF_MAX_ANALOG];
        uint8_t c;
        for (c = 0; c < n_channels; ++c) {
            values[c] = (uint16_t)analogRead(analog_pins[c]);
        }
        store_sample(values);
        next_due_us += period; /* schedule from the due time, not from now: no drift */
    }
}
#endif

/* ------------------------------------------------------------------------ */

static char command_line[32];
static uint8_t command_length = 0;

static void start_stream(void)
{
    sampler_stop();
    noInterrupts();
    ring_head = ring_tail = 0;
    sample_counter = 0; /* the host numbers samples from START */
    interrupts();
    per_frame = bf_samples_per_frame(rate_hz);
    Serial.println(F("OK START"));
    streaming = true;
    sampler_start();
}

static void stop_stream(void)
{
    sampler_stop();
    streaming = false;
    Serial.println(F("OK STOP"));
}

static void answer(const char *line)
{
    long argument;
    bf_command command = bf_parse_command(line, &argument);
    switch (command) {
    case BF_CMD_NONE:
        break;
    case BF_CMD_ID:
        Serial.print(F("BFB "));
        Serial.print(BF_VERSION);
        Serial.print(' ');
        Serial.println(F(BF_BOARD_NAME));
        break;
    case BF_CMD_INFO:
        Serial.print(F("INFO fs="));
        Serial.print(rate_hz);
        Serial.print(F(" ch="));
        Serial.print(n_channels);
        Serial.print(F(" bits="));
        Serial.print(BF_ADC_BITS);
        Serial.print(F(" spf="));
        Serial.print(bf_samples_per_frame(rate_hz));
        Serial.print(F(" vref_mv="));
        Serial.println(BF_VREF_MV);
        break;
    case BF_CMD_START:
        start_stream();
        break;
    case BF_CMD_STOP:
        stop_stream();
        break;
    case BF_CMD_RATE:
    case BF_CMD_CH: {
        long rate = command == BF_CMD_RATE ? argument : (long)rate_hz;
        long channels = command == BF_CMD_CH ? argument : (long)n_channels;
        if (streaming) {
            Serial.println(F("ERR busy: STOP first"));
        } else if (argument < 0) {
            Serial.println(F("ERR a number is needed"));
        } else if (rate < BF_MIN_RATE || rate > BF_MAX_RATE || channels < 1 || channels > BF_MAX_ANALOG) {
            Serial.println(F("ERR out of range (100..1000 Hz, 1..6 channels)"));
        } else if (rate > BF_DEFAULT_RATE && channels > BF_MAX_CHANNELS_AT_1KHZ) {
            Serial.println(F("ERR above 500 Hz, at most 2 channels"));
        } else {
            rate_hz = (uint16_t)rate;
            n_channels = (uint8_t)channels;
            Serial.print(F("OK "));
            Serial.print(command == BF_CMD_RATE ? F("RATE ") : F("CH "));
            Serial.println(argument);
        }
        break;
    }
    default:
        Serial.println(F("ERR unknown command"));
        break;
    }
}

static void read_commands(void)
{
    while (Serial.available() > 0) {
        char c = (char)Serial.read();
        if (c == '\n') {
            command_line[command_length] = '\0';
            answer(command_line);
            command_length = 0;
        } else if (command_length < sizeof command_line - 1u) {
            command_line[command_length++] = c;
        } else {
            command_length = 0; /* overlong line: not a command of ours */
        }
    }
}

/* Send one frame when the ring holds per_frame consecutive samples. */
static void send_frames(void)
{
    static uint16_t block[BF_MAX_CHANNELS * BF_MAX_SAMPLES_PER_FRAME];
    static uint8_t frame[BF_FRAME_LEN(BF_MAX_ANALOG, BF_MAX_SAMPLES_PER_FRAME)];
    for (;;) {
        uint8_t head = ring_head; /* one byte: read atomically */
        uint8_t available = (uint8_t)((head + BF_RING_SAMPLES - ring_tail) % BF_RING_SAMPLES);
        uint8_t s, c, tail = ring_tail;
        uint16_t first;
        size_t length;
        bool hole = false;
        if (available < per_frame) {
            return;
        }
        first = ring_index[tail];
        for (s = 0; s < per_frame; ++s) {
            uint8_t slot = (uint8_t)((tail + s) % BF_RING_SAMPLES);
            if (ring_index[slot] != (uint16_t)(first + s)) {
                /* A hole (the ring overflowed): drop the samples before it;
                   the next frame's counter tells the host what is missing. */
                ring_tail = slot;
                hole = true;
                break;
            }
            for (c = 0; c < n_channels; ++c) {
                block[s * n_channels + c] = ring_values[slot][c];
            }
        }
        if (hole) {
            continue;
        }
        ring_tail = (uint8_t)((tail + per_frame) % BF_RING_SAMPLES);
        length = bf_encode_frame(frame, sizeof frame, first, n_channels, per_frame, block);
        Serial.write(frame, length); /* may wait for the UART; sampling goes on in the interrupt */
    }
}

void setup(void)
{
    Serial.begin(BF_BAUD);
    per_frame = bf_samples_per_frame(rate_hz);
}

void loop(void)
{
    read_commands();
#if !defined(ARDUINO_ARCH_AVR) && !defined(ARDUINO_ARCH_ESP32) && !defined(ARDUINO_ARCH_RP2040)
    generic_poll();
#endif
    if (streaming) {
        send_frames();
    }
}
