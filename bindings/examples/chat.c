/*
 * A small chat client written only against banter.h.
 *
 *   chat SERVER USER PASSWORD ROOM MESSAGE [--register] [--expect TEXT]
 *
 * Logs in (or registers), finds or creates ROOM, joins it, sends MESSAGE and prints the
 * events that arrive. With --expect it exits 0 as soon as a message containing TEXT arrives
 * from someone else, 1 if none did within 15 seconds. Build:
 *
 *   cc -std=c99 -Iinclude examples/chat.c -Ltarget/debug -lbanter -o chat
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "banter.h"

static int fail(const char *what, banter_status status) {
    fprintf(stderr, "chat: %s: %s (%s)\n", what, banter_status_str(status), banter_last_error());
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: chat SERVER USER PASSWORD ROOM MESSAGE [--register] [--expect TEXT]\n");
        return 2;
    }
    const char *server = argv[1], *user = argv[2], *password = argv[3], *room_name = argv[4],
               *message = argv[5];
    int do_register = 0;
    const char *expect = NULL;
    for (int i = 6; i < argc; i++) {
        if (strcmp(argv[i], "--register") == 0) {
            do_register = 1;
        } else if (strcmp(argv[i], "--expect") == 0 && i + 1 < argc) {
            expect = argv[++i];
        }
    }
    if (banter_abi_version() != BANTER_ABI_VERSION) {
        fprintf(stderr, "chat: libbanter ABI %u, header %d\n", banter_abi_version(), BANTER_ABI_VERSION);
        return 2;
    }

    banter_config *config = banter_config_new();
    banter_status status = banter_config_set_server(config, server, strlen(server));
    if (status != BANTER_OK) return fail("server", status);
    /* A test server on loopback: accept its certificate. Real clients pin it instead with
     * banter_config_set_pinned_fingerprint(). */
    banter_config_accept_any_certificate(config);

    banter_client *client = NULL;
    status = do_register
        ? banter_register(config, user, strlen(user), password, strlen(password), &client)
        : banter_login(config, user, strlen(user), password, strlen(password), &client);
    banter_config_free(config);
    if (status != BANTER_OK) return fail("login", status);

    uint64_t room = 0;
    status = banter_client_find_room(client, room_name, strlen(room_name), &room);
    if (status != BANTER_OK) {
        status = banter_client_create_room(client, room_name, strlen(room_name), false, true, &room);
        if (status != BANTER_OK) return fail("create room", status);
    }
    status = banter_client_join(client, room);
    if (status != BANTER_OK) return fail("join", status);

    uint64_t seq = 0;
    status = banter_client_send(client, room, message, strlen(message), 0, &seq);
    if (status != BANTER_OK) return fail("send", status);
    printf("sent #%llu\n", (unsigned long long)seq);
    fflush(stdout);

    /* In a room with voice: join, speak half a second of a square wave, take what is heard,
     * mute, leave. */
    if (banter_client_voice_join(client, room) == BANTER_OK) {
        int16_t pcm[BANTER_VOICE_FRAME_SAMPLES];
        int frames_heard = 0;
        for (int f = 0; f < 25; f++) {
            for (size_t i = 0; i < BANTER_VOICE_FRAME_SAMPLES; i++) {
                pcm[i] = (int16_t)(((i / 60) % 2) ? 8000 : -8000);
            }
            status = banter_client_voice_push(client, pcm, BANTER_VOICE_FRAME_SAMPLES, f == 24);
            if (status != BANTER_OK) return fail("voice push", status);
            if (banter_client_voice_pull(client, pcm, BANTER_VOICE_FRAME_SAMPLES, 40) == BANTER_OK) frames_heard++;
        }
        status = banter_client_voice_mute(client, true);
        if (status != BANTER_OK) return fail("voice mute", status);
        status = banter_client_voice_leave(client);
        if (status != BANTER_OK) return fail("voice leave", status);
        printf("voice: %d frames heard\n", frames_heard);
        fflush(stdout);
    }

    int found = expect == NULL;
    for (int waited = 0; !found && waited < 150; waited++) {
        banter_event *event = NULL;
        status = banter_client_poll_event(client, 100, &event);
        if (status == BANTER_TIMEOUT) continue;
        if (status != BANTER_OK) return fail("poll", status);
        if (banter_event_get_type(event) == BANTER_EVENT_MESSAGE) {
            const char *text = banter_event_text(event);
            printf("#%llu <%s> %s\n", (unsigned long long)banter_event_seq(event), banter_event_sender_name(event), text);
            fflush(stdout);
            if (expect != NULL && strstr(text, expect) != NULL && strcmp(banter_event_sender_name(event), user) != 0) {
                found = 1;
            }
        }
        banter_event_free(event);
    }

    banter_history *history = NULL;
    status = banter_client_history(client, room, 0, 10, &history);
    if (status != BANTER_OK) return fail("history", status);
    printf("history: %zu entries\n", banter_history_len(history));
    banter_history_free(history);

    /* NULL and bad arguments are errors, never crashes. */
    if (banter_client_send(NULL, room, "x", 1, 0, NULL) != BANTER_NULL_ARGUMENT) return 3;
    if (banter_client_send(client, room, "\xff\xfe", 2, 0, NULL) != BANTER_INVALID_UTF8) return 3;
    banter_client_free(NULL);
    banter_event_free(NULL);

    banter_client_free(client);
    return found ? 0 : 1;
}
