package cli

import (
	"net"
	"strconv"

	"github.com/cxlab/cxlab/appliance/config"
)

func listenUDP(host string, port int) (net.PacketConn, error) {
	return net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
}

func redact(u string) string { return config.RedactURL(u) }
