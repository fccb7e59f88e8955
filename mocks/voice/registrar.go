package voice

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// bindKey names an address of record: a tenant DN, or (tenant "") a customer number.
type bindKey struct {
	tenant TenantID
	user   string
}

// binding is one registered contact.
type binding struct {
	key         bindKey
	domain      string
	contact     sip.Uri
	source      string // host:port the REGISTER came from
	dest        string // host:port requests to the binding go to (see bindingDest)
	transport   string
	allowEvents map[string]bool
	userName    string    // token owner, when registered with a Bearer token
	expires     time.Time // wall clock: refreshes come in real time
	timer       *time.Timer
	gen         uint64
}

// customerPassword is the digest password of customer numbers (E.164).
const customerPassword = "customer"

// nonceTTL bounds how long a digest challenge may be answered.
const nonceTTL = 5 * time.Minute

func (s *Server) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	res := s.register(req)
	if err := tx.Respond(res); err != nil {
		s.log.Debug("register respond failed", "err", err)
	}
}

func (s *Server) register(req *sip.Request) *sip.Response {
	to := req.To()
	if to == nil || to.Address.User == "" || req.CallID() == nil || req.CSeq() == nil {
		return sip.NewResponseFromRequest(req, sip.StatusBadRequest, "Bad Request", nil)
	}
	user, domain := to.Address.User, strings.ToLower(to.Address.Host)
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	snap, err := s.snapshot(ctx)
	if err != nil {
		return sip.NewResponseFromRequest(req, sip.StatusServiceUnavailable, "Directory Unavailable", nil)
	}

	var key bindKey
	var password, owner string
	customer := isE164(user)
	if customer {
		key, password = bindKey{user: user}, customerPassword
	} else {
		t := snap.byDomain[domain]
		if t == nil {
			return sip.NewResponseFromRequest(req, sip.StatusNotFound, "Unknown Domain", nil)
		}
		d, ok := t.dn(DN(user))
		if !ok {
			return sip.NewResponseFromRequest(req, sip.StatusNotFound, "Unknown DN", nil)
		}
		key, password, owner = bindKey{tenant: t.ID, user: user}, d.Password, d.Owner
	}

	tokenUser := ""
	authz := req.GetHeader("Authorization")
	switch {
	case authz == nil:
		return s.challenge(req, domain, false)
	case strings.HasPrefix(strings.ToLower(strings.TrimSpace(authz.Value())), "bearer "):
		if customer {
			return sip.NewResponseFromRequest(req, sip.StatusForbidden, "Customer Numbers Use Digest", nil)
		}
		token := strings.TrimSpace(strings.TrimSpace(authz.Value())[len("bearer "):])
		info, err := s.userinfo(ctx, token)
		if errors.Is(err, errInvalidToken) {
			s.dropRefused(req, key, "", "token refused")
			return s.challenge(req, domain, true)
		}
		if err != nil {
			s.log.Warn("register: gauth userinfo failed", "err", err)
			return sip.NewResponseFromRequest(req, sip.StatusServiceUnavailable, "Token Service Unavailable", nil)
		}
		if TenantID(info.ContactCenterID) != key.tenant || !strings.EqualFold(info.name(), owner) {
			s.dropRefused(req, key, info.name(), "DN does not belong to the token's user")
			return sip.NewResponseFromRequest(req, sip.StatusForbidden, "DN Does Not Belong To Token User", nil)
		}
		tokenUser = info.name()
	default:
		switch s.checkDigest(req, authz.Value(), user, password) {
		case digestStale:
			return s.challenge(req, domain, false)
		case digestBad:
			return sip.NewResponseFromRequest(req, sip.StatusForbidden, "Forbidden", nil)
		case digestMalformed:
			return sip.NewResponseFromRequest(req, sip.StatusBadRequest, "Malformed Authorization", nil)
		}
	}

	contacts := req.GetHeaders("Contact")
	if len(contacts) == 0 {
		return s.registerOK(req, key)
	}
	expires := s.cfg.DefaultRegisterExpiry
	if h := req.GetHeader("Expires"); h != nil {
		n, err := strconv.Atoi(strings.TrimSpace(h.Value()))
		if err != nil || n < 0 {
			return sip.NewResponseFromRequest(req, sip.StatusBadRequest, "Bad Expires", nil)
		}
		expires = time.Duration(n) * time.Second
	}
	var contact sip.Uri
	if strings.TrimSpace(contacts[0].Value()) == "*" {
		if expires != 0 {
			return sip.NewResponseFromRequest(req, sip.StatusBadRequest, "Wildcard Contact Needs Expires 0", nil)
		}
	} else {
		ch := req.Contact()
		if ch == nil {
			return sip.NewResponseFromRequest(req, sip.StatusBadRequest, "Bad Contact", nil)
		}
		contact = ch.Address
		if v, ok := ch.Params.Get("expires"); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return sip.NewResponseFromRequest(req, sip.StatusBadRequest, "Bad Expires", nil)
			}
			expires = time.Duration(n) * time.Second
		}
	}
	expires = min(expires, s.cfg.MaxRegisterExpiry)
	if expires == 0 {
		s.unbind(key, 0)
		return s.registerOK(req, key)
	}
	b := &binding{
		key: key, domain: domain, contact: contact, source: req.Source(), transport: req.Transport(),
		dest:        bindingDest(contact, req.Source(), req.Transport()),
		allowEvents: parseAllowEvents(req), userName: tokenUser, expires: time.Now().Add(expires),
	}
	if b.userName == "" {
		b.userName = owner
	}
	s.bind(b, expires)
	return s.registerOK(req, key)
}

