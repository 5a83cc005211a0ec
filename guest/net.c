/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The firmware's network stack: just enough Ethernet, ARP, IPv4, ICMP echo
 * and UDP to serve the KV protocol. Frames come from the host and may be
 * anything: every field is checked against the bytes actually received
 * before it is used, and packets are read bytewise (no casts to structs), so
 * nothing depends on alignment.
 */
#include "guest.h"

#define ETH_HLEN 14u
#define ETH_P_IP 0x0800u
#define ETH_P_ARP 0x0806u

#define ARP_LEN 28u
#define ARP_REQUEST 1u
#define ARP_REPLY 2u

#define IP_HLEN 20u
#define IP_PROTO_ICMP 1u
#define IP_PROTO_UDP 17u
#define IP_FLAG_DF 0x4000u
#define IP_FRAG_MASK 0x3fffu    /* MF + fragment offset */
#define IP_TTL 64u

#define ICMP_HLEN 8u
#define ICMP_ECHO_REPLY 0u
#define ICMP_ECHO_REQUEST 8u

#define UDP_HLEN 8u

/* Where a reply's IP and UDP payloads start in net->tx. */
#define TX_IP_PAYLOAD (ETH_HLEN + IP_HLEN)
#define TX_UDP_PAYLOAD (TX_IP_PAYLOAD + UDP_HLEN)

static inline uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | p[3];
}

static inline void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Internet checksum (RFC 1071): partial sums chain, csum_fold finishes. A
 * frame is at most 1518 bytes, so 32 bits cannot overflow. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
    size_t i;

    for (i = 0; i + 1 < len; i += 2)
        sum += get_be16(p + i);
    if (len & 1)
        sum += (uint32_t)p[len - 1] << 8;
    return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static uint32_t csum_pseudo(uint32_t src, uint32_t dst, uint8_t proto,
                            uint16_t len)
{
    return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) +
           proto + len;
}

static bool mac_is_multicast(const uint8_t *mac)
{
    return mac[0] & 1;
}

static bool mac_is_broadcast(const uint8_t *mac)
{
    for (int i = 0; i < 6; i++)
        if (mac[i] != 0xff)
            return false;
    return true;
}

void net_init(struct net *net, const struct uvm_net_info *info, uint16_t port,
              struct kv *kv)
{
    const uint8_t *ip = (const uint8_t *)&info->ip;

    memset(net, 0, sizeof(*net));
    memcpy(net->mac, info->mac, sizeof(net->mac));
    net->ip = get_be32(ip);
    net->port = port;
    net->kv = kv;
}

static struct net_arp *arp_find(struct net *net, uint32_t ip)
{
    for (size_t i = 0; i < NET_ARP_ENTRIES; i++)
        if (net->arp[i].ip == ip)
            return &net->arp[i];
    return NULL;
}

/* The entry for ip, created (over the least recently used one) if needed.
 * Replies are addressed through it, so they never wait for ARP, and the
 * cache travels with the checkpoints to the backup. */
static struct net_arp *arp_learn(struct net *net, uint32_t ip, const uint8_t *mac)
{
    struct net_arp *e = arp_find(net, ip);

    if (!e) {
        e = &net->arp[0];
        for (size_t i = 1; i < NET_ARP_ENTRIES && e->ip; i++)
            if (!net->arp[i].ip || net->arp[i].last_used < e->last_used)
                e = &net->arp[i];
        e->ip = ip;
    }
    memcpy(e->mac, mac, sizeof(e->mac));
    e->last_used = ++net->clock;
    return e;
}

/* A full output queue is the host holding our frames until the backup has
 * the epoch that made them: wait for it to drain; dropping here would lose
 * a reply whose request was already executed. */
static void net_xmit(struct net *net, size_t len)
{
    int r;

    for (;;) {
        r = hc_net_tx(net->tx, len);
        if (r != -UVM_EAGAIN)
            break;
        net->stats.tx_retries++;
        hc_wait(NET_TX_RETRY_US);
    }
    if (r < 0) {
        net->stats.tx_errors++;
        guest_log("net_xmit: sending %u bytes failed: %d", (unsigned)len, r);
        return;
    }
    net->stats.tx++;
}

