/* Batched frame I/O on an AF_PACKET socket and on a TAP device (Linux): the
 * C half of lanparty._native, compiled by cffi in API mode
 * (native/build_native.py).
 *
 * One system call moves a whole batch: recvmmsg() into buffers Python made
 * once per socket, sendmmsg() from one buffer of frames laid end to end.
 * Nothing is allocated: the message headers live on the stack, bounded by
 * LP_MAX_BATCH.
 *
 * The socket has PACKET_VNET_HDR set (packet_socket.py does it): every
 * packet read starts with a struct virtio_net_hdr, and every packet written
 * must start with one. On veth/tap-sourced traffic the header says what the
 * sending kernel left to a network card that never ran: a TCP/UDP checksum
 * holding only the pseudo-header sum (NEEDS_CSUM) and TSO/GSO super-packets
 * of up to 64 KiB. lp_complete_offload() does that work; it follows the same
 * rules as lanparty/proto/offload.py, and tests hold the two to
 * byte-identical output.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* recvmmsg, sendmmsg (Python.h usually defines it already) */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/if_packet.h>

#define LP_MAX_BATCH 256
#define LP_VNET_HDR_BYTES 10

/* Why a packet's offload metadata cannot be honoured; lp_complete_offload
 * returns -code. The numbers are OFFLOAD_DROP_CODES in offload.py. */
#define LP_DROP_TRUNCATED 1
#define LP_DROP_BAD_CHECKSUM_OFFSETS 2
#define LP_DROP_UNKNOWN_GSO_TYPE 3
#define LP_DROP_ZERO_GSO_SIZE 4
#define LP_DROP_NOT_IP 5
#define LP_DROP_BAD_IP_HEADER 6
#define LP_DROP_BAD_L4_HEADER 7
#define LP_DROP_OVERSIZED_SEGMENT 8
#define LP_DROP_KERNEL_REFUSED 9 /* recvmsg's EINVAL: no virtio_net_hdr for the GSO type */
#define LP_DROP_ENCAPSULATED 10 /* a GSO packet in a tunnel (VXLAN, GRE, ...) */
#define LP_DROP_CODES 11

/* <linux/virtio_net.h>, host byte order (the kernel's legacy virtio order). */
#define LP_F_NEEDS_CSUM 1
#define LP_GSO_NONE 0
#define LP_GSO_TCPV4 1
#define LP_GSO_TCPV6 4
#define LP_GSO_UDP_L4 5
#define LP_GSO_ECN 0x80

struct lp_vnet_hdr {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len; /* the kernel's hint of the linear length: not used */
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
};
_Static_assert(sizeof(struct lp_vnet_hdr) == LP_VNET_HDR_BYTES, "struct virtio_net_hdr is 10 bytes");

/* ------------------------------------------------------------ checksums */

/* The 16-bit words of p[0..n) summed in host order, not yet folded; an odd
 * last byte is padded with zero. A ones' complement sum is byte-order
 * independent up to a final swap (RFC 1071), which lp_fold does. */
static uint64_t lp_sum(const uint8_t *p, size_t n)
{
    uint64_t acc = 0;
    uint32_t word;
    uint16_t half;

    while (n >= 4) {
        memcpy(&word, p, 4);
        acc += word;
        p += 4;
        n -= 4;
    }
    if (n >= 2) {
        memcpy(&half, p, 2);
        acc += half;
        p += 2;
        n -= 2;
    }
    if (n) {
        uint8_t last[2] = {p[0], 0};
        memcpy(&half, last, 2);
        acc += half;
    }
    return acc;
}

/* A host-order 16-bit value as lp_sum would have summed its network-order bytes. */
static uint64_t lp_word(uint16_t value)
{
    return htons(value);
}

/* The ones' complement sum as a number (0 only if every word was 0). */
static uint16_t lp_fold(uint64_t acc)
{
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return ntohs((uint16_t)acc);
}

/* The value of an L4 checksum field; 0 goes out as 0xffff (CSUM_MANGLED_0). */
static uint16_t lp_l4_checksum(uint64_t acc)
{
    uint16_t checksum = (uint16_t)~lp_fold(acc);
    return checksum ? checksum : 0xffff;
}

