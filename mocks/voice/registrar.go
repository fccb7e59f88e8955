package voice

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
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
	source      string // host:port the REGISTER came from; requests go there (NAT-style)
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
			return s.challenge(req, domain, true)
		}
		if err != nil {
			s.log.Warn("register: gauth userinfo failed", "err", err)
			return sip.NewResponseFromRequest(req, sip.StatusServiceUnavailable, "Token Service Unavailable", nil)
		}
		if TenantID(info.ContactCenterID) != key.tenant || !strings.EqualFold(info.name(), owner) {
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
		allowEvents: parseAllowEvents(req), userName: tokenUser, expires: time.Now().Add(expires),
	}
	if b.userName == "" {
		b.userName = owner
	}
	s.bind(b, expires)
	return s.registerOK(req, key)
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