static void eth_header(struct net *net, const uint8_t *dst, uint16_t type)
{
    memcpy(net->tx, dst, 6);
    memcpy(net->tx + 6, net->mac, 6);
    put_be16(net->tx + 12, type);
}

static void arp_input(struct net *net, const uint8_t *a, size_t len)
{
    const uint8_t *sha = a + 8;
    uint32_t spa, tpa;
    uint16_t op;
    uint8_t *r;
    bool for_us;

    if (len < ARP_LEN) {
        net->stats.malformed++;
        return;
    }
    if (get_be16(a) != 1 || get_be16(a + 2) != ETH_P_IP || a[4] != 6 ||
        a[5] != 4) {
        net->stats.ignored++;
        return;
    }
    op = get_be16(a + 6);
    spa = get_be32(a + 14);
    tpa = get_be32(a + 24);
    if ((op != ARP_REQUEST && op != ARP_REPLY) || mac_is_multicast(sha)) {
        net->stats.malformed++;
        return;
    }

    /* RFC 826: refresh a known sender; add it only if it talks to us. */
    for_us = tpa == net->ip;
    if (spa && (for_us || arp_find(net, spa)))
        arp_learn(net, spa, sha);
    if (!for_us) {
        net->stats.ignored++;
        return;
    }
    if (op != ARP_REQUEST)
        return;                 /* a reply to us: learnt above */

    eth_header(net, sha, ETH_P_ARP);
    r = net->tx + ETH_HLEN;
    put_be16(r, 1);
    put_be16(r + 2, ETH_P_IP);
    r[4] = 6;
    r[5] = 4;
    put_be16(r + 6, ARP_REPLY);
    memcpy(r + 8, net->mac, 6);
    put_be32(r + 14, net->ip);
    memcpy(r + 18, sha, 6);
    put_be32(r + 24, spa);
    net->stats.arp_replies++;
    net_xmit(net, ETH_HLEN + ARP_LEN);
}

/* Sends net->tx + TX_IP_PAYLOAD (already filled in) to peer. */
static void ip_reply(struct net *net, const struct net_arp *peer, uint8_t proto,
                     size_t payload_len)
{
    uint8_t *ip = net->tx + ETH_HLEN;

    eth_header(net, peer->mac, ETH_P_IP);
    ip[0] = 0x45;
    ip[1] = 0;
    put_be16(ip + 2, (uint16_t)(IP_HLEN + payload_len));
    put_be16(ip + 4, net->ip_id++);
    put_be16(ip + 6, IP_FLAG_DF);
    ip[8] = IP_TTL;
    ip[9] = proto;
    put_be16(ip + 10, 0);
    put_be32(ip + 12, net->ip);
    put_be32(ip + 16, peer->ip);
    put_be16(ip + 10, csum_fold(csum_add(0, ip, IP_HLEN)));
    net_xmit(net, TX_IP_PAYLOAD + payload_len);
}

static void icmp_input(struct net *net, const struct net_arp *peer,
                       const uint8_t *p, size_t len)
{
    uint8_t *r = net->tx + TX_IP_PAYLOAD;

    if (len < ICMP_HLEN || csum_fold(csum_add(0, p, len)) != 0) {
        net->stats.malformed++;
        return;
    }
    if (p[0] != ICMP_ECHO_REQUEST || p[1] != 0) {
        net->stats.ignored++;
        return;
    }
    /* len <= frame - Ethernet - minimal IP header: it fits in tx. */
    memcpy(r, p, len);
    r[0] = ICMP_ECHO_REPLY;
    put_be16(r + 2, 0);
    put_be16(r + 2, csum_fold(csum_add(0, r, len)));
    net->stats.icmp_replies++;
    ip_reply(net, peer, IP_PROTO_ICMP, len);
}

