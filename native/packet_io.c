/* Batched frame I/O on an AF_PACKET socket (Linux): the C half of
 * lanparty._native, compiled by cffi in API mode (native/build_native.py).
 *
 * One system call moves a whole batch: recvmmsg() into one caller-provided
 * buffer of max_frames * frame_stride bytes, sendmmsg() from one buffer of
 * frames laid end to end. Nothing is allocated: the message headers live on
 * the stack, bounded by LP_MAX_BATCH.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* recvmmsg, sendmmsg (Python.h usually defines it already) */
#endif
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <linux/if_packet.h>

#define LP_MAX_BATCH 256

/* Receive up to max_frames frames without blocking. Frame i is copied to
 * buffer + i * frame_stride; lengths[i] is its real length on the wire
 * (larger than frame_stride when it was truncated: MSG_TRUNC) and
 * pkttypes[i] its sll_pkttype (PACKET_HOST, PACKET_OTHERHOST,
 * PACKET_OUTGOING, ...). Returns the number of frames, 0 when none is
 * waiting, or -errno. */
static int lp_recv_batch(int fd, char *buffer, uint32_t frame_stride, uint32_t max_frames,
                         uint32_t *lengths, uint8_t *pkttypes)
{
    struct mmsghdr messages[LP_MAX_BATCH];
    struct iovec vectors[LP_MAX_BATCH];
    struct sockaddr_ll addresses[LP_MAX_BATCH];
    uint32_t i;
    int count;

    if (frame_stride == 0 || max_frames == 0)
        return -EINVAL;
    if (max_frames > LP_MAX_BATCH)
        max_frames = LP_MAX_BATCH;
    for (i = 0; i < max_frames; i++) {
        vectors[i].iov_base = buffer + (size_t)i * frame_stride;
        vectors[i].iov_len = frame_stride;
        memset(&messages[i], 0, sizeof messages[i]);
        messages[i].msg_hdr.msg_name = &addresses[i];
        messages[i].msg_hdr.msg_namelen = sizeof addresses[i];
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
    }
    do {
        count = recvmmsg(fd, messages, max_frames, MSG_DONTWAIT | MSG_TRUNC, NULL);
    } while (count < 0 && errno == EINTR);
    if (count < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    for (i = 0; i < (uint32_t)count; i++) {
        lengths[i] = messages[i].msg_len;
        if ((messages[i].msg_hdr.msg_flags & MSG_TRUNC) && lengths[i] <= frame_stride)
            lengths[i] = frame_stride + 1; /* truncated, whatever the kernel reported */
        pkttypes[i] = addresses[i].sll_pkttype;
    }
    return count;
}

/* Send count frames without blocking; frame i is lengths[i] bytes, the
 * frames laid end to end in `frames`. The socket must be bound to its
 * interface (no destination address is given). Returns how many were sent.
 * A frame the kernel refuses on its own (EMSGSIZE, EINVAL) is skipped and
 * the rest still go; any other error stops the batch. *stop_errno is the
 * errno of the last refusal (0 if none): EAGAIN or ENOBUFS when the queue
 * was full, ENETDOWN when the interface went down. */
static int lp_send_batch(int fd, const char *frames, const uint32_t *lengths, uint32_t count,
                         int *stop_errno)
{
    struct mmsghdr messages[LP_MAX_BATCH];
    struct iovec vectors[LP_MAX_BATCH];
    const char *next = frames;
    uint32_t first = 0, chunk, i;
    int sent = 0, result;

    *stop_errno = 0;
    while (first < count) {
        chunk = count - first < LP_MAX_BATCH ? count - first : LP_MAX_BATCH;
        {
            const char *cursor = next;
            for (i = 0; i < chunk; i++) {
                vectors[i].iov_base = (void *)cursor;
                vectors[i].iov_len = lengths[first + i];
                cursor += lengths[first + i];
                memset(&messages[i], 0, sizeof messages[i]);
                messages[i].msg_hdr.msg_iov = &vectors[i];
                messages[i].msg_hdr.msg_iovlen = 1;
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
