#!/usr/bin/env python3
"""A chat client over libbanter with ctypes (no compiler needed).

    LIBBANTER=target/debug/libbanter.so python3 chat.py SERVER USER PASSWORD ROOM MESSAGE [--register]

Logs in, finds or creates ROOM, sends MESSAGE, prints the acknowledged room_seq and the
messages that arrive for two seconds.
"""
import ctypes
import os
import sys

lib = ctypes.CDLL(os.environ.get("LIBBANTER", "libbanter.so"))
u64 = ctypes.c_uint64
lib.banter_config_new.restype = ctypes.c_void_p
lib.banter_config_free.argtypes = [ctypes.c_void_p]
lib.banter_config_set_server.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
lib.banter_config_accept_any_certificate.argtypes = [ctypes.c_void_p]
for name in ("banter_register", "banter_login"):
    getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                   ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p)]
lib.banter_client_find_room.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(u64)]
lib.banter_client_create_room.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_bool, ctypes.c_bool, ctypes.POINTER(u64)]
lib.banter_client_join.argtypes = [ctypes.c_void_p, u64]
lib.banter_client_send.argtypes = [ctypes.c_void_p, u64, ctypes.c_char_p, ctypes.c_size_t, u64, ctypes.POINTER(u64)]
lib.banter_client_poll_event.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p)]
lib.banter_client_free.argtypes = [ctypes.c_void_p]
lib.banter_event_get_type.argtypes = [ctypes.c_void_p]
lib.banter_event_get_type.restype = ctypes.c_uint32
lib.banter_event_text.argtypes = [ctypes.c_void_p]
lib.banter_event_text.restype = ctypes.c_char_p
lib.banter_event_sender_name.argtypes = [ctypes.c_void_p]
lib.banter_event_sender_name.restype = ctypes.c_char_p
lib.banter_event_seq.argtypes = [ctypes.c_void_p]
lib.banter_event_seq.restype = u64
lib.banter_event_free.argtypes = [ctypes.c_void_p]
lib.banter_last_error.restype = ctypes.c_char_p
lib.banter_status_str.restype = ctypes.c_char_p

BANTER_OK, BANTER_TIMEOUT, BANTER_EVENT_MESSAGE = 0, 4, 1


def check(status, what):
    if status != BANTER_OK:
        sys.exit(f"chat.py: {what}: {lib.banter_status_str(status).decode()} ({lib.banter_last_error().decode()})")


def main():
    server, user, password, room_name, message = (a.encode() for a in sys.argv[1:6])
    register = "--register" in sys.argv[6:]
    config = lib.banter_config_new()
    check(lib.banter_config_set_server(config, server, len(server)), "server")
    lib.banter_config_accept_any_certificate(config)
    client = ctypes.c_void_p()
    login = lib.banter_register if register else lib.banter_login
    check(login(config, user, len(user), password, len(password), ctypes.byref(client)), "login")
    lib.banter_config_free(config)
    room = u64()
    if lib.banter_client_find_room(client, room_name, len(room_name), ctypes.byref(room)) != BANTER_OK:
        check(lib.banter_client_create_room(client, room_name, len(room_name), False, False, ctypes.byref(room)), "create")
    check(lib.banter_client_join(client, room.value), "join")
    seq = u64()
    check(lib.banter_client_send(client, room.value, message, len(message), 0, ctypes.byref(seq)), "send")
    print(f"sent #{seq.value}", flush=True)
    for _ in range(20):
        event = ctypes.c_void_p()
        status = lib.banter_client_poll_event(client, 100, ctypes.byref(event))
        if status == BANTER_TIMEOUT:
            continue
        check(status, "poll")
        if lib.banter_event_get_type(event) == BANTER_EVENT_MESSAGE:
            name = lib.banter_event_sender_name(event).decode()
            print(f"#{lib.banter_event_seq(event)} <{name}> {lib.banter_event_text(event).decode()}", flush=True)
        lib.banter_event_free(event)
    lib.banter_client_free(client)


if __name__ == "__main__":
    main()
