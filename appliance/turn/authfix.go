package turn

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/pion/stun/v4"
)

// authChallenges makes refused credentials answer 401, as coturn and RFC
// 8489 (section 9.2.4) do. pion/turn v5.1.0 answers a request whose username
// it does not know, or whose MESSAGE-INTEGRITY does not verify, with 400 Bad
// Request (v5.1.3 answers 401, but needs pion/transport v5, which this
// build's pion/ice v4 cannot use). A client then reports a malformed request
// where its credentials are wrong. The server's sockets pass each error
// response pion writes through rewrite: pion's own 401 challenges teach it
// the nonce each client was given, and a 400 to a client whose credentials
// were just refused becomes that 401 challenge, with the realm and nonce.
// Likewise pion's bare 401 to a ChannelBind toward a forbidden peer becomes
// the 403 a CreatePermission for that peer gets.
type authChallenges struct {
	realm string

	mu      sync.Mutex
	nonces  map[string]nonceSeen // by client address: the last nonce pion gave it
	refused map[string]time.Time // by client address: when its credentials were refused
}

type nonceSeen struct {
	nonce string
	at    time.Time
}

// stunMagicCookie is RFC 8489's fixed magic cookie, bytes 4-7 of every message.
const stunMagicCookie = 0x2112A442

// maxTracked bounds both maps; older entries go first when it is reached.
const maxTracked = 8192

func newAuthChallenges(realm string) *authChallenges {
	return &authChallenges{realm: realm, nonces: map[string]nonceSeen{}, refused: map[string]time.Time{}}
}

// refuse records that client's credentials were just refused.
func (a *authChallenges) refuse(client string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.refused) >= maxTracked {
		clear(a.refused)
	}
	a.refused[client] = time.Now()
}

// errorResponse reports whether b is a STUN error response, cheaply: pion's
// writes toward clients are mostly ChannelData and Data indications.
func errorResponse(b []byte) bool {
	if len(b) < 20 || b[0]&0xC0 != 0 || binary.BigEndian.Uint32(b[4:8]) != stunMagicCookie {
		return false
	}
	t := binary.BigEndian.Uint16(b[0:2])
	return t&0x0110 == 0x0110 // class bits C1 and C0 both set
}

// rewrite returns what to send to client instead of b: b itself, or the 401
// challenge replacing pion's 400 for refused credentials.
func (a *authChallenges) rewrite(b []byte, client string) []byte {
	if !errorResponse(b) {
		return b
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil {
		return b
	}
	var code stun.ErrorCodeAttribute
	if code.GetFrom(m) != nil {
		return b
	}
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	switch code.Code {
	case stun.CodeUnauthorized, stun.CodeStaleNonce:
		var nonce stun.Nonce
		if code.Code == stun.CodeUnauthorized && m.Type.Method == stun.MethodChannelBind && nonce.GetFrom(m) != nil {
			// pion refuses a ChannelBind to a peer the policy forbids with a
			// bare 401, which tells the client its credentials are wrong;
			// CreatePermission gets 403 Forbidden for the same peer.
			out, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), m.Type,
				&stun.ErrorCodeAttribute{Code: stun.CodeForbidden, Reason: []byte("Forbidden")})
			if err != nil {
				return b
			}
			return out.Raw
		}
		if nonce.GetFrom(m) == nil {
			if len(a.nonces) >= maxTracked {
				for k, v := range a.nonces {
					if now.Sub(v.at) > time.Hour {
						delete(a.nonces, k)
					}
				}
				if len(a.nonces) >= maxTracked {
					clear(a.nonces)
				}
			}
			a.nonces[client] = nonceSeen{nonce: nonce.String(), at: now}
		}
		return b
	case stun.CodeBadRequest:
		at, ok := a.refused[client]
		seen, known := a.nonces[client]
		if !ok || !known || now.Sub(at) > 2*time.Second {
			return b
		}
		delete(a.refused, client)
		out, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), m.Type,
			&stun.ErrorCodeAttribute{Code: stun.CodeUnauthorized, Reason: []byte("Unauthorized")},
			stun.NewRealm(a.realm), stun.NewNonce(seen.nonce))
		if err != nil {
			return b
		}
		return out.Raw
	}
	return b
}
