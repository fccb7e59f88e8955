package turn

import (
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// rawExchange sends a STUN request built from setters over conn and returns
// the server's answer to it.
func rawExchange(t *testing.T, conn net.Conn, setters ...stun.Setter) *stun.Message {
	t.Helper()
	m, err := stun.Build(append([]stun.Setter{stun.TransactionID}, setters...)...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(m.Raw); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no answer to %s: %v", m.Type, err)
	}
	res := &stun.Message{Raw: buf[:n]}
	if err := res.Decode(); err != nil {
		t.Fatal(err)
	}
	return res
}

func errorCode(m *stun.Message) int {
	var code stun.ErrorCodeAttribute
	if code.GetFrom(m) != nil {
		return 0
	}
	return int(code.Code)
}

// A ChannelBind toward a peer the policy forbids gets 403 Forbidden, as a
// CreatePermission for it does, not the 401 pion answers (which tells the
// client its credentials are wrong).
func TestChannelBindToForbiddenPeerIs403(t *testing.T) {
	srv := startServer(t, nil) // default policy: this host only
	conn, err := net.Dial("udp4", srv.UDPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	transport := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
	challenge := rawExchange(t, conn, stun.NewType(stun.MethodAllocate, stun.ClassRequest), transport)
	var nonce stun.Nonce
	var realm stun.Realm
	if errorCode(challenge) != 401 || nonce.GetFrom(challenge) != nil || realm.GetFrom(challenge) != nil {
		t.Fatalf("Allocate without credentials: %s, want a 401 challenge", challenge)
	}
	user, pass := srv.creds("agent1")
	key := stun.NewLongTermIntegrity(user, realm.String(), pass)
	auth := []stun.Setter{stun.NewUsername(user), realm, nonce, key}
	res := rawExchange(t, conn, append([]stun.Setter{stun.NewType(stun.MethodAllocate, stun.ClassRequest), transport}, auth...)...)
	if res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("Allocate with credentials: %s (error %d)", res, errorCode(res))
	}
	forbidden := stun.XORMappedAddress{IP: net.ParseIP("192.0.2.10"), Port: 9} // TEST-NET-1, never this host
	peer := setterFunc(func(m *stun.Message) error { return forbidden.AddToAs(m, stun.AttrXORPeerAddress) })
	channel := stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{0x40, 0x00, 0, 0}}
	res = rawExchange(t, conn, append([]stun.Setter{stun.NewType(stun.MethodChannelBind, stun.ClassRequest), channel, peer}, auth...)...)
	if code := errorCode(res); code != 403 {
		t.Fatalf("ChannelBind to a forbidden peer: %s (error %d), want 403", res, code)
	}
	res = rawExchange(t, conn, append([]stun.Setter{stun.NewType(stun.MethodCreatePermission, stun.ClassRequest), peer}, auth...)...)
	if code := errorCode(res); code != 403 {
		t.Fatalf("CreatePermission to a forbidden peer: %s (error %d), want 403", res, code)
	}
}

type setterFunc func(*stun.Message) error

func (f setterFunc) AddTo(m *stun.Message) error { return f(m) }