// bindingDest is where requests to a registered contact go: over UDP, the
// Contact's address, as a registrar does (RFC 3261 10.3; a UA may register
// from one socket and take calls on another); over TCP, the connection the
// REGISTER came on, which the UA keeps open for them; and the source address
// too when the Contact names no usable IP address (a host name, 0.0.0.0).
func bindingDest(contact sip.Uri, source, transport string) string {
	ip, err := netip.ParseAddr(contact.Host)
	if !strings.EqualFold(transport, "udp") || err != nil || ip.IsUnspecified() {
		return source
	}
	port := contact.Port
	if port == 0 {
		port = 5060
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(port))
}

func parseAllowEvents(m sip.Message) map[string]bool {
	out := map[string]bool{}
	for _, h := range m.GetHeaders("Allow-Events") {
		for _, e := range strings.Split(h.Value(), ",") {
			if e = strings.ToLower(strings.TrimSpace(e)); e != "" {
				out[e] = true
			}
		}
	}
	return out
}

func (s *Server) registerOK(req *sip.Request, key bindKey) *sip.Response {
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	s.mu.Lock()
	b := s.bindings[key]
	var remaining int
	var contact sip.Uri
	if b != nil {
		remaining = max(1, int(time.Until(b.expires).Round(time.Second)/time.Second))
		contact = b.contact
	}
	s.mu.Unlock()
	if b != nil {
		c := &sip.ContactHeader{Address: contact}
		c.Params = sip.NewParams()
		c.Params.Add("expires", strconv.Itoa(remaining))
		res.AppendHeader(c)
		res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(remaining)))
	}
	res.AppendHeader(sip.NewHeader("Date", s.clk.Now().UTC().Format(time.RFC1123)))
	return res
}

func (s *Server) challenge(req *sip.Request, realm string, invalidToken bool) *sip.Response {
	res := sip.NewResponseFromRequest(req, sip.StatusUnauthorized, "Unauthorized", nil)
	chal := digest.Challenge{Realm: realm, Nonce: s.newNonce(), Algorithm: "MD5"}
	res.AppendHeader(sip.NewHeader("WWW-Authenticate", chal.String()))
	bearer := fmt.Sprintf(`Bearer realm=%q`, realm)
	if invalidToken {
		bearer += `, error="invalid_token"`
	}
	res.AppendHeader(sip.NewHeader("WWW-Authenticate", bearer))
	return res
}

func (s *Server) newNonce() string {
	ts := strconv.FormatInt(time.Now().Unix(), 16)
	m := hmac.New(sha256.New, s.nonce)
	m.Write([]byte(ts))
	return ts + "." + hex.EncodeToString(m.Sum(nil)[:12])
}

func (s *Server) nonceValid(n string) (ok, stale bool) {
	ts, mac, found := strings.Cut(n, ".")
	if !found {
		return false, false
	}
	m := hmac.New(sha256.New, s.nonce)
	m.Write([]byte(ts))
	if !hmac.Equal([]byte(mac), []byte(hex.EncodeToString(m.Sum(nil)[:12]))) {
		return false, false
	}
	sec, err := strconv.ParseInt(ts, 16, 64)
	if err != nil {
		return false, false
	}
	if time.Since(time.Unix(sec, 0)) > nonceTTL {
		return true, true
	}
	return true, false
}

type digestResult int

const (
	digestOK digestResult = iota
	digestBad
	digestStale
	digestMalformed
)

