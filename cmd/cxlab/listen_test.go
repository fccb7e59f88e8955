package main_test

import "net"

type net_listener struct {
	ln   net.Listener
	port int
}

func (n *net_listener) listen() (*net_listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &net_listener{ln: ln, port: ln.Addr().(*net.TCPAddr).Port}, nil
}

func (n *net_listener) close() { _ = n.ln.Close() }