static void lp_put16(uint8_t *p, uint32_t value)
{
    p[0] = (uint8_t)(value >> 8);
    p[1] = (uint8_t)value;
}

/* CRC-32C, bit by bit: only SCTP needs it, and SCTP is rare on a LAN. */
static uint32_t lp_crc32c(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xffffffffu;
    int bit;

    while (n--) {
        crc ^= *p++;
        for (bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
    }
    return ~crc;
}

/* -------------------------------------------------------- header walks */

static int lp_is_vlan_tpid(uint32_t ethertype)
{
    return ethertype == 0x8100 || ethertype == 0x88a8 || ethertype == 0x9100 ||
           ethertype == 0x9200 || ethertype == 0x9300;
}

/* IPv6 extension headers in the RFC 6564 layout (IPV6_GENERIC_EXTENSION_HEADERS). */
static int lp_is_ipv6_extension(uint32_t next_header)
{
    return next_header == 0 || next_header == 43 || next_header == 60 || next_header == 135 ||
           next_header == 139 || next_header == 140 || next_header == 253 || next_header == 254;
}

/* The ethertype after at most two VLAN tags and the offset of the network
 * header; 0 when the frame ends first. */
static int lp_network_header(const uint8_t *f, uint32_t len, uint32_t *ethertype, uint32_t *l3)
{
    uint32_t position = 12, tags = 0, type;

    for (;;) {
        if (position + 2 > len)
            return 0;
        type = (uint32_t)f[position] << 8 | f[position + 1];
        position += 2;
        if (lp_is_vlan_tpid(type) && tags < 2) {
            position += 2;
            tags++;
            continue;
        }
        *ethertype = type;
        *l3 = position;
        return 1;
    }
}

/* The protocol and offset of the header after the IPv4 header, or after the
 * IPv6 header and its extension headers; 0, or -LP_DROP_*. */
static int lp_upper_layer(const uint8_t *f, uint32_t len, uint32_t ethertype, uint32_t l3,
                          uint32_t *protocol, uint32_t *l4)
{
    uint32_t header_bytes, next_header, position, walked = 0;

    if (ethertype == 0x0800) {
        if (l3 + 20 > len)
            return -LP_DROP_TRUNCATED;
        header_bytes = (uint32_t)(f[l3] & 0x0f) * 4;
        if (f[l3] >> 4 != 4 || header_bytes < 20)
            return -LP_DROP_BAD_IP_HEADER;
        if (l3 + header_bytes > len)
            return -LP_DROP_TRUNCATED;
        *protocol = f[l3 + 9];
        *l4 = l3 + header_bytes;
        return 0;
    }
    if (l3 + 40 > len)
        return -LP_DROP_TRUNCATED;
    if (f[l3] >> 4 != 6)
        return -LP_DROP_BAD_IP_HEADER;
    next_header = f[l3 + 6];
    position = l3 + 40;
    while (lp_is_ipv6_extension(next_header)) {
        if (walked == 8)
            return -LP_DROP_BAD_IP_HEADER;
        if (position + 2 > len)
            return -LP_DROP_TRUNCATED;
        next_header = f[position];
        position += ((uint32_t)f[position + 1] + 1) * 8;
        walked++;
    }
    *protocol = next_header;
    *l4 = position;
    return 0;
}

static int lp_is_sctp_at(const uint8_t *f, uint32_t len, uint32_t start)
{
    uint32_t ethertype, l3, protocol, l4;

    if (!lp_network_header(f, len, &ethertype, &l3) || (ethertype != 0x0800 && ethertype != 0x86dd))
        return 0;
    return lp_upper_layer(f, len, ethertype, l3, &protocol, &l4) == 0 && protocol == 132 &&
           l4 == start;
}

/* ------------------------------------------------------------ offloads */

/* NEEDS_CSUM without GSO: the field at csum_start + csum_offset holds the
 * pseudo-header sum; summing from csum_start over it completes it. */
static int lp_complete_checksum(const struct lp_vnet_hdr *h, uint8_t *f, uint32_t len)
{
    uint32_t start = h->csum_start, field = start + h->csum_offset, crc;

    if (start < 14 || field + 2 > len)
        return -LP_DROP_BAD_CHECKSUM_OFFSETS;
    if (h->csum_offset == 8 && lp_is_sctp_at(f, len, start)) {
        if (start + 12 > len)
            return -LP_DROP_TRUNCATED;
        memset(f + field, 0, 4);
        crc = lp_crc32c(f + start, len - start);
        f[field] = (uint8_t)crc; /* little-endian, as the kernel's sctp_compute_cksum */
        f[field + 1] = (uint8_t)(crc >> 8);
        f[field + 2] = (uint8_t)(crc >> 16);
        f[field + 3] = (uint8_t)(crc >> 24);
        return 0;
    }
    lp_put16(f + field, lp_l4_checksum(lp_sum(f + start, len - start)));
    return 0;
}

struct lp_gso_layout {
    int ipv4, tcp;
    uint32_t protocol, l3, l4, payload_start;
};

static int lp_gso_layout(const struct lp_vnet_hdr *h, uint32_t gso_type, const uint8_t *f,
                         uint32_t len, struct lp_gso_layout *g)
{
    uint32_t ethertype, checksum_offset, data_offset;
    int result;

    if (!lp_network_header(f, len, &ethertype, &g->l3))
        return -LP_DROP_TRUNCATED;
    if (ethertype != 0x0800 && ethertype != 0x86dd)
        return -LP_DROP_NOT_IP;
    g->ipv4 = ethertype == 0x0800;
    if ((gso_type == LP_GSO_TCPV4 && !g->ipv4) || (gso_type == LP_GSO_TCPV6 && g->ipv4))
        return -LP_DROP_BAD_IP_HEADER;
    result = lp_upper_layer(f, len, ethertype, g->l3, &g->protocol, &g->l4);
    if (result)
        return result;
    g->tcp = gso_type != LP_GSO_UDP_L4;
    if (g->protocol != (g->tcp ? 6u : 17u))
        return (h->flags & LP_F_NEEDS_CSUM) && h->csum_start > g->l4 ? -LP_DROP_ENCAPSULATED
                                                                    : -LP_DROP_BAD_IP_HEADER;
    checksum_offset = g->tcp ? 16 : 6;
    if ((h->flags & LP_F_NEEDS_CSUM) &&
        (h->csum_start != g->l4 || h->csum_offset != checksum_offset))
        return -LP_DROP_BAD_CHECKSUM_OFFSETS;
    if (g->tcp) {
        if (g->l4 + 20 > len)
            return -LP_DROP_TRUNCATED;
        data_offset = f[g->l4 + 12] >> 4;
        if (data_offset < 5)
            return -LP_DROP_BAD_L4_HEADER;
        g->payload_start = g->l4 + data_offset * 4;
    } else {
        g->payload_start = g->l4 + 8;
    }
    if (g->payload_start > len)
        return -LP_DROP_TRUNCATED;
    return 0;
}

/* Segments first .. first + max_frames - 1 of a GSO packet (fewer if it has
 * fewer) into out + k * stride; lengths[k] is each one's length, and one
 * longer than stride is not written. Returns the number of segments. */
static int lp_cut(const struct lp_gso_layout *g, uint32_t size, const uint8_t *f, uint32_t len,
                  uint32_t first, uint8_t *out, uint32_t stride, uint32_t max_frames,
                  uint32_t *lengths)
{
    uint32_t l3 = g->l3, l4 = g->l4, head = g->payload_start;
    uint32_t payload = len - head, count = payload ? (payload - 1) / size + 1 : 1;
    uint32_t checksum_at = l4 + (g->tcp ? 16 : 6), ip_id = 0, sequence = 0, k;
    uint64_t pseudo;

    if (g->ipv4) {
        ip_id = (uint32_t)f[l3 + 4] << 8 | f[l3 + 5];
        pseudo = lp_sum(f + l3 + 12, 8);
    } else {
        pseudo = lp_sum(f + l3 + 8, 32);
    }
    pseudo += lp_word((uint16_t)g->protocol);
    if (g->tcp)
        sequence = (uint32_t)f[l4 + 4] << 24 | (uint32_t)f[l4 + 5] << 16 |
                   (uint32_t)f[l4 + 6] << 8 | f[l4 + 7];
    for (k = first; k < count && k - first < max_frames; k++) {
        uint64_t offset = (uint64_t)k * size;
        uint32_t part = payload - offset < size ? (uint32_t)(payload - offset) : size;
        uint32_t length = head + part, l4_length = length - l4;
        uint8_t *s = out + (size_t)(k - first) * stride;

        lengths[k - first] = length;
        if (length > stride)
            continue;
        memcpy(s, f, head);
        memcpy(s + head, f + head + offset, part);
        if (g->ipv4) {
            lp_put16(s + l3 + 2, length - l3);
            lp_put16(s + l3 + 4, (ip_id + k) & 0xffff);
            lp_put16(s + l3 + 10, 0);
            lp_put16(s + l3 + 10, (uint16_t)~lp_fold(lp_sum(s + l3, l4 - l3)));
        } else {
            lp_put16(s + l3 + 4, length - l3 - 40);
        }
        if (g->tcp) {
            uint32_t seq = (uint32_t)(sequence + offset);
            s[l4 + 4] = (uint8_t)(seq >> 24);
            s[l4 + 5] = (uint8_t)(seq >> 16);
            s[l4 + 6] = (uint8_t)(seq >> 8);
            s[l4 + 7] = (uint8_t)seq;
            if (k)
                s[l4 + 13] &= (uint8_t)~0x80; /* CWR on the first segment only */
            if (k != count - 1)
                s[l4 + 13] &= (uint8_t)~0x09; /* FIN and PSH on the last one only */
        } else {
            lp_put16(s + l4 + 4, l4_length);
        }
        lp_put16(s + checksum_at, 0);
        lp_put16(s + checksum_at,
                 lp_l4_checksum(pseudo + lp_word((uint16_t)l4_length) + lp_sum(s + l4, l4_length)));
    }
    return (int)count;
}

/* Complete one received packet's offloads (see offload.py for the rules).
 * vnet: its 10-byte virtio_net_hdr; frame/len: the frame after it.
 * Returns:
 *   -LP_DROP_*  the metadata cannot be honoured: drop the packet;
 *   0           the frame is complete as it is (a checksum was completed in
 *               place if it needed one);
 *   n > 0       a GSO packet of n segments: segments first .. first +
 *               max_frames - 1 (those that exist) are written to out +
 *               (k - first) * stride, their lengths to lengths[k - first];
 *               one longer than stride is only measured. frame is not
 *               changed, so a caller short of room calls again with a
 *               later first. */
static int lp_complete_offload(const char *vnet, char *frame, uint32_t len, uint32_t first,
                               char *out, uint32_t stride, uint32_t max_frames, uint32_t *lengths)
{
    struct lp_vnet_hdr h;
    struct lp_gso_layout g;
    uint32_t gso_type, payload;
    uint8_t *f = (uint8_t *)frame;
    int result;

    memcpy(&h, vnet, sizeof h);
    gso_type = h.gso_type & (uint32_t)~LP_GSO_ECN;
    if (gso_type == LP_GSO_NONE)
        return h.flags & LP_F_NEEDS_CSUM ? lp_complete_checksum(&h, f, len) : 0;
    if (gso_type != LP_GSO_TCPV4 && gso_type != LP_GSO_TCPV6 && gso_type != LP_GSO_UDP_L4)
        return -LP_DROP_UNKNOWN_GSO_TYPE;
    if (h.gso_size == 0)
        return -LP_DROP_ZERO_GSO_SIZE;
    result = lp_gso_layout(&h, gso_type, f, len, &g);
    if (result)
        return result;
    payload = len - g.payload_start;
    if ((uint64_t)g.payload_start + (payload < h.gso_size ? payload : h.gso_size) - g.l3 > 0xffff)
        return -LP_DROP_OVERSIZED_SEGMENT;
    return lp_cut(&g, h.gso_size, f, len, first, (uint8_t *)out, stride, max_frames, lengths);
}

/* ------------------------------------------------------------- receive */

/* Receive state of one socket, made zeroed by Python, which sets the first
 * six fields. The buffer holds slot_count receive slots of slot_stride
 * bytes (a packet is read into the first slot_bytes of its slot), then
 * out_count output slots of frame_max bytes for segments.
 *
 * Why this layout: a GSO packet is up to 64 KiB and must be read whole, so
 * each receive slot has room for one (4 MiB for 64 slots, allocated without
 * being cleared: the kernel only touches the pages a packet fills). A frame
 * that needs no segmentation is handed to Python where it landed, with no
 * copy: the common case (a real NIC's complete frames) does no more work
 * here than before VNET_HDR. Segments go to the output slots. A GSO packet
 * may have more segments than a batch has room for (64 KiB at a small MSS),
 * so the messages of one recvmmsg are handed out over as many calls as they
 * take: next/count/segment say where the previous call stopped, and no
 * recvmmsg happens until all are out (Python sees next < count and does not
 * wait for the socket meanwhile). Nothing is ever lost for want of room, and
 * no packet is copied to be kept. */
struct lp_rx {
    char *buffer;
    uint32_t slot_bytes;
    uint32_t slot_stride;
    uint32_t slot_count;
    uint32_t frame_max;
    uint32_t out_count;
    /* where the previous call stopped in the last recvmmsg's messages */
    uint32_t next;
    uint32_t count;
    uint32_t segment;
    /* counters */
    uint64_t truncated;   /* longer than frame_max (whole, or a segment) or than a slot */
    uint64_t segmented;   /* GSO packets cut into segments */
    uint64_t checksummed; /* packets whose checksum was completed */
    uint64_t dropped[LP_DROP_CODES]; /* packets dropped, by LP_DROP_* code */
    /* the last recvmmsg's messages */
    uint32_t lengths[LP_MAX_BATCH];
    uint8_t pkttypes[LP_MAX_BATCH];
    uint8_t cut[LP_MAX_BATCH];
    struct lp_vnet_hdr headers[LP_MAX_BATCH];
};

static int lp_rx_pending(const struct lp_rx *rx)
{
    return rx->next < rx->count;
}

/* One recvmmsg of up to n packets into the receive slots. EINVAL means the
 * kernel dropped a packet whose GSO type a virtio_net_hdr cannot express
 * (packet_rcv_vnet); when it happens after the first message of a call the
 * kernel reports it on the next call instead. Either way it is one lost
 * packet: counted, and the receive goes on. */
static int lp_receive(int fd, struct lp_rx *rx, uint32_t n)
{
    struct mmsghdr messages[LP_MAX_BATCH];
    struct iovec vectors[LP_MAX_BATCH][2];
    struct sockaddr_ll addresses[LP_MAX_BATCH];
    uint32_t i, refused = 0;
    int count;

    for (i = 0; i < n; i++) {
        vectors[i][0].iov_base = &rx->headers[i];
        vectors[i][0].iov_len = LP_VNET_HDR_BYTES;
        vectors[i][1].iov_base = rx->buffer + (size_t)i * rx->slot_stride;
        vectors[i][1].iov_len = rx->slot_bytes;
        memset(&messages[i], 0, sizeof messages[i]);
        messages[i].msg_hdr.msg_name = &addresses[i];
        messages[i].msg_hdr.msg_namelen = sizeof addresses[i];
        messages[i].msg_hdr.msg_iov = vectors[i];
        messages[i].msg_hdr.msg_iovlen = 2;
    }
    for (;;) {
        count = recvmmsg(fd, messages, n, MSG_DONTWAIT | MSG_TRUNC, NULL);
        if (count >= 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno == EINVAL && refused < n) {
            rx->dropped[LP_DROP_KERNEL_REFUSED]++;
            refused++;
            continue;
        }
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    }
    for (i = 0; i < (uint32_t)count; i++) {
        uint32_t total = messages[i].msg_len; /* with MSG_TRUNC: the real length */
        rx->lengths[i] = total > LP_VNET_HDR_BYTES ? total - LP_VNET_HDR_BYTES : 0;
        rx->cut[i] = (messages[i].msg_hdr.msg_flags & MSG_TRUNC) || total < LP_VNET_HDR_BYTES ||
                     rx->lengths[i] > rx->slot_bytes;
        rx->pkttypes[i] = addresses[i].sll_pkttype;
    }
    return count;
}

/* Hand out up to max_out complete frames: frame j is lengths[j] bytes at
 * rx->buffer + offsets[j]. Frames the socket sent itself (PACKET_OUTGOING),
 * truncated ones and unusable offload packets are counted in rx and not
 * handed out. Receives (one recvmmsg, without blocking) only when the last
 * one's messages are all out. Returns the number of frames (0 when nothing
 * was waiting) or -errno. */
static int lp_recv_batch(int fd, struct lp_rx *rx, uint32_t max_out, uint32_t *offsets,
                         uint32_t *lengths)
{
    uint32_t produced = 0, out_start;
    int received;

    if (rx->slot_bytes == 0 || rx->slot_stride < rx->slot_bytes || rx->slot_count == 0 ||
        rx->slot_count > LP_MAX_BATCH || rx->frame_max == 0 || max_out == 0)
        return -EINVAL;
    if (max_out > rx->out_count)
        max_out = rx->out_count;
    out_start = rx->slot_count * rx->slot_stride;
    if (!lp_rx_pending(rx)) {
        received = lp_receive(fd, rx, max_out < rx->slot_count ? max_out : rx->slot_count);
        if (received <= 0)
            return received;
        rx->next = 0;
        rx->count = (uint32_t)received;
        rx->segment = 0;
    }
    while (lp_rx_pending(rx) && produced < max_out) {
        uint32_t i = rx->next, length = rx->lengths[i], room = max_out - produced;
        uint32_t slot = i * rx->slot_stride, k, written;
        const struct lp_vnet_hdr *h = &rx->headers[i];
        int result;

        if (rx->pkttypes[i] == PACKET_OUTGOING) {
            rx->next++;
            continue;
        }
        if (rx->cut[i]) {
            rx->truncated++;
            rx->next++;
            continue;
        }
        if (h->flags & LP_F_NEEDS_CSUM || h->gso_type) {
            result = lp_complete_offload((const char *)h, rx->buffer + slot, length, rx->segment,
                                         rx->buffer + out_start + (size_t)produced * rx->frame_max,
                                         rx->frame_max, room, lengths + produced);
            if (result < 0) {
                rx->dropped[-result]++;
                rx->next++;
                continue;
            }
            if (result > 0) {
                /* Segments were written to output slots base.. in order; the
                 * ones too long to keep are skipped, the rest moved up. */
                uint32_t base = produced;
                written = (uint32_t)result - rx->segment < room ? (uint32_t)result - rx->segment
                                                                : room;
                for (k = 0; k < written; k++) {
                    uint32_t segment_length = lengths[base + k];
                    if (segment_length > rx->frame_max) {
                        rx->truncated++;
                        continue;
                    }
                    offsets[produced] = out_start + (base + k) * rx->frame_max;
                    lengths[produced++] = segment_length;
                }
                rx->segment += written;
                if (rx->segment >= (uint32_t)result) {
                    rx->segmented++;
                    rx->segment = 0;
                    rx->next++;
                }
                continue;
            }
            rx->checksummed++;
        }
        if (length > rx->frame_max) {
            rx->truncated++;
        } else {
            offsets[produced] = slot;
            lengths[produced++] = length;
        }
        rx->next++;
    }
    return (int)produced;
}

/* ---------------------------------------------------------------- send */

/* Every packet written to the socket starts with a virtio_net_hdr: this
 * one asks for nothing (no checksum, no segmentation). */
static const struct lp_vnet_hdr lp_no_offload;

/* Send count frames without blocking; frame i is lengths[i] bytes, the
 * frames laid end to end in `frames`, each sent behind lp_no_offload (a
 * second iovec: the frame is not copied). The socket must be bound to its
 * interface (no destination address is given). Returns how many were sent.
 * A frame the kernel refuses on its own (EMSGSIZE, EINVAL) is skipped and
 * the rest still go; any other error stops the batch. *stop_errno is the
 * errno of the last refusal (0 if none): EAGAIN or ENOBUFS when the queue
 * was full, ENETDOWN when the interface went down. */
static int lp_send_batch(int fd, const char *frames, const uint32_t *lengths, uint32_t count,
                         int *stop_errno)
{
    struct mmsghdr messages[LP_MAX_BATCH];
    struct iovec vectors[LP_MAX_BATCH][2];
    const char *next = frames;
    uint32_t first = 0, chunk, i;
    int sent = 0, result;

    *stop_errno = 0;
    while (first < count) {
        chunk = count - first < LP_MAX_BATCH ? count - first : LP_MAX_BATCH;
        {
            const char *cursor = next;
            for (i = 0; i < chunk; i++) {
                vectors[i][0].iov_base = (void *)&lp_no_offload;
                vectors[i][0].iov_len = LP_VNET_HDR_BYTES;
                vectors[i][1].iov_base = (void *)cursor;
                vectors[i][1].iov_len = lengths[first + i];
                cursor += lengths[first + i];
                memset(&messages[i], 0, sizeof messages[i]);
                messages[i].msg_hdr.msg_iov = vectors[i];
                messages[i].msg_hdr.msg_iovlen = 2;
            }
        }
        result = sendmmsg(fd, messages, chunk, MSG_DONTWAIT);
        if (result < 0) {
            if (errno == EINTR)
                continue;
            *stop_errno = errno;
            if (errno != EMSGSIZE && errno != EINVAL)
                break;
            result = 1; /* skip the frame the kernel refused, keep going */
        } else {
            sent += result;
        }
        for (i = 0; i < (uint32_t)result; i++)
            next += lengths[first + i];
        first += (uint32_t)result;
    }
    return sent;
}

/* ----------------------------------------------------------------- TAP */

/* The client's TAP device (/dev/net/tun, IFF_TAP | IFF_NO_PI, non-blocking):
 * every read() hands out one whole Ethernet frame, every write() takes one.
 * There is no system call for several frames at once on a tun fd, so these
 * two only save Python its per-frame work: one call from Python per batch,
 * then read()/write() in a loop here. */

/* Read up to max_frames frames without blocking: frame j lands in
 * buffer + j * slot_bytes, its length in lengths[j]. A read that fills its
 * whole slot was cut (the kernel copies what fits and drops the rest), so
 * Python makes slots one byte longer than the longest frame it keeps and
 * drops a frame whose length is slot_bytes. An empty read hands out nothing
 * (but counts against max_frames). Stops at max_frames or when nothing is
 * waiting (EAGAIN). Returns the number of frames; *stop_errno is 0, or the
 * errno of a read that failed otherwise (EBADFD: the device went away; the
 * frames read before it are still handed out). */
static int lp_tap_read_batch(int fd, char *buffer, uint32_t slot_bytes, uint32_t max_frames,
                             uint32_t *lengths, int *stop_errno)
{
    uint32_t produced = 0, attempt;
    ssize_t got;

    *stop_errno = 0;
    if (slot_bytes == 0 || max_frames > INT32_MAX) {
        *stop_errno = EINVAL;
        return 0;
    }
    attempt = 0;
    while (attempt < max_frames) {
        got = read(fd, buffer + (size_t)produced * slot_bytes, slot_bytes);
        if (got < 0) {
            if (errno == EINTR)
                continue; /* nothing was read: try again */
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                *stop_errno = errno;
            break;
        }
        attempt++;
        if (got > 0)
            lengths[produced++] = (uint32_t)got;
    }
    return (int)produced;
}

/* Write count frames without blocking, one write() each; frame i is
 * lengths[i] bytes, the frames laid end to end in `frames`. A frame the
 * kernel refuses by itself (EINVAL: shorter than an Ethernet header;
 * EMSGSIZE) is skipped and counted in *refused, and the next ones still go.
 * Any other error stops the batch: *stop_errno says which (EAGAIN or
 * ENOBUFS: no room right now, the caller drops the rest; EIO: the device is
 * down; EBADFD: it went away). Returns how many were written; the frame that
 * failed is count - written - *refused frames from the end (0 when all were
 * tried). */
static int lp_tap_write_batch(int fd, const char *frames, const uint32_t *lengths, uint32_t count,
                              uint32_t *refused, int *stop_errno)
{
    const char *cursor = frames;
    uint32_t i;
    int written = 0;
    ssize_t result;

    *refused = 0;
    *stop_errno = 0;
    if (count > INT32_MAX) {
        *stop_errno = EINVAL;
        return 0;
    }
    i = 0;
    while (i < count) {
        result = write(fd, cursor, lengths[i]);
        if (result < 0) {
            if (errno == EINTR)
                continue; /* nothing was written: the same frame again */
            if (errno != EINVAL && errno != EMSGSIZE) {
                *stop_errno = errno;
                break;
            }
            (*refused)++;
        } else {
            written++;
        }
        cursor += lengths[i++];
    }
    return written;
}
