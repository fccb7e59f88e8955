//go:build !linux

package turn

import (
	"errors"
	"net"

	"github.com/cxlab/cxlab/appliance/internal/udpbatch"
)

// relayPoller needs epoll: elsewhere pion reads each relayed socket itself.
type relayPoller struct{ peersErr error }

func newRelayPoller(*udpbatch.Conn, *relayTable) (*relayPoller, error) {
	return nil, errors.New("relay poller: needs Linux")
}

func (p *relayPoller) close() {}

func (p *relayPoller) flushPeers() {}

func (p *relayPoller) adopt(net.PacketConn, *relay) (net.PacketConn, bool) { return nil, false }
