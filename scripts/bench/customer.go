package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/cxlab/cxlab/appliance/media"
)

// customers is a SIP user agent in the bench process that registers customer
// numbers with Voice (digest user = the number, password "customer") and
// answers every call to them with its own G.711 RTP: a 440 Hz tone out, and
// an analysis of what it hears. Voice's B2BUA passes SDP across unchanged,
// so the RTP flows between the gateway and this process directly and cxlab's
// CPU is the gateway's media plus Voice's signalling only.
type customers struct {
	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	cli     *sipgo.Client
	conn    net.PacketConn
	voice   string
	contact sip.ContactHeader
	dialogs *sipgo.DialogServerCache
	tone    [][]byte // one second of 440 Hz PCMU frames (a whole number of periods)
	wg      sync.WaitGroup
	stopCh  chan struct{}

	mu    sync.Mutex
	calls map[string]*customerCall // by SIP Call-ID
}

// customerCall is one answered call's media.
type customerCall struct {
	conn   *net.UDPConn
	remote netip.AddrPort
	heard  *media.Analyzer
	seq    uint16
	ts     uint32
	ssrc   uint32
	live   bool // ACKed: media flows
}

// customerPassword is Voice's digest password for customer numbers.
const customerPassword = "customer"

// startCustomers serves SIP on a loopback UDP port; voice is Voice's SIP
// host:port.
func startCustomers(ctx context.Context, voice string) (*customers, error) {
	quiet := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)))
	if err != nil {
		return nil, fmt.Errorf("customer ua: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	if err != nil {
		_ = ua.Close()
		return nil, fmt.Errorf("customer server: %w", err)
	}
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		_ = ua.Close()
		return nil, fmt.Errorf("customer sip listen: %w", err)
	}
	addr := conn.LocalAddr().(*net.UDPAddr)
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientConnectionAddr(addr.String()),
		sipgo.WithClientLogger(quiet))
	if err != nil {
		_ = conn.Close()
		_ = ua.Close()
		return nil, fmt.Errorf("customer client: %w", err)
	}
	c := &customers{ua: ua, srv: srv, cli: cli, conn: conn, voice: voice, stopCh: make(chan struct{}),
		calls: map[string]*customerCall{}}
	c.contact = sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: addr.Port}}
	c.dialogs = sipgo.NewDialogServerCache(cli, c.contact)
	src := media.NewSine(440, -20, time.Second)
	for range 50 {
		pcm := make([]int16, media.FrameSamples)
		media.ReadFrame(src, pcm)
		c.tone = append(c.tone, media.EncodeG711(media.PCMU, pcm, nil))
	}
	srv.OnInvite(c.onInvite)
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = c.dialogs.ReadAck(req, tx)
		c.mu.Lock()
		if cc := c.calls[req.CallID().Value()]; cc != nil {
			cc.live = true
		}
		c.mu.Unlock()
	})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := c.dialogs.ReadBye(req, tx); err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "No Dialog", nil))
		}
		c.hangup(req.CallID().Value())
	})
	srv.OnInfo(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		_ = srv.ServeUDP(conn)
	}()
	go c.pace()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		if sc, err := ua.TransportLayer().GetConnection("udp", addr.String()); err == nil {
			_, _ = sc.TryClose()
			return c, nil
		}
		select {
		case <-wctx.Done():
			c.close()
			return nil, errors.New("customer sip listener not serving")
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// register binds number to this UA with Voice.
func (c *customers) register(ctx context.Context, number string) error {
	aor := sip.Uri{Scheme: "sip", User: number, Host: "customers.cxlab.local"}
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: aor.Host})
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor})
	ct := c.contact
	ct.Address.User = number
	req.AppendHeader(&ct)
	req.AppendHeader(sip.NewHeader("Expires", "3600"))
	req.SetDestination(c.voice)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := c.cli.Do(rctx, req)
	if err != nil {
		return fmt.Errorf("register %s: %w", number, err)
	}
	if res.StatusCode == 401 {
		res, err = c.cli.DoDigestAuth(rctx, req, res, sipgo.DigestAuth{Username: number, Password: customerPassword})
		if err != nil {
			return fmt.Errorf("register %s: %w", number, err)
		}
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("register %s: %d %s", number, res.StatusCode, res.Reason)
	}
	return nil
}

