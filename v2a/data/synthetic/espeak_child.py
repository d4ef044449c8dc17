"""One espeak-ng synthesis in a fresh process (standard library only, started with ``python -I -S``).

espeak-ng carries state from one utterance to the next (the same text spoken twice in one process comes
out a few hundred samples apart), so each utterance gets a pristine library: the output then depends on
the request alone. Reads a JSON request on stdin; writes one JSON line (sample rate, word and phoneme
events) followed by the raw little-endian int16 samples on stdout. Exit code 3: library missing.
"""

import ctypes
import ctypes.util
import json
import sys

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
EVENT_LIST_TERMINATED, EVENT_WORD, EVENT_PHONEME = 0, 1, 7
PARAM_RATE, PARAM_PITCH = 1, 3
POS_CHARACTER = 1
LIBRARY_NAMES = ("libespeak-ng.so.1", "libespeak-ng.so", "libespeak-ng.dylib")


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    # espeak_EVENT from speak_lib.h
    _fields_ = [
        ("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
        ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p), ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


def _load() -> ctypes.CDLL | None:
    for name in (*LIBRARY_NAMES, ctypes.util.find_library("espeak-ng")):
        if name:
            try:
                return ctypes.CDLL(name)
            except OSError:
                continue
    return None


def main() -> int:
    request = json.loads(sys.stdin.read())
    lib = _load()
    if lib is None:
        sys.stderr.write("espeak-ng's C library (libespeak-ng.so.1) was not found\n")
        return 3
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    sample_rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, None, INITIALIZE_PHONEME_EVENTS)
    if sample_rate <= 0:
        sys.stderr.write(f"espeak_Initialize failed ({sample_rate}): is espeak-ng-data installed?\n")
        return 4
    pcm = bytearray()
    events = []

    def on_synth(wav, count, event_list):
        if count > 0:
            pcm.extend(ctypes.string_at(wav, 2 * count))
        i = 0
        while event_list[i].type != EVENT_LIST_TERMINATED:
            e = event_list[i]
            if e.type in (EVENT_WORD, EVENT_PHONEME):
                symbol = bytes(e.id.string).split(b"\0")[0].decode("ascii", "replace") if e.type == EVENT_PHONEME else ""
                events.append([e.type, e.text_position, e.length, e.sample, symbol])
            i += 1
        return 0

    callback = _CALLBACK(on_synth)  # kept referenced while the library may call it
    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(request["voice"].encode()) != 0:
        sys.stderr.write(f"espeak-ng has no voice named {request['voice']!r}\n")
        return 5
    lib.espeak_SetParameter(PARAM_RATE, int(request["rate"]), 0)
    lib.espeak_SetParameter(PARAM_PITCH, int(request["pitch"]), 0)
    text = request["text"].encode("utf-8")
    status = lib.espeak_Synth(text, len(text) + 1, 0, POS_CHARACTER, 0, 0, None, None)
    if status != 0:
        sys.stderr.write(f"espeak_Synth failed with status {status}\n")
        return 6
    sys.stdout.buffer.write(json.dumps({"sample_rate": sample_rate, "events": events}).encode() + b"\n")
    sys.stdout.buffer.write(bytes(pcm))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
