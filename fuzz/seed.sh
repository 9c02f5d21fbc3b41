#!/bin/sh
# Seeds the fuzz corpora from the golden vectors in spec/vectors/ (issue 7): every frame
# vector and invalid frame for decode_frame, the SETTINGS bodies for settings, every voice
# datagram for voice_datagram, every frame as a request on an authenticated (00) and a fresh
# (01) connection for requests. libFuzzer starts from these instead of from nothing.
# Usage: fuzz/seed.sh   (from anywhere; writes fuzz/corpus/<target>/vector-N)
set -eu
cd "$(dirname "$0")"
seed() { # seed TARGET FILE [PREFIX]: one corpus file per `hex:` line of FILE
    mkdir -p "corpus/$1"
    n=0
    grep '^hex:' "../spec/vectors/$2" | sed 's/^hex: *//' | while read -r hex; do
        n=$((n + 1))
        out="corpus/$1/vector-${2%.vectors}-$n"
        if [ -n "${3:-}" ]; then
            # Strip the frame header (type 0x01, varint length) to get a SETTINGS body.
            case "$hex" in "$3"*) ;; *) continue ;; esac
            hex=$(echo "$hex" | cut -d' ' -f3-)
        fi
        echo "$hex" | xxd -r -p > "$out"
    done
}
seed decode_frame frames.vectors
seed decode_frame invalid.vectors
seed voice_datagram datagrams.vectors
seed voice_datagram tunnel.vectors
seed settings frames.vectors "01 "
# requests: the first byte picks the connection (even: authenticated).
mkdir -p corpus/requests
n=0
grep '^hex:' ../spec/vectors/frames.vectors | sed 's/^hex: *//' | while read -r hex; do
    n=$((n + 1))
    echo "00 $hex" | xxd -r -p > "corpus/requests/vector-authed-$n"
    echo "01 $hex" | xxd -r -p > "corpus/requests/vector-fresh-$n"
done
echo "seeded: $(ls corpus/decode_frame | grep -c vector) frames, $(ls corpus/voice_datagram | grep -c vector) datagrams, $(ls corpus/settings | grep -c vector) SETTINGS bodies, $(ls corpus/requests | grep -c vector) requests"
