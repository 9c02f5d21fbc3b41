/*
 * Running a community from C: invites, contacts, files with progress, and moderation.
 *
 *   manage SERVER PASSWORD FILE
 *
 * Registers two users, "owner" and "guest". The owner makes a private room and an invite
 * code; the guest joins with it and asks the owner to be friends. The owner shares FILE
 * (a progress line on stderr), the guest fetches it back as FILE.copy, and the owner makes
 * the guest a moderator and a member again, kicks, bans and unbans them. Each step prints
 * one line on stdout. Build (see README.md in this directory):
 *
 *   cc -std=c99 examples/manage.c $(pkg-config --cflags --libs banter) -o manage
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "banter.h"

static int fail(const char *what, banter_status status) {
    fprintf(stderr, "manage: %s: %s (%s)\n", what, banter_status_str(status), banter_last_error());
    return 2;
}

/* A progress callback: runs on the thread that called upload or download. */
static void show_progress(void *what, uint64_t done, uint64_t total) {
    fprintf(stderr, "\r%s %" PRIu64 "/%" PRIu64, (const char *)what, done, total);
    if (done == total) fputc('\n', stderr);
}

static banter_client *sign_up(const char *server, const char *user, const char *password) {
    banter_config *config = banter_config_new();
    banter_config_set_server(config, server, strlen(server));
    /* A test server on loopback; real clients pin its certificate instead. */
    banter_config_accept_any_certificate(config);
    banter_client *client = NULL;
    banter_status status =
        banter_register(config, user, strlen(user), password, strlen(password), &client);
    banter_config_free(config);
    if (status != BANTER_OK) fail(user, status);
    return client;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: manage SERVER PASSWORD FILE\n");
        return 2;
    }
    const char *server = argv[1], *password = argv[2], *file = argv[3];
    banter_client *owner = sign_up(server, "owner", password);
    banter_client *guest = sign_up(server, "guest", password);
    if (owner == NULL || guest == NULL) return 2;
    banter_status status;

    /* Invites: a private room, a one-use code, and the guest in. */
    uint64_t room = 0;
    status = banter_client_create_room(owner, "backstage", 9, true, false, &room);
    if (status != BANTER_OK) return fail("create room", status);
    char code[BANTER_INVITE_CODE_CAPACITY];
    status = banter_client_invite_create(owner, room, 1, 3600, code, sizeof code);
    if (status != BANTER_OK) return fail("invite", status);
    uint64_t joined = 0;
    status = banter_client_invite_use(guest, code, strlen(code), &joined);
    if (status != BANTER_OK) return fail("invite use", status);
    printf("guest joined room %" PRIu64 " with an invite\n", joined);

    /* Contacts: the guest asks; the owner sees the request. */
    status = banter_client_contact(guest, "owner", 5, BANTER_CONTACT_REQUEST);
    if (status != BANTER_OK) return fail("friend request", status);
    banter_contact contacts[8];
    size_t count = 0;
    status = banter_client_contacts(owner, contacts, 8, &count);
    if (status != BANTER_OK) return fail("contacts", status);
    for (size_t i = 0; i < count && i < 8; i++) {
        printf("contact %s %s\n", contacts[i].username,
               contacts[i].state == BANTER_CONTACT_INCOMING ? "asks to be friends" : "other");
    }
    uint64_t guest_id = count > 0 ? contacts[0].user : 0;

    /* Files, with progress. */
    uint64_t seq = 0;
    status = banter_client_upload(owner, room, file, strlen(file), "", 0, show_progress,
                                  (void *)"upload", &seq);
    if (status != BANTER_OK) return fail("upload", status);
    printf("shared at #%" PRIu64 "\n", seq);
    char copy[4096];
    snprintf(copy, sizeof copy, "%s.copy", file);
    status = banter_client_download(guest, room, seq, copy, strlen(copy), show_progress,
                                    (void *)"download");
    if (status != BANTER_OK) return fail("download", status);
    printf("fetched into %s\n", copy);

    /* Moderation of the guest, by id. */
    status = banter_client_set_role(owner, room, guest_id, BANTER_ROLE_MODERATOR);
    if (status != BANTER_OK) return fail("role", status);
    status = banter_client_set_role(owner, room, guest_id, BANTER_ROLE_MEMBER);
    if (status != BANTER_OK) return fail("role", status);
    status = banter_client_kick(owner, room, guest_id, "a test", 6);
    if (status != BANTER_OK) return fail("kick", status);
    status = banter_client_room_add(owner, room, "guest", 5);
    if (status != BANTER_OK) return fail("add", status);
    status = banter_client_ban(owner, room, guest_id, "", 0, 60);
    if (status != BANTER_OK) return fail("ban", status);
    if (banter_client_join(guest, room) != BANTER_SERVER_ERROR) return 3;
    status = banter_client_unban(owner, room, guest_id);
    if (status != BANTER_OK) return fail("unban", status);
    printf("moderated: role, kick, add, ban, unban\n");

    banter_client_free(guest);
    banter_client_free(owner);
    return 0;
}