static void udp_input(struct net *net, const struct net_arp *peer,
                      const uint8_t *u, size_t len)
{
    uint8_t *r = net->tx + TX_IP_PAYLOAD;
    uint16_t ulen, rlen;
    uint32_t sum;
    size_t n;

    if (len < UDP_HLEN) {
        net->stats.malformed++;
        return;
    }
    ulen = get_be16(u + 4);
    if (ulen < UDP_HLEN || ulen > len) {
        net->stats.malformed++;
        return;
    }
    if (get_be16(u + 6) != 0) {
        sum = csum_pseudo(peer->ip, net->ip, IP_PROTO_UDP, ulen);
        if (csum_fold(csum_add(sum, u, ulen)) != 0) {
            net->stats.malformed++;
            return;
        }
    }
    if (get_be16(u + 2) != net->port) {
        net->stats.ignored++;
        return;
    }
    net->stats.udp_rx++;

    n = kv_handle(net->kv, u + UDP_HLEN, ulen - UDP_HLEN, r + UDP_HLEN);
    if (!n)
        return;
    rlen = (uint16_t)(UDP_HLEN + n);
    put_be16(r, net->port);
    memcpy(r + 2, u, 2);
    put_be16(r + 4, rlen);
    put_be16(r + 6, 0);
    sum = csum_pseudo(net->ip, peer->ip, IP_PROTO_UDP, rlen);
    sum = csum_fold(csum_add(sum, r, rlen));
    /* 0 means "no checksum" in UDP over IPv4; its complement is sent. */
    put_be16(r + 6, sum ? (uint16_t)sum : 0xffff);
    ip_reply(net, peer, IP_PROTO_UDP, rlen);
}

static void ipv4_input(struct net *net, const uint8_t *eth_src,
                       const uint8_t *ip, size_t len)
{
    const struct net_arp *peer;
    size_t ihl, total;
    uint32_t src;

    if (len < IP_HLEN) {
        net->stats.malformed++;
        return;
    }
    ihl = (size_t)(ip[0] & 0x0f) * 4;
    total = get_be16(ip + 2);
    /* Bytes past total are Ethernet padding; options (ihl > 20) are
     * covered by the checksum and then skipped. */
    if ((ip[0] >> 4) != 4 || ihl < IP_HLEN || total < ihl || total > len ||
        csum_fold(csum_add(0, ip, ihl)) != 0) {
        net->stats.malformed++;
        return;
    }
    if (get_be32(ip + 16) != net->ip) {
        net->stats.ignored++;
        return;
    }
    if (get_be16(ip + 6) & IP_FRAG_MASK) {
        /* Every KV request fits in one datagram: no reassembly. */
        net->stats.fragments++;
        return;
    }
    src = get_be32(ip + 12);
    if (src == 0 || src == 0xffffffffu || (src >> 28) == 0xe) {
        net->stats.malformed++;
        return;
    }

    switch (ip[9]) {
    case IP_PROTO_ICMP:
        peer = arp_learn(net, src, eth_src);
        icmp_input(net, peer, ip + ihl, total - ihl);
        break;
    case IP_PROTO_UDP:
        peer = arp_learn(net, src, eth_src);
        udp_input(net, peer, ip + ihl, total - ihl);
        break;
    default:
        net->stats.ignored++;
        break;
    }
}

void net_input(struct net *net, const uint8_t *frame, size_t len)
{
    net->stats.rx++;
    if (len < ETH_HLEN || len > UVM_FRAME_MAX || mac_is_multicast(frame + 6)) {
        net->stats.malformed++;
        return;
    }
    if (memcmp(frame, net->mac, 6) != 0 && !mac_is_broadcast(frame)) {
        net->stats.ignored++;
        return;
    }
    switch (get_be16(frame + 12)) {
    case ETH_P_ARP:
        arp_input(net, frame + ETH_HLEN, len - ETH_HLEN);
        break;
    case ETH_P_IP:
        ipv4_input(net, frame + 6, frame + ETH_HLEN, len - ETH_HLEN);
        break;
    default:
        net->stats.ignored++;
        break;
    }
}
