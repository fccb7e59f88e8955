package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// loadConn is one keep-alive HTTP/1.1 connection owned by one load worker,
// which writes each request and reads its response on its own goroutine, as
// a load tool such as wrk does. http.Transport hands every request to the
// connection's write goroutine and every response back from its read
// goroutine; on this 2-core box those hand-offs made the load generator, which
// shares the cores with cxlab and PostgreSQL, the third-largest CPU user
// during the Engagement API runs. Requests and responses are still written
// and parsed by net/http.
type loadConn struct {
	base *url.URL
	c    net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
}

// loadBase parses the URL that load connections send their paths under.
func loadBase(base string) (*url.URL, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("load connection: %s: only http is supported", base)
	}
	return u, nil
}

// post sends body as JSON to base+path and decodes the response's JSON into
// out when out is not nil.
func (l *loadConn) post(ctx context.Context, path, body string, out any) (int, error) {
	req, err := apiRequest(ctx, http.MethodPost, l.base.String()+path, body)
	if err != nil {
		return 0, err
	}
	return l.do(req, out)
}

func (l *loadConn) get(ctx context.Context, path string) (int, error) {
	req, err := apiRequest(ctx, http.MethodGet, l.base.String()+path, "")
	if err != nil {
		return 0, err
	}
	return l.do(req, nil)
}

// do sends req on the connection, dialling it first if needed; after any
// error the connection is closed and the next request dials a new one.
func (l *loadConn) do(req *http.Request, out any) (int, error) {
	code, err := l.roundTrip(req, out)
	if err != nil {
		l.close()
	}
	return code, err
}

func (l *loadConn) roundTrip(req *http.Request, out any) (int, error) {
	if l.c == nil {
		c, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(req.Context(), "tcp", l.base.Host)
		if err != nil {
			return 0, err
		}
		l.c, l.br, l.bw = c, bufio.NewReader(c), bufio.NewWriter(c)
	}
	if err := l.c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return 0, err
	}
	if err := req.Write(l.bw); err != nil {
		return 0, err
	}
	if err := l.bw.Flush(); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(l.br, req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.Close {
		defer l.close()
	}
	return resp.StatusCode, readBody(resp, out)
}

func (l *loadConn) close() {
	if l.c != nil {
		_ = l.c.Close()
		l.c = nil
	}
}
