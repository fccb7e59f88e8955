package httpd

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// Listen opens a TCP listener and, when it fails, names the setting the user
// should change: "can't listen on --http-port 8470: address already in use".
func Listen(host string, port int, setting string) (net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, ListenError(setting, port, err)
	}
	return ln, nil
}

// ListenError words a bind failure after the setting that chose the port.
func ListenError(setting string, port int, err error) error {
	reason := err.Error()
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		reason = "address already in use"
	case errors.Is(err, syscall.EACCES):
		reason = "permission denied (ports below 1024 need privileges)"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		reason = "address not available on this machine"
	}
	return fmt.Errorf("can't listen on %s %d: %s", setting, port, reason)
}