// onInvite answers at once with PCMU toward the offer's address.
func (c *customers) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil && to.Params.Has("tag") {
		// Re-INVITE (hold/resume): keep the media, mirror the direction.
		_ = tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
		return
	}
	dss, err := c.dialogs.ReadInvite(req, tx)
	if err != nil {
		return
	}
	remote, err := offerAddr(req.Body())
	if err != nil {
		_ = dss.Respond(488, "Not Acceptable Here", nil)
		return
	}
	rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		_ = dss.Respond(503, "Service Unavailable", nil)
		return
	}
	cc := &customerCall{conn: rc, remote: remote, heard: media.NewAnalyzer(media.AnalyzerConfig{}),
		ssrc: uint32(time.Now().UnixNano()), seq: 1}
	c.mu.Lock()
	c.calls[req.CallID().Value()] = cc
	c.mu.Unlock()
	c.wg.Add(1)
	go c.receive(cc)
	port := rc.LocalAddr().(*net.UDPAddr).Port
	sdp := fmt.Sprintf("v=0\r\no=bench-customer 1 1 IN IP4 127.0.0.1\r\ns=customer\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"+
		"a=ptime:20\r\na=sendrecv\r\n", port)
	if err := dss.RespondSDP([]byte(sdp)); err != nil {
		c.hangup(req.CallID().Value())
	}
}

// offerAddr reads the audio address of a SIP SDP offer (it must offer PCMU).
func offerAddr(body []byte) (netip.AddrPort, error) {
	var ip string
	port, pcmu := 0, false
	for _, l := range strings.Split(string(body), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "c=IN IP4 "):
			ip = strings.TrimPrefix(l, "c=IN IP4 ")
		case strings.HasPrefix(l, "m=audio "):
			f := strings.Fields(l)
			if len(f) < 4 {
				return netip.AddrPort{}, errors.New("bad m=audio")
			}
			port, _ = strconv.Atoi(f[1])
			for _, pt := range f[3:] {
				pcmu = pcmu || pt == "0"
			}
		}
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || port <= 0 || !pcmu {
		return netip.AddrPort{}, fmt.Errorf("offer without PCMU audio address (%q:%d)", ip, port)
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

// receive decodes and analyses what the caller sends.
func (c *customers) receive(cc *customerCall) {
	defer c.wg.Done()
	buf := make([]byte, 1500)
	pcm := make([]int16, media.MaxOpusFrameSamples)
	for {
		n, err := cc.conn.Read(buf)
		if err != nil {
			return
		}
		if n < 12 || buf[0]>>6 != 2 || buf[1]&0x7f != 0 {
			continue // not PCMU audio (events are not analysed here)
		}
		off := 12 + 4*int(buf[0]&0x0f)
		if buf[0]&0x10 != 0 && n >= off+4 {
			off += 4 + 4*int(binary.BigEndian.Uint16(buf[off+2:]))
		}
		if off > n {
			continue
		}
		cc.heard.Write(media.DecodeG711(media.PCMU, buf[off:n], pcm))
	}
}

// pace sends one 20 ms tone frame to every live call, from one goroutine for
// all calls so the bench process stays light.
func (c *customers) pace() {
	defer c.wg.Done()
	t := time.NewTicker(media.FrameDuration)
	defer t.Stop()
	pkt := make([]byte, 12+media.FrameSamples)
	var live []*customerCall
	for frame := 0; ; frame++ {
		select {
		case <-c.stopCh:
			return
		case <-t.C:
		}
		live = live[:0]
		c.mu.Lock()
		for _, cc := range c.calls {
			if cc.live {
				live = append(live, cc)
			}
		}
		c.mu.Unlock()
		payload := c.tone[frame%len(c.tone)]
		for _, cc := range live {
			cc.seq++
			cc.ts += media.G711TimestampStep
			pkt[0], pkt[1] = 0x80, 0
			binary.BigEndian.PutUint16(pkt[2:], cc.seq)
			binary.BigEndian.PutUint32(pkt[4:], cc.ts)
			binary.BigEndian.PutUint32(pkt[8:], cc.ssrc)
			copy(pkt[12:], payload)
			_, _ = cc.conn.WriteToUDPAddrPort(pkt, cc.remote)
		}
	}
}

// heardAll returns what each answered call heard.
func (c *customers) heardAll() []media.Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]media.Snapshot, 0, len(c.calls))
	for _, cc := range c.calls {
		out = append(out, cc.heard.Snapshot())
	}
	return out
}

// heardByCall is heardAll keyed by SIP Call-ID.
func (c *customers) heardByCall() map[string]media.Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]media.Snapshot, len(c.calls))
	for id, cc := range c.calls {
		out[id] = cc.heard.Snapshot()
	}
	return out
}

// active is the number of calls up.
func (c *customers) active() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.calls)
}

func (c *customers) hangup(callID string) {
	c.mu.Lock()
	cc := c.calls[callID]
	delete(c.calls, callID)
	c.mu.Unlock()
	if cc != nil {
		_ = cc.conn.Close()
	}
}

func (c *customers) close() {
	select {
	case <-c.stopCh:
		return
	default:
	}
	close(c.stopCh)
	c.mu.Lock()
	ids := make([]string, 0, len(c.calls))
	for id := range c.calls {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	for _, id := range ids {
		c.hangup(id)
	}
	_ = c.conn.Close()
	c.wg.Wait()
	_ = c.ua.Close()
}
