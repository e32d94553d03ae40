"""cffi build script (API mode) of ``lanparty._native``, the C shim of the hot path.

setup.py names ``ffibuilder`` in ``cffi_modules``, so the normal package
install (``pip install -e .``) compiles it; ``python native/build_native.py``
builds it in place by hand. The C source is ``packet_io.c`` beside this file.
"""

from __future__ import annotations

from pathlib import Path

from cffi import FFI

NATIVE = Path(__file__).resolve().parent

CDEF = """
#define LP_MAX_BATCH ...
int lp_recv_batch(int fd, char *buffer, uint32_t frame_stride, uint32_t max_frames,
                  uint32_t *lengths, uint8_t *pkttypes);
int lp_send_batch(int fd, const char *frames, const uint32_t *lengths, uint32_t count,
                  int *stop_errno);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "lanparty._native",
    (NATIVE / "packet_io.c").read_text(encoding="utf-8"),
    extra_compile_args=["-Wall", "-Wextra"],
    # Without a C compiler the install still succeeds: lanparty then uses its
    # pure-Python path (PacketSocket.open(native=None)).
    optional=True,
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(NATIVE.parent), verbose=True)