func (s *Server) checkDigest(req *sip.Request, header, user, password string) digestResult {
	cred, err := digest.ParseCredentials(header)
	if err != nil {
		return digestMalformed
	}
	ok, stale := s.nonceValid(cred.Nonce)
	if !ok {
		return digestStale
	}
	if stale {
		return digestStale
	}
	if cred.Username != user || password == "" {
		return digestBad
	}
	chal := &digest.Challenge{Realm: cred.Realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm, Opaque: cred.Opaque}
	if cred.QOP != "" {
		chal.QOP = []string{cred.QOP}
	}
	want, err := digest.Digest(chal, digest.Options{Method: req.Method.String(), URI: cred.URI, Username: user,
		Password: password, Cnonce: cred.Cnonce, Count: cred.Nc})
	if err != nil {
		return digestMalformed
	}
	if !hmac.Equal([]byte(strings.ToLower(want.Response)), []byte(strings.ToLower(cred.Response))) {
		return digestBad
	}
	return digestOK
}

// bind stores b, replacing an earlier binding of the same AOR, and arms its expiry.
func (s *Server) bind(b *binding, ttl time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bindGen++
	b.gen = s.bindGen
	old := s.bindings[b.key]
	if old != nil {
		if old.timer != nil {
			old.timer.Stop()
		}
	} else {
		s.met.registrations.Inc()
	}
	gen := b.gen
	b.timer = time.AfterFunc(ttl, func() { s.unbind(b.key, gen) })
	s.bindings[b.key] = b
	if b.key.tenant != "" {
		s.agentRegisteredLocked(b)
	}
}

// unbind removes an AOR's binding; gen>0 removes it only if it was not refreshed since.
func (s *Server) unbind(key bindKey, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bindings[key]
	if b == nil || (gen > 0 && b.gen != gen) {
		return
	}
	if b.timer != nil {
		b.timer.Stop()
	}
	delete(s.bindings, key)
	s.met.registrations.Dec()
	if key.tenant != "" {
		s.agentUnregisteredLocked(key)
	}
}

// lookupBinding returns a copy of an AOR's binding.
func (s *Server) lookupBinding(key bindKey) (binding, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bindings[key]
	if b == nil {
		return binding{}, false
	}
	return *b, true
}

// DirectoryChanged drops the cached directory, so that a tenant change (a
// seed applied, a user deleted) is in effect when the request that made it
// returns, and logs out the agents it removed: a registered DN that is gone,
// or whose user is no longer the one who registered it. Such an agent would
// otherwise stay Ready, and be offered calls, until its registration expired.
func (s *Server) DirectoryChanged(ctx context.Context) {
	s.mu.Lock()
	s.snap = nil
	s.mu.Unlock()
	snap, err := s.snapshot(ctx)
	if err != nil {
		s.log.Warn("directory changed: re-read failed; registrations are kept", "err", err)
		return
	}
	var gone []binding
	s.mu.Lock()
	for key, b := range s.bindings {
		if key.tenant == "" {
			continue // customer numbers are not in the directory
		}
		var d DNEntry
		ok := false
		if t := snap.byID[key.tenant]; t != nil {
			d, ok = t.dn(DN(key.user))
		}
		if !ok || !strings.EqualFold(d.Owner, b.userName) {
			gone = append(gone, *b)
		}
	}
	s.mu.Unlock()
	for _, b := range gone {
		s.log.Info("agent logged out: its DN or user was removed from the directory", "dn", b.key.user, "user", b.userName)
		s.unbind(b.key, b.gen)
	}
}

// dropRefused removes key's binding when the REGISTER that was just refused
// came from the endpoint holding it (and, when user is known, for the user
// who holds it): a registration refresh whose token GAuth no longer accepts
// (revoked, expired, its user deleted) means that endpoint can no longer
// prove who it is. The agent is logged out at once instead of staying Ready,
// and being offered calls, until the binding expires. The gateway registers
// every agent from one connection, so another user's refused REGISTER for
// the DN does not count.
func (s *Server) dropRefused(req *sip.Request, key bindKey, user, why string) {
	s.mu.Lock()
	b := s.bindings[key]
	held := b != nil && b.source == req.Source() && (user == "" || strings.EqualFold(b.userName, user))
	var gen uint64
	if held {
		gen = b.gen
	}
	s.mu.Unlock()
	if held {
		s.log.Info("registration refresh refused: agent logged out", "dn", key.user, "reason", why)
		s.unbind(key, gen)
	}
}
