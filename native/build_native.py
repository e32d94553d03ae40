"""cffi build script (API mode) of ``lanparty._native``, the C shim of the hot path.

setup.py names ``ffibuilder`` in ``cffi_modules``, so the normal package
install (``pip install -e .``) compiles it; ``python native/build_native.py``
builds it in place by hand. The C source is ``packet_io.c`` beside this file:
batch I/O on the gateway's packet socket and on the client's TAP device.
"""

from __future__ import annotations

from pathlib import Path

from cffi import FFI

NATIVE = Path(__file__).resolve().parent

CDEF = """
#define LP_MAX_BATCH ...
#define LP_VNET_HDR_BYTES ...
#define LP_DROP_CODES ...
#define LP_DROP_TRUNCATED ...
#define LP_DROP_BAD_CHECKSUM_OFFSETS ...
#define LP_DROP_UNKNOWN_GSO_TYPE ...
#define LP_DROP_ZERO_GSO_SIZE ...
#define LP_DROP_NOT_IP ...
#define LP_DROP_BAD_IP_HEADER ...
#define LP_DROP_BAD_L4_HEADER ...
#define LP_DROP_OVERSIZED_SEGMENT ...
#define LP_DROP_KERNEL_REFUSED ...
#define LP_DROP_ENCAPSULATED ...
struct lp_rx {
    char *buffer;
    uint32_t slot_bytes;
    uint32_t slot_stride;
    uint32_t slot_count;
    uint32_t frame_max;
    uint32_t out_count;
    uint32_t next;
    uint32_t count;
    uint64_t truncated;
    uint64_t segmented;
    uint64_t checksummed;
    uint64_t dropped[...];
    ...;
};
int lp_recv_batch(int fd, struct lp_rx *rx, uint32_t max_out, uint32_t *offsets,
                  uint32_t *lengths);
int lp_send_batch(int fd, const char *frames, const uint32_t *lengths, uint32_t count,
                  int *stop_errno);
int lp_complete_offload(const char *vnet, char *frame, uint32_t len, uint32_t first,
                        char *out, uint32_t stride, uint32_t max_frames, uint32_t *lengths);
int lp_tap_read_batch(int fd, char *buffer, uint32_t slot_bytes, uint32_t max_frames,
                      uint32_t *lengths, int *stop_errno);
int lp_tap_write_batch(int fd, const char *frames, const uint32_t *lengths, uint32_t count,
                       uint32_t *refused, int *stop_errno);
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
