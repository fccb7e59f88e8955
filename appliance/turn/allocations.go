package turn

import (
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// AllocationInfo describes one live allocation, for the console.
type AllocationInfo struct {
	// ClientAddr is the client's address as the server sees it (after NAT).
	ClientAddr string `json:"client_addr"`
	// Transport is how the client reaches the server: "udp" or "tcp".
	Transport string `json:"transport"`
	// User is the quota user: the part after ':' of a REST username, else the username.
	User string `json:"user"`
	// RelayAddr is the relayed transport address handed to the client.
	RelayAddr string `json:"relay_addr"`
	// RelayTransport is "udp", or "tcp" for RFC 6062 allocations.
	RelayTransport string `json:"relay_transport"`
	// Peers are the peer IPs the allocation currently has permissions for.
	Peers []string `json:"peers"`
	// Created is when the allocation was made (appliance clock).
	Created time.Time `json:"created"`
	// BytesToPeer counts payload bytes relayed from the client to peers.
	BytesToPeer uint64 `json:"bytes_to_peer"`
	// BytesFromPeer counts payload bytes relayed from peers to the client.
	BytesFromPeer uint64 `json:"bytes_from_peer"`
	// PacketsToPeer counts packets relayed from the client to peers.
	PacketsToPeer uint64 `json:"packets_to_peer"`
	// PacketsFromPeer counts packets relayed from peers to the client.
	PacketsFromPeer uint64 `json:"packets_from_peer"`
}

type allocRecord struct {
	info  AllocationInfo
	relay *relay
}

// pendingSlot is a quota slot taken by an Allocate request between the quota
// check and the allocation's creation, so that concurrent requests of one user
// (several TCP connections) cannot overshoot the quota.
type pendingSlot struct {
	user  string
	since time.Time
}

// pendingTTL bounds how long a slot stays taken if pion never reports the
// outcome of the request.
const pendingTTL = 5 * time.Second

// allocTable tracks live allocations and per-user counts for the quota.
type allocTable struct {
	mu      sync.Mutex
	byTuple map[string]*allocRecord
	perUser map[string]int
	pending map[string]pendingSlot
}

func newAllocTable() *allocTable {
	return &allocTable{
		byTuple: make(map[string]*allocRecord),
		perUser: make(map[string]int),
		pending: make(map[string]pendingSlot),
	}
}

func tupleKey(src, dst net.Addr) string { return src.String() + "|" + dst.String() }

func transportOf(a net.Addr) string {
	if _, ok := a.(*net.TCPAddr); ok {
		return "tcp"
	}
	return "udp"
}

// reserve takes a quota slot for user on behalf of the request from src.
// quota < 0 means unlimited.
func (t *allocTable) reserve(user string, src net.Addr, quota int, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	used := t.perUser[user]
	for k, p := range t.pending {
		if now.Sub(p.since) > pendingTTL {
			delete(t.pending, k)
			continue
		}
		if p.user == user {
			used++
		}
	}
	if quota >= 0 && used >= quota {
		return false
	}
	t.pending[src.String()] = pendingSlot{user: user, since: now}
	return true
}

// release gives back a slot taken by src whose Allocate failed.
func (t *allocTable) release(src net.Addr) {
	t.mu.Lock()
	delete(t.pending, src.String())
	t.mu.Unlock()
}

func (t *allocTable) created(src, dst net.Addr, user string, relayAddr net.Addr, r *relay, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.pending, src.String())
	key := tupleKey(src, dst)
	if _, dup := t.byTuple[key]; dup {
		return
	}
	t.byTuple[key] = &allocRecord{
		info: AllocationInfo{
			ClientAddr:     src.String(),
			Transport:      transportOf(src),
			User:           user,
			RelayAddr:      relayAddr.String(),
			RelayTransport: transportOf(relayAddr),
			Created:        now,
		},
		relay: r,
	}
	t.perUser[user]++
}

func (t *allocTable) deleted(src, dst net.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := tupleKey(src, dst)
	rec, ok := t.byTuple[key]
	if !ok {
		return
	}
	delete(t.byTuple, key)
	if t.perUser[rec.info.User]--; t.perUser[rec.info.User] <= 0 {
		delete(t.perUser, rec.info.User)
	}
}

func (t *allocTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byTuple)
}

func (t *allocTable) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.byTuple)
	clear(t.perUser)
	clear(t.pending)
}

func (t *allocTable) snapshot() []AllocationInfo {
	t.mu.Lock()
	recs := make([]*allocRecord, 0, len(t.byTuple))
	for _, r := range t.byTuple {
		recs = append(recs, r)
	}
	t.mu.Unlock()
	out := make([]AllocationInfo, 0, len(recs))
	for _, rec := range recs {
		info := rec.info
		if r := rec.relay; r != nil {
			info.Peers = r.peerList()
			slices.Sort(info.Peers)
			info.BytesToPeer = r.toPeerBytes.Load()
			info.BytesFromPeer = r.fromPeerBytes.Load()
			info.PacketsToPeer = r.toPeerPackets.Load()
			info.PacketsFromPeer = r.fromPeerPackets.Load()
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b AllocationInfo) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ClientAddr, b.ClientAddr)
	})
	return out
}
